"""A local TCP port forwarded over the deployment's SSH to a service on a private address.

The model server listens on a private address only; from the deployer's machine it is reached
the way Ansible reaches it: SSH to the host itself, through the GitLab host as jump host, with
the deployment's key and its pinned host keys (duoctl.ssh: a changed key is refused, a host not
pinned yet is pinned on this first login). Each connection to the local port becomes one
`direct-tcpip` channel from that host to `(host.private_ip, port)`, so the host's firewall sees
traffic from itself.

Usage::

    host = deployment.model  # the model server
    with forward(deployment, host, 8000, key_file=key, known_hosts=known_hosts) as address:
        httpx.get(f"http://{address}/v1/models")  # address: "127.0.0.1:<local port>"

On exit, normal or not (an exception, Ctrl-C), the listener, every forwarded connection and
the SSH sessions are closed and the forwarding threads joined.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from duoctl import ssh
from duoctl.deployment import Deployment, Host
from duoctl.errors import DuoctlError

LOOPBACK = "127.0.0.1"
_CHUNK = 32768
_POLL_SECONDS = 0.2  # how soon the threads notice the tunnel closing


class Tunnel:
    """The listener and its connections; `forward` is the way to use it."""

    def __init__(
        self,
        transport: Any,
        destination: tuple[str, int],
        local_port: int = 0,
        timeout: float = 15.0,
    ) -> None:
        self.transport = transport
        self.destination = destination
        self.timeout = timeout  # for opening each forwarded connection
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: set[Any] = set()  # sockets and channels to close on exit
        self._listener = socket.create_server((LOOPBACK, local_port))
        self._listener.settimeout(_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self._spawn(self._accept_loop, "accept")

    def _spawn(self, target: Any, what: str, *args: Any) -> None:
        thread = threading.Thread(
            target=target, args=args, name=f"duoctl-tunnel-{self.port}-{what}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, *items: Any) -> bool:
        """Remember sockets/channels to close; False when the tunnel is closing already."""
        with self._lock:
            if self._stop.is_set():
                return False
            self._open.update(items)
            return True

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            try:
                channel = self.transport.open_channel(
                    "direct-tcpip", self.destination, peer, timeout=self.timeout
                )
            except Exception:  # refused by the host, or SSH gone: this connection only
                conn.close()
                continue
            if not self._track(conn, channel):
                channel.close()
                conn.close()
                return
            self._spawn(self._pump, "pump", conn, channel)

    def _pump(self, conn: socket.socket, channel: Any) -> None:
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([conn, channel], [], [], _POLL_SECONDS)
                if conn in readable:
                    data = conn.recv(_CHUNK)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in readable:
                    data = channel.recv(_CHUNK)
                    if not data:
                        break
                    conn.sendall(data)
        except (OSError, EOFError):
            pass  # either side went away
        finally:
            with self._lock:
                self._open.discard(conn)
                self._open.discard(channel)
            _close(channel)
            _close(conn)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every forwarded connection, join the threads."""
        with self._lock:
            self._stop.set()
            items = list(self._open)
            self._open.clear()
            threads = list(self._threads)
        _close(self._listener)
        for item in items:
            _close(item)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


def _close(item: Any) -> None:
    with contextlib.suppress(Exception):
        item.close()


@contextlib.contextmanager
def forward(
    deployment: Deployment,
    host: Host,
    port: int,
    *,
    key_file: str | None,
    known_hosts: Path,
    local_port: int = 0,
    timeout: float = 15.0,
) -> Iterator[str]:
    """Forward `127.0.0.1:<local port>` to `host.private_ip:port` over SSH to `host` (through
    the deployment's jump host when `host` has no public address); yields that local address.

    `key_file`: the deployment's private key (None: ssh-agent and ~/.ssh defaults);
    `known_hosts`: the deployment's pinned host keys; `local_port` 0: any free port. An SSH
    failure is a DuoctlError naming the host.
    """
    jump = deployment.jump_host(host)
    target = (host.address, host.ssh_port, host.ssh_user)
    via = (jump.address, jump.ssh_port, jump.ssh_user) if jump else None
    through = f" through {jump.name} ({jump.address})" if jump else ""
    try:
        clients = ssh.connect_through(target, via, key_file, timeout, known_hosts)
    except DuoctlError:
        raise
    except Exception as exc:
        raise DuoctlError(
            f"cannot open SSH to {host.name} ({host.address}){through}: {exc}",
            "check that the host runs and the deployment's SSH key and known_hosts are the "
            "ones it was deployed with",
            exit_code=1,
        ) from None
    tunnel: Tunnel | None = None
    try:
        transport = clients[-1].get_transport()
        tunnel = Tunnel(transport, (host.private_ip, port), local_port, timeout)
        tunnel.start()
        yield tunnel.address
    finally:
        if tunnel is not None:
            tunnel.close()
        for client in reversed(clients):
            _close(client)
