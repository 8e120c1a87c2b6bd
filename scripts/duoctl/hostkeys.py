"""Host keys: each deployment pins its hosts' keys in its own known_hosts file.

Where the cloud reports a VM's host keys, those are pinned before the first login: AWS prints
them in the instance console output (cloud-init's `-----BEGIN SSH HOST KEY KEYS-----` block,
read with ec2:GetConsoleOutput), Google Cloud publishes them as guest attributes (namespace
`hostkeys/`, with `enable-guest-attributes` in the VM's metadata). Otherwise the first login
pins the key it meets (trust on first use). A key that differs from a pinned one is refused.
The SSH wait, Ansible (through the deployment's ssh_config) and verify read the same file.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duoctl.errors import DuoctlError

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


@dataclass(frozen=True)
class HostKey:
    key_type: str
    blob: str  # base64, as in known_hosts

    def line(self, host_entry: str) -> str:
        return f"{host_entry} {self.key_type} {self.blob}"


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH and paramiko name a host in known_hosts."""
    return address if port == 22 else f"[{address}]:{port}"


def parse_key(key_type: str, blob: str) -> HostKey | None:
    """A host key whose encoded type matches its name; None for anything else."""
    if key_type not in KEY_TYPES:
        return None
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        inner = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        return None
    return HostKey(key_type, blob) if inner == key_type else None


def keys_from_console(text: str) -> list[HostKey]:
    """The keys of cloud-init's host key block in a console output (the last block wins).

    Current cloud-init sends the block through syslog too, so a line may start with a prefix
    such as `<14>Dec  1 03:00:00 ec2: `: the key is the first known type and what follows it.
    """
    start, end = text.rfind(BEGIN), text.rfind(END)
    if start < 0 or end < start:
        return []
    keys = []
    for line in text[start + len(BEGIN) : end].splitlines():
        fields = line.split()
        at = next((i for i, word in enumerate(fields) if word in KEY_TYPES), None)
        key = (
            parse_key(fields[at], fields[at + 1])
            if at is not None and at + 1 < len(fields)
            else None
        )
        if key is not None:
            keys.append(key)
    return keys


def aws_host_keys(ec2: Any, instance_id: str) -> list[HostKey]:
    """The keys an EC2 instance printed to its console (botocore decodes the base64)."""
    answer = ec2.get_console_output(InstanceId=instance_id, Latest=True)
    return keys_from_console(str(answer.get("Output") or ""))


def gcp_host_keys(client: Any, project: str, zone: str, instance: str) -> list[HostKey]:
    """The keys a Compute Engine VM's guest environment published as guest attributes."""
    from google.cloud import compute_v1

    request = compute_v1.GetGuestAttributesInstanceRequest(
        project=project, zone=zone, instance=instance, query_path="hostkeys/"
    )
    answer = client.get_guest_attributes(request=request)
    items = answer.query_value.items if answer.query_value else []
    keys = [parse_key(item.key, item.value) for item in items if item.namespace == "hostkeys"]
    return [key for key in keys if key is not None]


class KnownHosts:
    """The deployment's known_hosts file (plain host names, one key per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DuoctlError(
                f"cannot read {self.path}: {exc.strerror}", "make the deployment folder readable"
            ) from None

    def pin(self, name: str, keys: Iterable[HostKey]) -> bool:
        """Record the keys the cloud reported for `name`, replacing what was pinned for it
        (the cloud's API is the trusted channel: a re-created VM has new keys). True when the
        file changed."""
        new = sorted({k.line(name) for k in keys})
        if not new:
            return False
        lines = self._lines()
        kept = [line for line in lines if name not in (line.split() or [""])[0].split(",")]
        old = [line for line in lines if line not in kept]
        if sorted(old) == new:
            return False
        self._write([*kept, *new])
        return True

    def _write(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.path)


def changed_key_message(name: str, known_hosts: Path) -> DuoctlError:
    return DuoctlError(
        f"the SSH host key of {name} differs from the key pinned in {known_hosts}: "
        "the connection was refused",
        "if the VM was re-created (destroy and deploy, or replaced by Terraform), remove its old "
        f"key with `ssh-keygen -R {name} -f {known_hosts}` and run again; otherwise something "
        "may be intercepting the connection: check the address and the VM's console output "
        "before going on",
        exit_code=1,
    )
