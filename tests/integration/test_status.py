"""`duoctl status` end to end on loopback: GitLab's part against the GitLab API double (18.x
and 19.4, configured by `duoctl configure` first), the hosts over SSH through the jump host
(the SSH servers of tests/doubles/ssh_hosts.py, made to answer the status commands, and one
HTTP server standing in for the gateway's and Ollama's APIs), the GPU VM's state from moto
(AWS) and from the Compute Engine double (Google Cloud, with instances.get added here), and
GitLab's Prometheus: the stand-in gitlab-ee package's Prometheus API (run in-process on a
loopback port, scraping loopback /metrics servers, with the gitlab role's duo.rules), asked by
the status command's python3 script, which the GitLab host's SSH double runs for real."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import boto3  # type: ignore[import-untyped]
import jinja2
import paramiko
import pytest
import yaml
from duoctl.cli import main
from duoctl.status import command, monitoring
from duoctl.status.gitlab import gitlab_view
from duoctl.status.options import StatusOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.doubles import gcp_compute_api, ssh_hosts
from tests.doubles.aws_moto_server import AWS_CREDENTIALS, UBUNTU_NOBLE_AMIS, moto_server
from tests.doubles.gitlab_api import ADMIN_TOKEN, GitLabDouble, gitlab_double

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "duo.yml"
STANDIN = ROOT / "tests/doubles/gitlab_ee_package/root/opt/gitlab/embedded/standin/standin.py"
DUO_RULES = ROOT / "ansible/roles/gitlab/templates/duo.rules.j2"
NOTHING_LISTENS = "http://127.0.0.1:9"
V18, V19 = "18.9.0-ee", "19.4.1-ee"
GITLAB_CTL = """run: gitaly: (pid 802) 3600s; run: log: (pid 791) 3600s
run: postgresql: (pid 805) 3600s; run: log: (pid 795) 3600s
run: puma: (pid 806) 3600s; run: log: (pid 796) 3600s
{sidekiq}: sidekiq: {sidekiq_detail}; run: log: (pid 797) 3600s
"""
IMAGE = "registry.gitlab.com/gitlab-org/model-gateway:self-hosted-v18.9.0-ee"
DIGEST = "sha256:" + "d" * 64
KEY = "vllm-test-key-0123456789"
BENCH_KNEE = {
    "path": "gitlab",
    "level": 8,
    "latency_p95": 1.2,
    "requests_per_s": 3.1,
    "developers": 40,
}


def configure(double: GitLabDouble, tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["gitlab"]["url"] = double.url
    config, token = tmp_path / "duo.yml", tmp_path / "token"
    config.write_text(yaml.safe_dump(data))
    token.write_text(ADMIN_TOKEN + "\n")
    args = ["configure", "--config", str(config), "--token-file", str(token), "--allow-http"]
    assert main(args) == 0


@pytest.fixture(params=[V18, V19])
def gitlab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GitLabDouble]:
    with gitlab_double(request.param) as double:
        configure(double, tmp_path)
        double.reset_log()
        yield double
        assert double.invalid_documents == [], "a document GitLab's schema refuses was sent"
        assert double.writes == 0, "status changed something"


def test_gitlab_part_reads_what_configure_wrote(gitlab: GitLabDouble) -> None:
    view = gitlab_view(gitlab.url, ADMIN_TOKEN, None, 5)
    assert view.state == "up", view.reason
    assert view.version == gitlab.instance.version
    assert view.gateway_url == "http://10.0.2.10:5052"
    assert [(m.name, m.family) for m in view.models] == [("mistral-7b-ollama", "MISTRAL")]
    assert view.models[0].endpoint == "http://10.0.3.10:11434/v1"
    mapped = {f.feature: f.model for f in view.features}
    assert mapped and set(mapped.values()) == {"mistral-7b-ollama"}
    assert view.seats is not None and view.seats.purchased == 10 and view.seats.assigned >= 1
    assert gitlab.requests == 2  # the probe and the Duo state


def test_gitlab_part_names_a_rejected_token_and_an_unreachable_gitlab(
    gitlab: GitLabDouble,
) -> None:
    view = gitlab_view(gitlab.url, "glpat-wrong-token-000000", None, 5)
    assert view.state == "unknown" and "Invalid token" in view.reason
    gone = gitlab_view("http://127.0.0.1:9", ADMIN_TOKEN, None, 2)
    assert gone.state == "down" and gone.reason.startswith("cannot reach GitLab")


# ------------------------------------------------------------------ hosts over SSH


class ApiHandler(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, Any]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, body = self.answers.get(self.path, (404, {"error": "not found"}))
        if self.path.startswith("/v1/") and self.headers.get("Authorization") != f"Bearer {KEY}":
            status, body = 401, {"error": "Unauthorized"}  # as vLLM with --api-key
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def model_api() -> Iterator[int]:
    """The gateway's health and Ollama's API on one loopback port."""
    answers = {
        "/monitoring/healthz": (200, {"status": "ok"}),
        "/api/version": (200, {"version": "0.6.2"}),
        "/api/tags": (200, {"models": [{"name": "mistral:instruct"}]}),
        "/health": (200, ""),
        "/version": (200, {"version": "0.9.1"}),
        "/v1/models": (200, {"object": "list", "data": [{"id": "mistral-small-24b"}]}),
    }
    handler = type("Handler", (ApiHandler,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def run_python(command: str) -> tuple[int, str]:
    """`python3 -c SCRIPT ARGS...` run here, as the host would run it."""
    argv = shlex.split(command)
    done = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, timeout=20, check=False
    )
    return done.returncode, done.stdout


def answering(outputs: dict[str, dict[str, tuple[int, str]]]) -> Any:
    """An exec handler for the SSH double: each host answers its commands' output; the GitLab
    host runs the `python3 -c` commands (status' Prometheus requests) for real."""

    def exec_request(self: Any, channel: paramiko.Channel, command: bytes) -> bool:
        text = command.decode()
        self.host.execs.append(text)
        known = outputs.get(self.host.name, {})
        code, out = next((v for k, v in known.items() if text.startswith(k)), (127, ""))
        python = self.host.name == "gitlab-vm" and text.startswith("python3 -c ")

        def finish() -> None:
            nonlocal code, out
            if python:
                code, out = run_python(text)
            try:
                channel.sendall(out.encode())
                channel.send_exit_status(code)
                channel.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass

        self.run_after_reply(channel, finish)  # once the request is answered, as sshd does
        return True

    return exec_request


def host_outputs(sidekiq_up: bool) -> dict[str, dict[str, tuple[int, str]]]:
    word, detail = ("run", "(pid 807) 3600s") if sidekiq_up else ("down", "4s, normally up")
    container = [
        {
            "Image": "sha256:" + "e" * 64,
            "Config": {"Image": IMAGE},
            "State": {"Running": True, "Status": "running"},
        }
    ]
    return {
        "gitlab-vm": {
            "sudo -n gitlab-ctl status": (
                0 if sidekiq_up else 6,
                GITLAB_CTL.format(sidekiq=word, sidekiq_detail=detail),
            ),
            "cat /opt/gitlab/embedded/service/gitlab-rails/VERSION": (0, "18.9.0-ee\n"),
        },
        "gateway-vm": {
            "sudo -n docker inspect": (0, json.dumps(container)),
            "sudo -n docker image inspect": (0, json.dumps([IMAGE.split(":")[0] + "@" + DIGEST])),
        },
        "ollama-vm": {
            "sudo -n systemctl is-active ollama": (0, "active\n"),
            "sudo -n systemctl is-active vllm": (0, "active\n"),
        },
    }


@dataclass
class Lab:
    deploy_dir: Path
    hosts: ssh_hosts.SshHosts
    api_port: int


def write_deployment(
    lab_dir: Path,
    hosts: ssh_hosts.SshHosts,
    api_port: int,
    target: str,
    instance: str,
    serving: str = "ollama",
) -> Path:
    folder = lab_dir / ".deploy" / "lab"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "gitlab_admin_token").write_text(ADMIN_TOKEN + "\n")
    deployment = {
        "target": target,
        "domain": "gitlab.example.com",
        "zone": "europe-west4-a" if target == "gcp" else None,
        "ports": {"gateway_port": api_port, "ollama_port": api_port},
        "hosts": [
            {
                "name": "gitlab-vm",
                "group": "gitlab",
                "private_ip": "127.0.0.1",
                "public_ip": "127.0.0.1",
                "ssh_port": hosts["gitlab-vm"].port,
                "instance": "gitlab-1",
            },
            {
                "name": "gateway-vm",
                "group": "ai_gateway",
                "private_ip": "127.0.0.1",
                "ssh_port": hosts["gateway-vm"].port,
                "via_jump": True,
                "instance": "gateway-1",
            },
            {
                "name": "ollama-vm",
                "group": serving,
                "private_ip": "127.0.0.1",
                "ssh_port": hosts["ollama-vm"].port,
                "via_jump": True,
                "instance": instance,
            },
        ],
    }
    finished = "2026-11-30T22:00:00+00:00"
    state = {
        "version": 1,
        "inputs": {},
        "steps": {"verify": {"status": "done", "seconds": 40.0, "finished_at": finished}},
        "data": {"deployment": deployment},
    }
    (folder / "state.json").write_text(json.dumps(state))
    settings: dict[str, Any] = {
        "cloud": target,
        "region": "us-east-1" if target == "aws" else "europe-west4",
        "ssh_public_key_file": str(lab_dir / "id.pub"),
        "admin_cidr": "198.51.100.7/32",
    }
    if target == "gcp":
        settings.update(project="duo-test", zone="europe-west4-a")
    (folder / "settings.yml").write_text(yaml.safe_dump(settings))
    (folder / "bench" / "20261130-2300").mkdir(parents=True)
    (folder / "bench" / "20261130-2300" / "results.json").write_text(
        json.dumps(
            {
                "schema": "duoctl.bench/1",
                "started_at": "2026-11-30T23:00:00+00:00",
                "knee": BENCH_KNEE,
            }
        )
    )
    return folder


