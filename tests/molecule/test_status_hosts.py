"""`duoctl status` against three systemd containers reached over real SSH (OpenSSH's sshd),
the two private ones through the GitLab container as the jump host, with host keys pinned
in the deployment's known_hosts before the first login.

The containers (names `status-*`, their own Docker network) stand in for the three VMs of
an own-hosts deployment (`--inventory`): cloud-init's part is played by
tests/tooling/cloud_init.py (a generated key authorized for `ubuntu`), and each service status
reads is a real systemd unit: GitLab's puma, sidekiq and gitaly (`sleep` units, with a
`gitlab-ctl` that reports them in gitlab-ctl's format), the gateway (a `docker` that reports
the `ai-gateway` unit as the container, which serves /monitoring/healthz on 5052) and Ollama
(a unit serving /api/version and /api/tags on 11434). The test checks that everything is up
(exit 0), then stops Ollama's unit and checks that it is reported down, with the reason
(exit 1), and that status pinned no new host key.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from duoctl.deployment import Deployment
from duoctl.status import command
from duoctl.status.options import StatusOptions

from tests.tooling import cloud_init
from tests.tooling.ssh_keys import generate_key

pytestmark = pytest.mark.slow

IMAGE_REF = "registry.gitlab.com/gitlab-org/model-gateway:self-hosted-v18.9.0-ee"
DIGEST = "sha256:" + "5" * 64
UNIT = """[Unit]
Description={name} (status test stand-in)
[Service]
ExecStart={command}
[Install]
WantedBy=multi-user.target
"""
GITLAB_CTL = """#!/bin/sh
# gitlab-ctl status, in its format, of the stand-in units fake-<service>
rc=0
for s in gitaly puma sidekiq; do
  if systemctl is-active -q "fake-$s"; then
    echo "run: $s: (pid $(systemctl show -p MainPID --value "fake-$s")) 60s; run: log: (pid 1) 60s"
  else
    echo "down: $s: 0s, normally up; run: log: (pid 1) 60s"; rc=6
  fi
done
exit $rc
"""
DOCKER = """#!/bin/sh
# docker inspect of the container ai-gateway, played by the unit ai-gateway
case "$1 $2" in
  "inspect --type")
    if systemctl is-active -q ai-gateway; then r=true; s=running; else r=false; s=exited; fi
    f='[{"Image":"sha256:%s","Config":{"Image":"{image}"},'
    f="$f"'"State":{"Running":%s,"Status":"%s"}}]\\n'
    printf "$f" 1111111111111111111111111111111111111111111111111111111111111111 "$r" "$s";;
  "image inspect") echo '["{repository}@{digest}"]';;
  *) exit 1;;
