"""Stand-in for the three VMs' OpenSSH servers, on loopback, for the deploy's wait_ssh step.

What it stands in for: sshd on the GitLab VM (reachable directly; the jump host) and on the AI
gateway and Ollama VMs (reached through the jump host). It follows the SSH protocol as paramiko's
server side implements it (RFC 4251-4254): public-key authentication of one user with one key,
`direct-tcpip` channels (what `ProxyJump` opens on the jump host) forwarded to the destination,
and `exec` requests, which are recorded and answered with exit status 0 (the VMs' cloud-init is
done). A host can refuse its first N connections, like a VM that is still booting.

As sshd does, the server answers an `exec` request (CHANNEL_SUCCESS) before anything of the
command reaches the client: an exec handler hands the command's run to `run_after_reply`,
which starts it once paramiko has sent the reply. (A command that sends its output, exit status
and close on its own thread could otherwise beat the reply on a loaded machine; the client then
sees the channel closed before its request was answered: "SSHException: Channel closed.")

Usage::

    with ssh_hosts(["gitlab-vm", "gateway-vm", "ollama-vm"], user="ubuntu") as hosts:
        hosts.key_file              # private key file the client uses
        hosts["gateway-vm"].port    # each host listens on 127.0.0.1:<port>
        hosts["gitlab-vm"].forwards # [("127.0.0.1", port), ...] forwarded for ProxyJump
        hosts["ollama-vm"].execs    # commands run
"""

from __future__ import annotations

import contextlib
import select
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import paramiko
from paramiko.common import MSG_CHANNEL_REQUEST


class _Interface(paramiko.ServerInterface):
    def __init__(self, host: SshHost) -> None:
        self.host = host
        self.destinations: dict[int, tuple[str, int]] = {}
        self.after_reply: dict[int, Callable[[], None]] = {}

    def run_after_reply(self, channel: paramiko.Channel, run: Callable[[], None]) -> None:
        """Start `run` (the command: its output, exit status, close) on its own thread once
        the channel's request has been answered, as sshd answers it before the command runs."""
        self.after_reply[channel.get_id()] = run

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == self.host.user and key.get_base64() == self.host.authorized.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        self.destinations[chanid] = (str(destination[0]), int(destination[1]))
        self.host.forwards.append(self.destinations[chanid])
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.host.execs.append(command.decode())

        def finish() -> None:
            try:
                channel.send_exit_status(0)
                channel.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass  # the client went away first

        self.run_after_reply(channel, finish)
        return True


def _answer_then_run(channel: paramiko.Channel, message: paramiko.Message) -> None:
    """The server's handling of a channel request: paramiko's (it asks the interface, then
    sends CHANNEL_SUCCESS or CHANNEL_FAILURE), then the run the interface left for after it."""
    paramiko.Channel._handle_request(channel, message)
    interface = channel.transport.server_object
    run = interface.after_reply.pop(channel.get_id(), None) if interface else None
    if run is not None:
        threading.Thread(target=run, daemon=True).start()


class _ServerTransport(paramiko.Transport):
    _channel_handler_table: ClassVar[dict[int, Callable[..., None]]] = {
        **paramiko.Transport._channel_handler_table,
        MSG_CHANNEL_REQUEST: _answer_then_run,
    }


def _pump(channel: paramiko.Channel, sock: socket.socket) -> None:
    try:
        while True:
            readable, _, _ = select.select([channel, sock], [], [], 1.0)
            if channel in readable:
                data = channel.recv(32768)
                if not data:
                    break
                sock.sendall(data)
            if sock in readable:
                data = sock.recv(32768)
                if not data:
                    break
                channel.sendall(data)
    except (OSError, EOFError):
        pass  # either side went away: the forward ends, as sshd's does
    finally:
        sock.close()
        with contextlib.suppress(OSError, EOFError):
            channel.close()  # the client may have closed the transport already


@dataclass
class SshHost:
    name: str
    user: str
    authorized: paramiko.PKey
    host_key: paramiko.PKey
    refuse_first: int = 0  # connections closed at once, as by a VM still booting
    port: int = 0
    connections: int = 0
    execs: list[str] = field(default_factory=list)
    forwards: list[tuple[str, int]] = field(default_factory=list)
    _listener: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._listener:
            self._listener.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.connections <= self.refuse_first:
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        transport = _ServerTransport(conn)
        transport.add_server_key(self.host_key)
        interface = _Interface(self)
        try:
            transport.start_server(server=interface)
        except (paramiko.SSHException, EOFError, OSError):
            return
        while transport.is_active() and not self._stop.is_set():
            channel = transport.accept(timeout=0.5)
            if channel is None:
                continue
            destination = interface.destinations.get(channel.get_id())
            if destination is not None:
                try:
                    target = socket.create_connection(destination, timeout=5)
                except OSError:
                    channel.close()
                    continue
                threading.Thread(target=_pump, args=(channel, target), daemon=True).start()
        transport.close()


class SshHosts(dict[str, SshHost]):
    key_file: Path
    public_key_line: str


@contextmanager
def ssh_hosts(
    names: list[str], user: str = "ubuntu", refuse_first: dict[str, int] | None = None
) -> Iterator[SshHosts]:
    """Start one SSH server per name on loopback, all accepting one generated client key."""
    client_key = paramiko.RSAKey.generate(2048)
    host_key = paramiko.RSAKey.generate(2048)
    with tempfile.TemporaryDirectory(prefix="duo-ssh-") as tmp:
        hosts = SshHosts()
        hosts.key_file = Path(tmp) / "id_rsa"
        client_key.write_private_key_file(str(hosts.key_file))
        hosts.public_key_line = f"ssh-rsa {client_key.get_base64()} duo@test"
        for name in names:
            host = SshHost(name, user, client_key, host_key, (refuse_first or {}).get(name, 0))
            host.start()
            hosts[name] = host
        try:
            yield hosts
        finally:
            for host in hosts.values():
                host.stop()


def inventory_for(hosts: SshHosts, user: str = "ubuntu") -> dict[str, Any]:
    """An inventory of the contract's shape pointing at these servers (jump: gitlab-vm)."""
    jump = f"-o ProxyJump={user}@127.0.0.1:{hosts['gitlab-vm'].port}"
    private = {"ansible_ssh_common_args": f"{jump} -o StrictHostKeyChecking=accept-new"}

    def host(name: str, ip: str) -> dict[str, Any]:
        return {"ansible_host": "127.0.0.1", "ansible_port": hosts[name].port, "private_ip": ip}

    return {
        "all": {
            "vars": {
                "duo_cloud": "hosts",
                "ansible_user": user,
                "gitlab_domain": "gitlab.example.com",
                "gitlab_url": "https://gitlab.example.com",
            },
            "children": {
                "gitlab": {"hosts": {"gitlab-vm": {**host("gitlab-vm", "10.0.1.10")}}},
                "ai_gateway": {
                    "hosts": {"gateway-vm": host("gateway-vm", "10.0.2.10")},
                    "vars": private,
                },
                "ollama": {"hosts": {"ollama-vm": host("ollama-vm", "10.0.3.10")}, "vars": private},
            },
        }
    }