@contextmanager
def lab(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sidekiq_up: bool,
    prometheus_url: str = NOTHING_LISTENS,
) -> Iterator[Lab]:
    """The hosts; GitLab's Prometheus (asked from the GitLab host) at `prometheus_url`."""
    monkeypatch.setattr(
        ssh_hosts._Interface, "check_channel_exec_request", answering(host_outputs(sidekiq_up))
    )
    monkeypatch.setattr(monitoring, "PROMETHEUS_URL", prometheus_url)
    with (
        ssh_hosts.ssh_hosts(["gitlab-vm", "gateway-vm", "ollama-vm"]) as hosts,
        model_api() as port,
    ):
        yield Lab(tmp_path / ".deploy", hosts, port)


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", str(endpoint))
        for key, value in AWS_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        yield str(endpoint)


def gpu_instance(endpoint: str) -> tuple[Any, str]:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint)
    answer = ec2.run_instances(
        ImageId=UBUNTU_NOBLE_AMIS[-1]["ami_id"], InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1
    )
    return ec2, str(answer["Instances"][0]["InstanceId"])


def status_json(
    capsys: pytest.CaptureFixture[str], deploy_dir: Path, gitlab_url: str, key: Path
) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    args = ["status", "--name", "lab", "--deploy-dir", str(deploy_dir), "--json"]
    args += ["--gitlab-url", gitlab_url, "--allow-http", "--ssh-key", str(key), "--timeout", "3"]
    code = main(args)
    seconds = time.monotonic() - started
    out = capsys.readouterr()
    assert ADMIN_TOKEN not in out.out + out.err
    return code, json.loads(out.out), seconds