esac
"""


@dataclass
class Container:
    name: str
    address: str


def docker(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"docker {args[0]}: {result.stderr.strip()}"
    return result.stdout


def sh(container: Container, script: str, stdin: str | None = None) -> str:
    return docker("exec", "-i", container.name, "sh", "-c", script, stdin=stdin)


def put(container: Container, path: str, text: str, mode: str = "0644") -> None:
    sh(container, f"mkdir -p $(dirname {path}) && cat > {path} && chmod {mode} {path}", text)


def unit(container: Container, name: str, start: str) -> None:
    put(container, f"/etc/systemd/system/{name}.service", UNIT.format(name=name, command=start))
    sh(container, f"systemctl daemon-reload && systemctl enable --now {name}")


@pytest.fixture(scope="module")
def lab(
    container_tooling: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Container], Path, Path]]:
    suffix = secrets.token_hex(3)
    network = f"status-net-{suffix}"
    names = {role: f"status-{role}-{suffix}" for role in ("gitlab", "gateway", "ollama")}
    folder = tmp_path_factory.mktemp("status-hosts")
    key_file, public_key = generate_key(folder)
    docker("network", "create", network)
    try:
        containers: dict[str, Container] = {}
        for role, name in names.items():
            docker(
                "run",
                "-d",
                "--name",
                name,
                "--network",
                network,
                "--hostname",
                name,
                "--cap-add",
                "SYS_ADMIN",
                "--cap-add",
                "NET_ADMIN",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                "--tmpfs",
                "/tmp",
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                "--cgroupns",
                "host",
                container_tooling,
                "/lib/systemd/systemd",
            )
            address = docker(
                "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name
            ).strip()
            containers[role] = Container(name, address)
        known_hosts = []
        for container in containers.values():
            cloud_init.provision(container.name, public_key, [container.address])
            for line in cloud_init.host_keys(container.name):
                kind, b64 = line.split()[:2]
                known_hosts.append(f"{container.address} {kind} {b64}")
        gitlab, gateway, ollama = containers["gitlab"], containers["gateway"], containers["ollama"]
        put(gitlab, "/opt/gitlab/embedded/service/gitlab-rails/VERSION", "18.9.0-ee\n")
        put(gitlab, "/usr/local/bin/gitlab-ctl", GITLAB_CTL, "0755")
        for service in ("gitaly", "puma", "sidekiq"):
            unit(gitlab, f"fake-{service}", "/bin/sleep infinity")
        put(gateway, "/srv/gw/monitoring/healthz", '{"status": "ok"}\n')
        repository = IMAGE_REF.rsplit(":", 1)[0]
        script = (
            DOCKER.replace("{image}", IMAGE_REF)
            .replace("{repository}", repository)
            .replace("{digest}", DIGEST)
        )
        put(gateway, "/usr/local/bin/docker", script, "0755")
        unit(gateway, "ai-gateway", "/usr/bin/python3 -m http.server 5052 --directory /srv/gw")
        put(ollama, "/srv/ollama/api/version", '{"version": "0.6.2"}\n')
        put(ollama, "/srv/ollama/api/tags", '{"models": [{"name": "mistral:instruct"}]}\n')
        unit(ollama, "ollama", "/usr/bin/python3 -m http.server 11434 --directory /srv/ollama")
        deployment = Deployment.model_validate(
            {
                "target": "hosts",
                "domain": "gitlab.example.com",
                "hosts": [
                    {
                        "name": "gitlab-vm",
                        "group": "gitlab",
                        "private_ip": gitlab.address,
                        "public_ip": gitlab.address,
                    },
                    {
                        "name": "gateway-vm",
                        "group": "ai_gateway",
                        "private_ip": gateway.address,
                        "via_jump": True,
                    },
                    {
                        "name": "ollama-vm",
                        "group": "ollama",
                        "private_ip": ollama.address,
                        "via_jump": True,
                    },
                ],
            }
        )
        inventory = folder / "inventory.yml"
        inventory.write_text(deployment.inventory_text(None))
        (folder / "known_hosts").write_text("\n".join(known_hosts) + "\n")
        yield containers, inventory, key_file
    finally:
        for name in names.values():
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)


def status(inventory: Path, key_file: Path) -> tuple[int, dict[str, Any]]:
    outputs: list[str] = []
    options = StatusOptions(
        inventory=inventory, ssh_key=str(key_file), timeout=5, json=True, out=outputs.append
    )
    code = command.run(options)
    return code, json.loads(outputs[0])


def test_status_over_real_ssh_then_a_stopped_service_is_down(
    lab: tuple[dict[str, Container], Path, Path],
) -> None:
    containers, inventory, key_file = lab
    pinned = (inventory.parent / "known_hosts").read_text()
    code, data = status(inventory, key_file)
    assert data["down"] == [] and code == 0, data
    assert data["versions"] == {
        "gitlab": "18.9.0-ee",
        "gateway_image": IMAGE_REF,
        "gateway_digest": DIGEST,
        "model_server": "ollama 0.6.2",
        "models": ["mistral:instruct"],
    }
    hosts = {h["name"]: h for h in data["hosts"]}
    assert [s["name"] for s in hosts["gitlab-vm"]["services"]] == ["gitaly", "puma", "sidekiq"]
    assert data["seconds"] < 10
    assert data["gitlab"]["state"] == "unknown"  # no token: not asked

    sh(containers["ollama"], "systemctl stop ollama")
    code, data = status(inventory, key_file)
    assert code == 1
    assert data["down"] == [
        "ollama-vm: ollama service: inactive",
        next(d for d in data["down"] if d.startswith("ollama-vm: ollama API: ")),
    ]
    assert (inventory.parent / "known_hosts").read_text() == pinned  # nothing new pinned
