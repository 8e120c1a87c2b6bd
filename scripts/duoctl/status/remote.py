"""One SSH login to a host (through the jump host when it has one, host keys from the
deployment's known_hosts: duoctl.ssh), to run commands and to make HTTP requests from there
over a direct-tcpip channel (a header such as an API key never reaches a command line)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from duoctl import ssh
from duoctl.deployment import Deployment, Host
from duoctl.verify.rake import CommandOutput

MAX_BODY = 1 << 20
# paramiko's transport thread logs a traceback for a host that does not answer; status shows
# the reason on its own line instead (a handler here keeps Python's last-resort one away).
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class Remote(Protocol):
    def run(self, command: str) -> CommandOutput: ...

    def http_get(
        self, host: str, port: int, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]: ...


@dataclass
class SshRemote:
    clients: list[Any]  # the jump host's, then the host's
    timeout: float

    @classmethod
    def login(
        cls,
        deployment: Deployment,
        host: Host,
        key_file: str | None,
        known_hosts: Path,
        timeout: float,
    ) -> SshRemote:
        jump = deployment.jump_host(host)
        target = (host.address, host.ssh_port, host.ssh_user)
        via = (jump.address, jump.ssh_port, jump.ssh_user) if jump else None
        return cls(ssh.connect_through(target, via, key_file, timeout, known_hosts), timeout)

    def close(self) -> None:
        for client in reversed(self.clients):
            client.close()

    def run(self, command: str) -> CommandOutput:
        _, stdout, stderr = self.clients[-1].exec_command(command, timeout=self.timeout)
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        return CommandOutput(stdout.channel.recv_exit_status(), out, err)

    def http_get(
        self, host: str, port: int, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """HTTP/1.0 GET to host:port as the host itself reaches it; (status, body)."""
        transport = self.clients[-1].get_transport()
        channel = transport.open_channel(
            "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=self.timeout
        )
        try:
            channel.settimeout(self.timeout)
            lines = [f"GET {path} HTTP/1.0", f"Host: {host}:{port}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            channel.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while len(data) < MAX_BODY:
                chunk = channel.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            channel.close()
        return parse_http(data)


def parse_http(data: bytes) -> tuple[int, str]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    return int(parts[1]), body.decode("utf-8", "replace")