@pytest.mark.parametrize("version", [V19])
def test_a_healthy_aws_deployment_is_all_up_then_a_stopped_service_is_down(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    moto: str,
    version: str,
) -> None:
    ec2, instance = gpu_instance(moto)
    with gitlab_double(version) as double:
        configure(double, tmp_path)
        double.reset_log()
        capsys.readouterr()
        for sidekiq_up in (True, False):
            with lab(monkeypatch, tmp_path / str(sidekiq_up), sidekiq_up) as env:
                write_deployment(
                    tmp_path / str(sidekiq_up), env.hosts, env.api_port, "aws", instance
                )
                code, data, seconds = status_json(
                    capsys, env.deploy_dir, double.url, env.hosts.key_file
                )
                assert seconds < 10
                versions = data["versions"]
                assert versions == {
                    "gitlab": version,
                    "gateway_image": IMAGE,
                    "gateway_digest": DIGEST,
                    "model_server": "ollama 0.6.2",
                    "models": ["mistral:instruct"],
                }
                assert [h["state"] for h in data["hosts"]] == ["up", "up", "up"]
                assert data["gitlab"]["gateway_url"] == "http://10.0.2.10:5052"
                assert data["gpu_vm"]["state"] == "running" and data["gpu_vm"]["up"] == "up"
                assert data["cost"]["hourly_usd"] == 0.526
                assert data["verify"]["status"] == "done" and data["verify"]["age"]
                assert data["bench"]["knee"] == BENCH_KNEE
                # The private hosts were reached through the jump host.
                assert ("127.0.0.1", env.hosts["ollama-vm"].port) in env.hosts["gitlab-vm"].forwards
                if sidekiq_up:
                    assert (code, data["ok"], data["down"]) == (0, True, [])
                else:
                    assert code == 1 and data["ok"] is False
                    assert data["down"] == ["gitlab-vm: sidekiq: down: 4s, normally up"]
        assert double.writes == 0 and double.invalid_documents == []
    ec2.stop_instances(InstanceIds=[instance])
    with lab(monkeypatch, tmp_path / "stopped", True) as env:
        write_deployment(tmp_path / "stopped", env.hosts, env.api_port, "aws", instance)
        code, data, _ = status_json(
            capsys, env.deploy_dir, "http://127.0.0.1:9", env.hosts.key_file
        )
    assert code == 1
    assert data["gpu_vm"]["state"] == "stopped" and "GPU VM: the VM is stopped" in data["down"]
    assert data["gitlab"]["state"] == "down"  # nothing listens there


