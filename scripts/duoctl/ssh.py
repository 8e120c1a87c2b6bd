"""SSH logins with paramiko, shared by the deploy's SSH wait and verify's rake check.

Host keys: the user's known_hosts is loaded; an unknown host's key is accepted and kept for the
session (OpenSSH's StrictHostKeyChecking=accept-new), a known host with another key fails
(paramiko checks the loaded known_hosts before asking the policy). Keys: the given file, else
the SSH agent and ~/.ssh defaults.
"""

from __future__ import annotations

from typing import Any


class AcceptNewHostKey:
    """paramiko's missing-host-key policy for accept-new: keep the key, go on."""

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)


def connect(
    host: str,
    port: int,
    user: str,
    key_file: str | None,
    timeout: float,
    sock: Any = None,
) -> Any:
    """A logged-in paramiko SSHClient; `sock` is a channel of a jump host, when there is one."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_system_host_keys()
    client.set_missing_host_key_policy(AcceptNewHostKey())
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
    except BaseException:
        client.close()
        raise
    return client
