"""duoctl.tunnel against real OpenSSH servers: a model host on a private network reached only
through a jump host, as a deploy reaches the model server through the GitLab VM.

Two containers of the base image (tests/tooling/docker_env.py: systemd, sshd with host keys
made at boot, user `ubuntu`), cloud-init's part played by tests/tooling/cloud_init.py:

- `tunnel-jump-<id>` on Docker's default bridge (its "public" address, reachable from here)
  and on an internal network (its private address);
- `tunnel-model-<id>` on the internal network only, serving an OpenAI-style `/v1/models` on
  its private address (as vLLM binds its private address, never all interfaces).

The tunnel logs in to the jump host, then to the model host through it, pinning both host
keys in the deployment's known_hosts on first login; the model's API is read through the
local port; on exit and on Ctrl-C the port and the threads are gone; a changed host key is
refused. Container and network names start with `tunnel-` and are removed at the end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from duoctl.deployment import Deployment
from duoctl.duo_config import listed_models
from duoctl.errors import DuoctlError
from duoctl.tunnel import forward

from tests.tooling import cloud_init
from tests.tooling.ssh_keys import generate_key

pytestmark = pytest.mark.slow

SUFFIX = f"{os.getpid()}"
JUMP, MODEL, NETWORK = f"tunnel-jump-{SUFFIX}", f"tunnel-model-{SUFFIX}", f"tunnel-net-{SUFFIX}"
PORT = 8000
SERVED = "mistral-small-24b-w4a16"
RUN_OPTIONS = (
    "--detach",
    "--cap-add=SYS_ADMIN",
    "--cap-add=NET_ADMIN",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--tmpfs=/tmp",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--cgroupns=host",
)
# Run in the model container: /v1/models as a file, served on the private address only.
SERVE = """
set -eu
mkdir -p /srv/api/v1
printf '%s' "$2" > /srv/api/v1/models
cd /srv/api
nohup python3 -m http.server "$3" --bind "$1" >/dev/null 2>&1 &
"""


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def address_on(container: str, network: str) -> str:
    template = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
    return docker("inspect", "--format", template, container)


@dataclass
class Hosts:
    deployment: Deployment
    key_file: Path
    known_hosts: Path
    model_ip: str


def deployment_for(public: str, jump_private: str, model_private: str) -> Deployment:
    return Deployment.model_validate(
        {
            "target": "aws",
            "domain": "gitlab.example.com",
            "hosts": [
                {
                    "name": "gitlab-vm",
                    "group": "gitlab",
                    "private_ip": jump_private,
                    "public_ip": public,
                    "ssh_user": cloud_init.USER,
                },
                {
                    "name": "gateway-vm",  # not started: the tunnel only needs the other two
                    "group": "ai_gateway",
                    "private_ip": "10.213.250.20",
                    "ssh_user": cloud_init.USER,
                    "via_jump": True,
                },
                {
                    "name": "vllm-vm",
                    "group": "vllm",
                    "private_ip": model_private,
                    "ssh_user": cloud_init.USER,
                    "via_jump": True,
                },
            ],
            "ports": {"ollama_port": PORT},
        }
    )


@pytest.fixture(scope="module")
def hosts(container_tooling: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    folder = tmp_path_factory.mktemp("tunnel")
    key_file, public_key = generate_key(folder)
    try:
        docker("network", "create", "--internal", NETWORK)
        docker("run", *RUN_OPTIONS, "--name", JUMP, "--hostname", "gitlab-vm", container_tooling,
               "/lib/systemd/systemd")  # fmt: skip
        docker("network", "connect", NETWORK, JUMP)
        docker("run", *RUN_OPTIONS, "--name", MODEL, "--hostname", "vllm-vm",
               "--network", NETWORK, container_tooling, "/lib/systemd/systemd")  # fmt: skip
        jump_public = address_on(JUMP, "bridge")
        jump_private, model_ip = address_on(JUMP, NETWORK), address_on(MODEL, NETWORK)
        cloud_init.provision(JUMP, public_key, [jump_public])
        cloud_init.provision(MODEL, public_key)  # not reachable from here: no banner check
        listing = json.dumps({"object": "list", "data": [{"id": SERVED, "object": "model"}]})
        docker("exec", MODEL, "sh", "-c", SERVE, "sh", model_ip, listing, str(PORT))
        yield Hosts(
            deployment_for(jump_public, jump_private, model_ip),
            key_file,
            folder / "known_hosts",
            model_ip,
        )
    finally:
        docker("rm", "--force", JUMP, MODEL, check=False)
        docker("network", "rm", NETWORK, check=False)


def tunnel_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("duoctl-tunnel-")]


def refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


def test_the_model_api_is_read_through_the_jump_host(hosts: Hosts) -> None:
    # the model host's private address is not reachable from here: only the tunnel gets there
    assert refused(f"{hosts.model_ip}:{PORT}")
    with forward(
        hosts.deployment,
        hosts.deployment.model,
        PORT,
        key_file=str(hosts.key_file),
        known_hosts=hosts.known_hosts,
        timeout=30,
    ) as address:
        assert listed_models(f"http://{address}") == [SERVED]
        with urllib.request.urlopen(f"http://{address}/v1/models", timeout=10) as answer:
            assert json.load(answer)["data"][0]["id"] == SERVED
        assert tunnel_threads()
    assert refused(address)
    assert tunnel_threads() == []
    # both hosts pinned on first login, by the names SSH uses for them
    pinned = {line.split()[0] for line in hosts.known_hosts.read_text().splitlines()}
    assert pinned == {hosts.deployment.gitlab.address, hosts.model_ip}


def test_ctrl_c_closes_the_tunnel(hosts: Hosts) -> None:
    seen: list[str] = []

    def interrupted() -> None:
        with forward(
            hosts.deployment,
            hosts.deployment.model,
            PORT,
            key_file=str(hosts.key_file),
            known_hosts=hosts.known_hosts,
            timeout=30,
        ) as address:
            seen.append(address)
            assert listed_models(f"http://{address}") == [SERVED]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert refused(seen[0])
    assert tunnel_threads() == []


def test_a_changed_host_key_of_the_model_host_is_refused(hosts: Hosts, tmp_path: Path) -> None:
    other = paramiko.ECDSAKey.generate()
    lines = hosts.known_hosts.read_text().splitlines()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        "".join(
            f"{hosts.model_ip} {other.get_name()} {other.get_base64()}\n"
            if line.startswith(f"{hosts.model_ip} ")
            else f"{line}\n"
            for line in lines
        )
    )
    with (
        pytest.raises(DuoctlError, match=r"differs from the key pinned"),
        forward(
            hosts.deployment,
            hosts.deployment.model,
            PORT,
            key_file=str(hosts.key_file),
            known_hosts=wrong,
            timeout=30,
        ),
    ):
        pass
    assert tunnel_threads() == []