def test_an_unanswering_host_is_down_with_the_reason_and_the_screen_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with lab(monkeypatch, tmp_path, True) as env:
        write_deployment(tmp_path, env.hosts, env.api_port, "aws", "i-0000000000000000")
        env.hosts["gateway-vm"].stop()
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # no cloud answers
        for key, value in AWS_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        args = ["status", "--name", "lab", "--deploy-dir", str(env.deploy_dir), "--timeout", "2"]
        args += ["--gitlab-url", "http://127.0.0.1:9", "--allow-http"]
        code = main([*args, "--ssh-key", str(env.hosts.key_file)])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"DOWN  gateway-vm .*\n +SSH: \w+", out), out
    assert "up    ollama-vm" in out and "up    gitlab-vm" in out
    assert "GPU VM          unknown (i-0000000000000000)" in out


# ------------------------------------------------------------------ Google Cloud


class InstancesHandler(gcp_compute_api._Handler):
    """The Compute double with instances.get, answering the instance statuses of the world."""

    statuses: ClassVar[dict[str, tuple[str, str]]] = {}  # instance -> (status, machine type)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        match = re.fullmatch(r"/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)", path)
        if not match or match.group(3) not in self.statuses:
            super().do_GET()
            return
        self.world.requests.append(path)
        status, machine_type = self.statuses[match.group(3)]
        base = f"{gcp_compute_api.API}/projects/{match.group(1)}/zones/{match.group(2)}"
        body = {
            "kind": "compute#instance",
            "name": match.group(3),
            "status": status,
            "machineType": f"{base}/machineTypes/{machine_type}",
            "selfLink": f"{base}/instances/{match.group(3)}",
        }
        self._send(200, body)


@contextmanager
def compute_api(statuses: dict[str, tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    world = gcp_compute_api.ComputeWorld.default()
    handler = type("Handler", (InstancesHandler,), {"world": world, "statuses": statuses})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", world.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("gce_status", "state", "code"), [("RUNNING", "running", 0), ("TERMINATED", "stopped", 1)]
)
def test_gcp_gpu_vm_state_from_compute_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gce_status: str, state: str, code: int
) -> None:
    outputs: list[str] = []
    with (
        compute_api({"duo-ollama": (gce_status, "n1-standard-4")}) as (endpoint, requests),
        gitlab_double(V18) as double,
    ):
        configure(double, tmp_path)
        with lab(monkeypatch, tmp_path / "lab", True) as env:
            write_deployment(tmp_path / "lab", env.hosts, env.api_port, "gcp", "duo-ollama")
            options = StatusOptions(
                name="lab",
                deploy_dir=env.deploy_dir,
                gitlab_url=double.url,
                allow_http=True,
                ssh_key=str(env.hosts.key_file),
                timeout=3,
                json=True,
                out=outputs.append,
            )
            client = compute_v1.InstancesClient(
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": endpoint},
                transport="rest",
            )
            assert command.run(options, cloud_client=lambda: client) == code
    data = json.loads(outputs[0])
    assert data["gpu_vm"] == {
        "instance": "duo-ollama",
        "machine_type": "n1-standard-4",
        "state": state,
        "up": "up" if code == 0 else "down",
        "reason": "" if code == 0 else "the VM is stopped",
        "stopped_by_schedule": False,
    }
    assert data["cost"]["machine_type"] == "n1-standard-4" and data["cost"]["hourly_usd"] == 0.54
    assert "/compute/v1/projects/duo-test/zones/europe-west4-a/instances/duo-ollama" in requests


