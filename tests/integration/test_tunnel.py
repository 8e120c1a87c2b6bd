"""duoctl.tunnel against the in-process SSH double (tests/doubles/ssh_hosts.py): a local port
forwarded through the jump host to a service behind the model host, closed on exit and on
Ctrl-C. The same against real OpenSSH servers: tests/molecule/test_tunnel.py."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from duoctl.deployment import Deployment, Host
from duoctl.errors import DuoctlError
from duoctl.tunnel import forward

from tests.doubles.ssh_hosts import SshHosts, ssh_hosts


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[int]:
    """An HTTP service on loopback standing in for the model server's API."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def hosts() -> Iterator[SshHosts]:
    with ssh_hosts(["gitlab-vm", "gateway-vm", "vllm-vm"]) as running:
        yield running


def deployment_of(hosts: SshHosts) -> Deployment:
    def host(name: str, group: str, public: bool) -> Host:
        return Host.model_validate(
            {
                "name": name,
                "group": group,
                "private_ip": "127.0.0.1",
                "public_ip": "127.0.0.1" if public else None,
                "ssh_port": hosts[name].port,
                "via_jump": not public,
            }
        )

    return Deployment(
        target="aws",
        domain="gitlab.example.com",
        hosts=(
            host("gitlab-vm", "gitlab", True),
            host("gateway-vm", "ai_gateway", False),
            host("vllm-vm", "vllm", False),
        ),
    )


def tunnel_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("duoctl-tunnel-")]


def get(address: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as answer:
        return str(answer.read().decode())


def refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


def test_forwards_through_the_jump_host_and_closes_on_exit(
    hosts: SshHosts, service: int, tmp_path: Path
) -> None:
    deployment = deployment_of(hosts)
    known_hosts = tmp_path / "known_hosts"
    with forward(
        deployment, deployment.model, service, key_file=str(hosts.key_file), known_hosts=known_hosts
    ) as address:
        assert address.startswith("127.0.0.1:")
        # several connections, one after another and at once
        assert get(address, "/v1/models") == "hello /v1/models"
        results: list[str] = []
        workers = [
            threading.Thread(target=lambda i=i: results.append(get(address, f"/{i}")))
            for i in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert sorted(results) == [f"hello /{i}" for i in range(4)]
        assert tunnel_threads()
    # SSH to the model host went through GitLab; the service was reached from the model host
    assert ("127.0.0.1", hosts["vllm-vm"].port) in hosts["gitlab-vm"].forwards
    assert hosts["vllm-vm"].forwards.count(("127.0.0.1", service)) == 5
    # both hosts pinned on first login, in the deployment's known_hosts
    pinned = known_hosts.read_text()
    assert f"[127.0.0.1]:{hosts['gitlab-vm'].port}" in pinned
    assert f"[127.0.0.1]:{hosts['vllm-vm'].port}" in pinned
    assert refused(address)
    assert tunnel_threads() == []


def test_ctrl_c_closes_the_tunnel(hosts: SshHosts, service: int, tmp_path: Path) -> None:
    deployment = deployment_of(hosts)
    seen: list[tuple[str, socket.socket]] = []

    def interrupted() -> None:
        with forward(
            deployment,
            deployment.model,
            service,
            key_file=str(hosts.key_file),
            known_hosts=tmp_path / "known_hosts",
        ) as address:
            # a connection left open when Ctrl-C comes
            held = socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])))
            held.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n")
            seen.append((address, held))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    [(address, held)] = seen
    assert refused(address)
    try:  # closed by the tunnel (reset when it was still in the listener's backlog)
        assert held.recv(1) == b""
    except ConnectionResetError:
        pass
    finally:
        held.close()
    assert tunnel_threads() == []


def test_an_ssh_failure_names_the_host_and_the_jump_host(
    hosts: SshHosts, service: int, tmp_path: Path
) -> None:
    deployment = deployment_of(hosts)
    hosts["vllm-vm"].stop()  # the model host does not answer
    with (
        pytest.raises(DuoctlError, match=r"vllm-vm .* through gitlab-vm") as caught,
        forward(
            deployment,
            deployment.model,
            service,
            key_file=str(hosts.key_file),
            known_hosts=tmp_path / "known_hosts",
            timeout=3,
        ),
    ):
        pass
    assert caught.value.exit_code == 1
    assert tunnel_threads() == []


def test_a_connection_the_host_cannot_make_is_closed_and_the_tunnel_stays(
    hosts: SshHosts, service: int, tmp_path: Path
) -> None:
    deployment = deployment_of(hosts)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with forward(
        deployment,
        deployment.model,
        closed_port,
        key_file=str(hosts.key_file),
        known_hosts=tmp_path / "known_hosts",
    ) as address:
        host, port = address.rsplit(":", 1)
        for _ in range(2):
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.settimeout(10)
                assert conn.recv(1) == b""  # closed, not hanging
    assert tunnel_threads() == []
