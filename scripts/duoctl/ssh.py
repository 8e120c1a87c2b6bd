"""SSH logins with paramiko, shared by the deploy's SSH wait and verify's rake check.

Host keys come from the deployment's own known_hosts file (duoctl.hostkeys): a pinned host
with another key is refused; a host not pinned yet is pinned on this first login and saved to
the file (OpenSSH's StrictHostKeyChecking=accept-new, which the deployment's ssh_config gives
Ansible). Keys: the given file, else the SSH agent and ~/.ssh defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from duoctl.hostkeys import changed_key_message, known_hosts_name


class PinNewHostKey:
    """paramiko's missing-host-key policy for accept-new: pin the key in the file, go on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        client.save_host_keys(str(self.path))
        self.path.chmod(0o600)


def connect(
    host: str,
    port: int,
    user: str,
    key_file: str | None,
    timeout: float,
    known_hosts: Path,
    sock: Any = None,
) -> Any:
    """A logged-in paramiko SSHClient; `sock` is a channel of a jump host, when there is one."""
    import paramiko

    client = paramiko.SSHClient()
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    known_hosts.touch(mode=0o600, exist_ok=True)
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(PinNewHostKey(known_hosts))
    try:
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=key_file,
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise changed_key_message(known_hosts_name(host, port), known_hosts) from None
    except BaseException:
        client.close()
        raise
    return client


def connect_through(
    target: tuple[str, int, str],
    jump: tuple[str, int, str] | None,
    key_file: str | None,
    timeout: float,
    known_hosts: Path,
) -> list[Any]:
    """Clients for (host, port, user), through the jump host when given; the last is the
    target's. The caller closes them in reverse order."""
    clients: list[Any] = []
    try:
        sock = None
        if jump is not None:
            clients.append(connect(*jump, key_file, timeout, known_hosts))
            sock = (
                clients[0]
                .get_transport()
                .open_channel("direct-tcpip", target[:2], ("127.0.0.1", 0), timeout=timeout)
            )
        clients.append(connect(*target, key_file, timeout, known_hosts, sock))
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise
    return clients