def test_vllm_is_asked_with_the_deployments_key_and_the_key_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with lab(monkeypatch, tmp_path, True) as env:
        folder = write_deployment(tmp_path, env.hosts, env.api_port, "hosts", "", "vllm")
        (folder / "settings.yml").unlink()
        for with_key in (True, False):
            if with_key:
                (folder / "secrets" / "vllm_api_key").write_text(KEY + "\n")
            else:
                (folder / "secrets" / "vllm_api_key").unlink()
            _, data, _ = status_json(
                capsys, env.deploy_dir, "http://127.0.0.1:9", env.hosts.key_file
            )
            assert data["serving"] == "vllm" and data["versions"]["model_server"] == "vllm 0.9.1"
            assert data["versions"]["models"] == (["mistral-small-24b"] if with_key else [])
            assert data["gpu_vm"] is None and data["cost"] is None  # own hosts
            assert KEY not in json.dumps(data)
            model_host = data["hosts"][2]["services"]
            assert [(s["name"], s["state"]) for s in model_host] == [
                ("vllm service", "up"),
                ("vllm /health", "up"),
            ]
        execs = " ".join(env.hosts["ollama-vm"].execs)
        assert KEY not in execs  # the key went in a header, never on a command line


# ------------------------------------------------------------------ GitLab's Prometheus


