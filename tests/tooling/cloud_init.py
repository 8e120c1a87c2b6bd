"""cloud-init's part at a VM's first boot, played for a running test container.

On a VM, cloud-init installs the deploy's SSH public key for the user `ubuntu`, the SSH server
starts with host keys made at that boot, and cloud-init prints those host keys to the
instance's console (its `write-ssh-key-fingerprints` helper), where a deploy reads them with
EC2 GetConsoleOutput before its first login. For a container of the base image
(tests/tooling/docker_env.py: sshd, host keys made at boot, user `ubuntu` with passwordless
sudo), this module does the same:

    console = cloud_init.provision("site-gitlab", public_key_line, addresses=["10.213.78.10"])

installs the key (/home/ubuntu/.ssh/authorized_keys, 0600, owned by ubuntu), waits until the
SSH server answers (on each address given, with its protocol banner), and returns the text the
VM would have printed to its console: the host keys between `-----BEGIN SSH HOST KEY KEYS-----`
and `-----END SSH HOST KEY KEYS-----` (the `.pub` files as they are: `<type> <base64>
root@<hostname>`), after the fingerprint block, with a little boot noise around them. A test
hands it to the cloud double (e.g. aws_ec2_extras.set_console_output).

`docker exec` is used here, and only here: it stands in for the cloud's own provisioning of the
VM (cloud-init, the hypervisor's console), never for the deploy's connection, which must reach
the container over SSH as it reaches a VM.

Console styles: cloud-init releases differ in how the helper's lines reach the console. In
the older helper only the fingerprints go through `logger -s -t ec2` (each line then starts
with `<14>Mon DD HH:MM:SS ec2: `) and the keys block is printed as is; in current ones the
keys block goes through the logger too. `all_through_logger=True` gives the latter.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterable
from datetime import UTC, datetime

USER = "ubuntu"
BEGIN_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"
END_KEYS = "-----END SSH HOST KEY KEYS-----"
SYSLOG_TAG = "ec2"

# Run in the container: the key from stdin into the user's authorized_keys, as cloud-init does.
_INSTALL_KEY = """
set -eu
umask 077
home=$(getent passwd "$1" | cut -d: -f6)
install -d -m 0700 -o "$1" -g "$1" "$home/.ssh"
cat > "$home/.ssh/authorized_keys"
chown "$1:$1" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
"""
# Run in the container: what write-ssh-key-fingerprints prints (without the logger).
_EACH_KEY = 'for f in /etc/ssh/ssh_host_*key.pub; do if [ -f "$f" ]; then {}; fi; done'
_FINGERPRINTS = _EACH_KEY.format('ssh-keygen -l -f "$f"')
_KEYS = _EACH_KEY.format('cat "$f"')


def _exec(container: str, script: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["docker", "exec", "-i", container, "sh", "-c", script, "sh", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{container}: `{script.strip().splitlines()[0]}` failed "
            f"({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


def install_authorized_key(container: str, public_key: str, user: str = USER) -> None:
    """`public_key` (one OpenSSH line) becomes the user's only authorized key."""
    line = public_key.strip()
    if not line or "\n" in line:
        raise ValueError("one OpenSSH public key line expected")
    _exec(container, _INSTALL_KEY, user, stdin=line + "\n")


def _banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def wait_for_sshd(
    container: str, addresses: Iterable[str] = (), port: int = 22, timeout: float = 90.0
) -> None:
    """The container's SSH server runs (its host keys are made) and answers on each address."""
    deadline = time.monotonic() + timeout
    pending = list(addresses)
    while True:
        state = subprocess.run(
            ["docker", "exec", container, "systemctl", "is-active", "ssh.service"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
        if state == "active":
            pending = [address for address in pending if not _banner(address, port)]
            if not pending:
                return
        if time.monotonic() > deadline:
            where = f"; no SSH banner on {', '.join(pending)}:{port}" if state == "active" else ""
            raise TimeoutError(f"{container}: ssh.service is {state or 'unknown'}{where}")
        time.sleep(0.5)


def host_keys(container: str) -> list[str]:
    """The container's host public keys, one `.pub` file's line each (type, base64, comment)."""
    return [line for line in _exec(container, _KEYS).splitlines() if line.strip()]


def _syslog_prefix(when: datetime) -> str:
    # logger's RFC 3164 header for user.info (priority 14), as `logger -s` prints it
    return f"<14>{when:%b} {when.day:>2} {when:%H:%M:%S} {SYSLOG_TAG}: "


def console_block(keys: Iterable[str], prefix: str = "") -> str:
    """cloud-init's host key block: the keys between the BEGIN and END lines."""
    lines = [BEGIN_KEYS, *keys, END_KEYS]
    return "".join(f"{prefix}{line}\n" for line in lines)


def console_output(
    container: str, all_through_logger: bool = False, when: datetime | None = None
) -> str:
    """What the VM prints to its console at first boot around its host keys."""
    when = when or datetime.now(tz=UTC)
    prefix = _syslog_prefix(when)
    fingerprints = [line for line in _exec(container, _FINGERPRINTS).splitlines() if line]
    rule = "#" * 61
    logged = [
        "",
        rule,
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
        *fingerprints,
        "-----END SSH HOST KEY FINGERPRINTS-----",
        rule,
    ]
    return (
        "[    4.217311] cloud-init[612]: Cloud-init v. 25.1.4 running 'init' (stand-in)\n"
        + "".join(f"{prefix}{line}\n" for line in logged)
        + console_block(host_keys(container), prefix if all_through_logger else "")
        + "[   11.902457] cloud-init[871]: Cloud-init v. 25.1.4 finished (stand-in)\n"
    )


def provision(
    container: str,
    public_key: str,
    addresses: Iterable[str] = (),
    user: str = USER,
    all_through_logger: bool = False,
    timeout: float = 90.0,
) -> str:
    """Install the key, wait for the SSH server, return the console output (see the module)."""
    install_authorized_key(container, public_key, user)
    wait_for_sshd(container, addresses, timeout=timeout)
    return console_output(container, all_through_logger=all_through_logger)