def load_standin() -> ModuleType:
    """The stand-in gitlab-ee package's program, imported (its Prometheus functions need no
    root: only its commands touch /etc/gitlab and /var/opt/gitlab)."""
    spec = importlib.util.spec_from_file_location("gitlab_ee_standin", STANDIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = load_standin()


class MetricsHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        ok = self.path == "/metrics"
        data = b"# TYPE up gauge\nnode_load1 0.5\n" if ok else b"404 page not found\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class Exporter:
    """A loopback /metrics server: a node exporter or the gateway's metrics port."""

    server: ThreadingHTTPServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def exporters(count: int) -> Iterator[list[Exporter]]:
    running = []
    try:
        for _ in range(count):
            server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            running.append(Exporter(server))
        yield running
    finally:
        for exporter in running:
            if exporter.server.socket.fileno() != -1:
                exporter.stop()


OMNIBUS_RULES = """groups:
  - name: GitLab
    rules:
      - record: instance:node_cpus:count
        expr: count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})
"""


def rules_file(folder: Path) -> Path:
    """The gitlab role's duo.rules, rendered for a gateway and an Ollama host (beside a rules
    file standing in for Omnibus' own, recording rules only)."""
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules" / "gitlab.rules").write_text(OMNIBUS_RULES)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701 - YAML
    template = environment.from_string(DUO_RULES.read_text())
    text = template.render(
        ansible_managed="Ansible managed",
        gitlab_monitoring_node_targets=["10.0.2.10:9100", "10.0.3.10:9100"],
        gitlab_monitoring_gateway_targets=["10.0.2.10:8082"],
        gitlab_monitoring_vllm_targets=[],
        gitlab_monitoring_model_units=["ollama.service", "vllm.service"],
        gitlab_monitoring_for="5m",
        gitlab_monitoring_kv_cache_ratio=0.95,
        gitlab_monitoring_gateway_error_ratio=0.05,
        gitlab_monitoring_gateway_p95_seconds=1.5,
    )
    (folder / "duo-prometheus").mkdir(parents=True, exist_ok=True)
    (folder / "duo-prometheus" / "duo.rules").write_text(text)
    return folder / "duo-prometheus" / "duo.rules"


def prometheus_yml(folder: Path, jobs: dict[str, list[str]]) -> Path:
    """prometheus.yml as the stand-in's reconfigure renders it from gitlab.rb's settings
    (written as the gitlab role's gitlab.rb.j2 writes them)."""
    entries = "".join(
        "  {\n"
        f"    'job_name' => '{name}',\n"
        "    'scrape_interval' => '30s',\n"
        "    'metrics_path' => '/metrics',\n"
        "    'static_configs' => [{ 'targets' => ["
        + ", ".join(f"'{t}'" for t in targets)
        + "] }],\n  },\n"
        for name, targets in jobs.items()
    )
    rules = f"'{folder}/rules/*.rules', '{rules_file(folder)}'"
    gitlab_rb = (
        f"prometheus['scrape_configs'] = [\n{entries}]\nprometheus['rules_files'] = [{rules}]\n"
    )
    config = folder / "prometheus.yml"
    config.write_text(json.dumps(standin.parse_prometheus_settings(gitlab_rb), indent=2))
    return config


@contextmanager
def prometheus(config: Path) -> Iterator[str]:
    """The stand-in's Prometheus API on a loopback port; its base URL."""
    server = standin.prometheus_server(config, ("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_standin_prometheus_answers_in_prometheus_shapes(tmp_path: Path) -> None:
    with exporters(3) as (node_gw, node_model, gateway):
        jobs = {
            "duo-node": [node_gw.address, node_model.address],
            "duo-ai-gateway": [gateway.address],
        }
        with prometheus(prometheus_yml(tmp_path, jobs)) as url:
            code, targets = get_json(f"{url}/api/v1/targets?state=active")
            assert code == 200 and targets["status"] == "success"
            active = targets["data"]["activeTargets"]
            assert targets["data"]["droppedTargets"] == []
            assert [(t["labels"]["job"], t["health"], t["lastError"]) for t in active] == [
                ("duo-node", "up", ""),
                ("duo-node", "up", ""),
                ("duo-ai-gateway", "up", ""),
            ]
            for item in active:  # what the API documents for each active target
                assert {"discoveredLabels", "labels", "scrapePool", "scrapeUrl", "globalUrl"} | {
                    "lastError",
                    "lastScrape",
                    "lastScrapeDuration",
                    "health",
                    "scrapeInterval",
                    "scrapeTimeout",
                } == set(item)
                assert item["scrapeUrl"] == f"http://{item['labels']['instance']}/metrics"
            assert get_json(f"{url}/api/v1/alerts") == (
                200,
                {"status": "success", "data": {"alerts": []}},
            )

            node_model.stop()  # the model host's node exporter goes away
            _, targets = get_json(f"{url}/api/v1/targets")
            down = [t for t in targets["data"]["activeTargets"] if t["health"] == "down"]
            assert [t["labels"]["instance"] for t in down] == [node_model.address]
            assert down[0]["lastError"] == (
                f'Get "http://{node_model.address}/metrics": dial tcp {node_model.address}: '
                "connect: connection refused"
            )
            _, alerts = get_json(f"{url}/api/v1/alerts")
            # Only DuoHostDown (up{job="duo-node"} == 0) fires, at once (no `for:` here); the
            # other rules of duo.rules are never evaluated by the stand-in.
            assert alerts["data"]["alerts"] == [
                {
                    "labels": {
                        "alertname": "DuoHostDown",
                        "instance": node_model.address,
                        "job": "duo-node",
                        "severity": "critical",
                    },
                    "annotations": {
                        "summary": f"{node_model.address}: the node exporter does not answer "
                        "(host down or unreachable)"
                    },
                    "state": "firing",
                    "activeAt": alerts["data"]["alerts"][0]["activeAt"],
                    "value": "0e+00",
                }
            ]
            assert re.fullmatch(
                r"\d{4}-\d\d-\d\dT[\d:.]+Z", alerts["data"]["alerts"][0]["activeAt"]
            )
            _, dropped = get_json(f"{url}/api/v1/targets?state=dropped")
            assert dropped["data"] == {"activeTargets": [], "droppedTargets": []}
            assert get_json(f"{url}/api/v1/query?query=up") == (404, "404 page not found\n")

            # status reads these answers as they come.
            answers = {
                "targets": {"status": 200, "body": json.dumps(targets)},
                "alerts": {"status": 200, "body": json.dumps(alerts)},
            }
            found = monitoring.monitoring_of(answers, url)
            assert found.state == "down"
            assert [a.name for a in found.alerts] == ["DuoHostDown"]


def status_code_and_json(
    capsys: pytest.CaptureFixture[str], deploy_dir: Path, gitlab_url: str, key: Path
) -> tuple[int, dict[str, Any]]:
    code, data, seconds = status_json(capsys, deploy_dir, gitlab_url, key)
    assert seconds < 10
    return code, data


def test_status_shows_gitlabs_prometheus_targets_and_alerts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        gitlab_double(V19) as double,
        exporters(3) as (node_gw, node_model, gateway),
    ):
        configure(double, tmp_path)
        double.reset_log()
        capsys.readouterr()
        jobs = {
            "duo-node": [node_gw.address, node_model.address],
            "duo-ai-gateway": [gateway.address],
        }
        with (
            prometheus(prometheus_yml(tmp_path / "prometheus", jobs)) as url,
            lab(monkeypatch, tmp_path / "lab", True, url) as env,
        ):
            folder = write_deployment(tmp_path / "lab", env.hosts, env.api_port, "hosts", "")
            (folder / "settings.yml").unlink()  # own hosts: no cloud
            key = env.hosts.key_file

            # Every target up, no alert: monitoring is up and nothing is down.
            code, data = status_code_and_json(capsys, env.deploy_dir, double.url, key)
            assert (code, data["ok"], data["down"]) == (0, True, [])
            assert data["monitoring"]["state"] == "up" and data["monitoring"]["alerts"] == []
            assert sorted((t["job"], t["health"]) for t in data["monitoring"]["targets"]) == [
                ("duo-ai-gateway", "up"),
                ("duo-node", "up"),
                ("duo-node", "up"),
            ]
            asked = [c for c in env.hosts["gitlab-vm"].execs if c.startswith("python3 -c ")]
            assert len(asked) == 1 and url in asked[0]
            assert not any("python3" in c for c in env.hosts["ollama-vm"].execs)

            # The model host's node exporter stops: its target is down and DuoHostDown fires.
            node_model.stop()
            code, data = status_code_and_json(capsys, env.deploy_dir, double.url, key)
            assert code == 1 and data["ok"] is False
            refused = (
                f'Get "http://{node_model.address}/metrics": dial tcp {node_model.address}: '
                "connect: connection refused"
            )
            assert data["down"] == [
                f"monitoring: duo-node target {node_model.address} is down: {refused}",
                f"monitoring: alert DuoHostDown firing (critical): {node_model.address}: "
                "the node exporter does not answer (host down or unreachable)",
            ]
            assert data["monitoring"]["state"] == "down"
            assert [(a["name"], a["state"]) for a in data["monitoring"]["alerts"]] == [
                ("DuoHostDown", "firing")
            ]
            args = ["status", "--name", "lab", "--deploy-dir", str(env.deploy_dir)]
            args += ["--gitlab-url", double.url, "--allow-http", "--ssh-key", str(key)]
            assert main([*args, "--timeout", "3"]) == 1
            screen = capsys.readouterr().out
            assert "Monitoring      2/3 targets up; 1 alert firing\n" in screen
            assert f"        DOWN  duo-node {node_model.address}: {refused}\n" in screen
            assert "        FIRING  DuoHostDown (critical): " in screen

            # Prometheus does not answer (monitoring off): unknown with the reason, not down.
            monkeypatch.setattr(monitoring, "PROMETHEUS_URL", NOTHING_LISTENS)
            code, data = status_code_and_json(capsys, env.deploy_dir, double.url, key)
            assert (code, data["ok"], data["down"]) == (0, True, [])
            assert data["monitoring"]["state"] == "unknown"
            assert data["monitoring"]["reason"] == (
                f"Prometheus ({NOTHING_LISTENS} on the GitLab host): "
                "ConnectionRefusedError: [Errno 111] Connection refused"
            )
            assert main([*args, "--timeout", "3"]) == 0
            screen = capsys.readouterr().out
            assert "Everything is up." in screen
            assert "Monitoring      unknown: Prometheus (" in screen
        assert double.writes == 0
