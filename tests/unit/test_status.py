"""duoctl status: ages, cost arithmetic, the JSON schema (checked in) and the screen, the
service checks over a fake remote, the inputs (bad input exits 2), the cloud view."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from duoctl.cli import main
from duoctl.deployment import Deployment
from duoctl.folder import DeploymentFolder
from duoctl.settings import DeploySettings
from duoctl.status import cloud, command, cost, inputs, model, services
from duoctl.status.model import (
    Cost,
    FeatureMapping,
    GitLabModel,
    GitLabView,
    GpuVm,
    HostStatus,
    LastBench,
    LastVerify,
    Seats,
    Service,
    StatusReport,
    Versions,
)
from duoctl.status.options import StatusOptions
from duoctl.status.remote import parse_http
from duoctl.status.render import format_age, render
from duoctl.verify.rake import CommandOutput

DEPLOYMENT = {
    "target": "aws",
    "domain": "gitlab.example.com",
    "zone": None,
    "hosts": [
        {
            "name": "gitlab-vm",
            "group": "gitlab",
            "private_ip": "10.0.1.10",
            "public_ip": "203.0.113.10",
            "instance": "i-0gitlab",
        },
        {
            "name": "gateway-vm",
            "group": "ai_gateway",
            "private_ip": "10.0.2.10",
            "via_jump": True,
            "instance": "i-0gateway",
        },
        {
            "name": "ollama-vm",
            "group": "ollama",
            "private_ip": "10.0.3.10",
            "via_jump": True,
            "instance": "i-0model",
        },
    ],
}
# duoctl bench's results.json (schema duoctl.bench/1): the run's knee in one place.
KNEE = {"path": "gitlab", "level": 12, "latency_p95": 1.84, "requests_per_s": 4.3, "developers": 60}
GITLAB_CTL = """run: alertmanager: (pid 801) 3600s; run: log: (pid 790) 3600s
run: gitaly: (pid 802) 3600s; run: log: (pid 791) 3600s
run: postgresql: (pid 805) 3600s; run: log: (pid 795) 3600s
run: puma: (pid 806) 3600s; run: log: (pid 796) 3600s
down: sidekiq: 4s, normally up, want up; run: log: (pid 797) 3600s
"""


# ------------------------------------------------------------------ ages


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "age unknown"),
        (-5, "in the future (check the clocks)"),
        (0, "0 s ago"),
        (59.9, "59 s ago"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (3600, "1 h 00 min ago"),
        (2 * 3600 + 5 * 60, "2 h 05 min ago"),
        (86400, "1 d 00 h ago"),
        (3 * 86400 + 7 * 3600 + 59, "3 d 07 h ago"),
    ],
)
def test_age_reads_in_the_largest_units(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


# ------------------------------------------------------------------ cost


def settings(**values: Any) -> DeploySettings:
    base = {
        "cloud": "aws",
        "region": "us-east-1",
        "ssh_public_key_file": "k.pub",
        "admin_cidr": "198.51.100.7/32",
    }
    return DeploySettings.model_validate({**base, **values})


def test_cost_is_the_gpu_vm_hourly_price_times_730_hours() -> None:
    assert cost.cost_of("aws", "g6.xlarge") == Cost(
        machine_type="g6.xlarge", hourly_usd=0.805, monthly_usd=587.65, note=cost.NOTE
    )
    assert cost.cost_of("gcp", "g2-standard-24").monthly_usd == 1460.0
    unknown = cost.cost_of("aws", "m5.large")
    assert unknown.hourly_usd is None and "no price known for m5.large" in unknown.note


def test_the_gpu_machine_type_comes_from_the_preset_or_the_ollama_type() -> None:
    assert cost.gpu_machine_type(settings()) == "g4dn.xlarge"  # the Ollama default
    assert cost.gpu_machine_type(settings(ollama_machine_type="g5.xlarge")) == "g5.xlarge"
    vllm = settings(serving="vllm", model_preset="mistral-small-24b-w4a16-l4")
    assert cost.gpu_machine_type(vllm) == "g6.2xlarge"
    gcp = settings(cloud="gcp", region="europe-west4", project="duo-test", serving="vllm")
    assert cost.gpu_machine_type(gcp) == "g2-standard-8"


# ------------------------------------------------------------------ schema and screen


def report(**changes: Any) -> StatusReport:
    base = StatusReport(
        name="aws",
        target="aws",
        serving="ollama",
        checked_at="2026-12-01T06:00:00+00:00",
        seconds=2.5,
        ok=True,
        versions=Versions(
            gitlab="18.9.0-ee",
            gateway_image="registry.gitlab.com/model-gateway:self-hosted-v18.9.0-ee",
            gateway_digest="sha256:" + "a" * 64,
            model_server="ollama 0.6.2",
            models=["mistral:instruct"],
        ),
        hosts=[
            HostStatus(
                name="gitlab-vm",
                group="gitlab",
                address="203.0.113.10",
                state="up",
                services=[Service(name="puma", state="up")],
            ),
            HostStatus(
                name="gateway-vm",
                group="ai_gateway",
                address="10.0.2.10",
                state="up",
                services=[Service(name="container ai-gateway", state="up")],
            ),
            HostStatus(
                name="ollama-vm",
                group="ollama",
                address="10.0.3.10",
                state="up",
                services=[Service(name="ollama API", state="up")],
            ),
        ],
        gitlab=GitLabView(
            state="up",
            url="https://gitlab.example.com",
            version="18.9.0-ee",
            gateway_url="http://10.0.2.10:5052",
            models=[
                GitLabModel(
                    name="mistral-7b-ollama",
                    family="MISTRAL",
                    identifier="custom_openai/mistral:instruct",
                    endpoint="http://10.0.3.10:11434/v1",
                )
            ],
            features=[
                FeatureMapping(
                    feature="code_completions", provider="self_hosted", model="mistral-7b-ollama"
                )
            ],
            seats=Seats(purchased=10, assigned=1),
        ),
        verify=LastVerify(
            status="done",
            finished_at="2026-12-01T04:00:00+00:00",
            age_seconds=7200.0,
            age="2 h 00 min ago",
        ),
        bench=LastBench(
            run="20261130-2200",
            age_seconds=28800.0,
            age="8 h 00 min ago",
            knee=KNEE,
        ),
        gpu_vm=GpuVm(instance="i-0model", machine_type="g4dn.xlarge", state="running", up="up"),
        cost=cost.cost_of("aws", "g4dn.xlarge"),
    )
    return base.model_copy(update=changes)


def test_the_checked_in_json_schema_is_the_models() -> None:
    """A change to the JSON output changes scripts/duoctl/status/schema.json on purpose:
    `python -m duoctl.status.model` writes it."""
    assert model.SCHEMA_FILE.read_text(encoding="utf-8") == model.schema_text()


def test_the_json_report_keeps_its_shape() -> None:
    data = report().model_dump(mode="json")
    assert data["schema_version"] == 1
    assert list(data) == [
        "schema_version",
        "name",
        "target",
        "serving",
        "checked_at",
        "seconds",
        "ok",
        "down",
        "versions",
        "hosts",
        "gitlab",
        "verify",
        "bench",
        "gpu_vm",
        "cost",
        "monitoring",  # added within version 1
    ]
    assert data["hosts"][0] == {
        "name": "gitlab-vm",
        "group": "gitlab",
        "address": "203.0.113.10",
        "state": "up",
        "reason": "",
        "services": [{"name": "puma", "state": "up", "detail": ""}],
    }
    assert data["cost"] == {
        "machine_type": "g4dn.xlarge",
        "hourly_usd": 0.526,
        "monthly_usd": 383.98,
        "note": cost.NOTE,
    }
    assert data["gitlab"]["seats"] == {"purchased": 10, "assigned": 1}
    assert StatusReport.model_validate(data) == report()  # it reads back


def test_the_screen_of_a_healthy_deployment() -> None:
    text = render(report())
    assert "Everything is up." in text
    for expected in (
        "GitLab          18.9.0-ee",
        "self-hosted-v18.9.0-ee (sha256:aaaaaaaaaaaa…)",
        "ollama 0.6.2; models: mistral:instruct",
        "gateway URL   http://10.0.2.10:5052",
        "features      mistral-7b-ollama: code_completions",
        "Duo seats     1 of 10 assigned",
        "Last verify     done, 2 h 00 min ago",
        "knee: 12 concurrent requests (gitlab path), p95 1.84 s, 4.3 req/s, about 60 developers",
        "GPU VM          running (i-0model)",
        "Cost            $0.526/h, $383.98/month (g4dn.xlarge on demand, GPU VM only)",
        "GitLab holds    up https://gitlab.example.com",
    ):
        assert expected in text, expected
    assert len(text.splitlines()) <= 40  # one screen


def test_the_screen_names_what_is_down_and_why() -> None:
    hosts = report().hosts
    hosts[1] = HostStatus(
        name="gateway-vm",
        group="ai_gateway",
        address="10.0.2.10",
        state="up",
        services=[Service(name="container ai-gateway", state="down", detail="container is exited")],
    )
    hosts[2] = HostStatus(
        name="ollama-vm",
        group="ollama",
        address="10.0.3.10",
        state="down",
        reason="SSH: TimeoutError: timed out",
    )
    down = report(hosts=hosts, verify=None, bench=None)
    down.down = command.down_list(down)
    down.ok = not down.down
    assert down.down == [
        "gateway-vm: container ai-gateway: container is exited",
        "ollama-vm: SSH: TimeoutError: timed out",
    ]
    text = render(down)
    assert "Down:\n  - gateway-vm: container ai-gateway: container is exited" in text
    assert "DOWN  ollama-vm" in text and "SSH: TimeoutError: timed out" in text
    assert "Last verify     never" in text and "Last bench      none" in text


def test_a_vm_stopped_by_schedule_is_not_down() -> None:
    hosts = report().hosts
    hosts[2] = HostStatus(
        name="ollama-vm", group="ollama", address="10.0.3.10", state="down", reason="SSH: timed out"
    )
    vm = GpuVm(
        instance="i-0model",
        state="stopped",
        up="down",
        reason="the VM is stopped",
        stopped_by_schedule=True,
    )
    assert command.down_list(report(hosts=hosts, gpu_vm=vm)) == []
    assert "stopped (stopped by schedule)" in render(report(hosts=hosts, gpu_vm=vm))
    vm.stopped_by_schedule = False
    assert command.down_list(report(hosts=hosts, gpu_vm=vm)) == [
        "ollama-vm: SSH: timed out",
        "GPU VM: the VM is stopped",
    ]


# ------------------------------------------------------------------ service checks


class FakeRemote:
    def __init__(self, commands: dict[str, CommandOutput], http: dict[str, tuple[int, str]]):
        self.commands = commands
        self.http = http
        self.requests: list[tuple[str, int, str, dict[str, str] | None]] = []

    def run(self, command: str) -> CommandOutput:
        for prefix, output in self.commands.items():
            if command.startswith(prefix):
                return output
        return CommandOutput(127, "", f"{command.split()[0]}: not found")

    def http_get(
        self, host: str, port: int, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        self.requests.append((host, port, path, headers))
        if path not in self.http:
            raise ConnectionRefusedError(111, "Connection refused")
        return self.http[path]


def deployment(serving: str = "ollama") -> Deployment:
    data = json.loads(json.dumps(DEPLOYMENT))
    data["hosts"][2]["group"] = serving
    return Deployment.model_validate(data)


def test_gitlab_ctl_lines_become_services() -> None:
    found = services.parse_gitlab_ctl(GITLAB_CTL)
    assert [(s.name, s.state) for s in found] == [
        ("alertmanager", "up"),
        ("gitaly", "up"),
        ("postgresql", "up"),
        ("puma", "up"),
        ("sidekiq", "down"),
    ]
    assert found[-1].detail == "down: 4s, normally up, want up"


def test_gitlab_host_checks() -> None:
    versions = Versions()
    remote = FakeRemote(
        {
            "sudo -n gitlab-ctl status": CommandOutput(6, GITLAB_CTL, ""),
            "cat /opt/gitlab": CommandOutput(0, "18.9.0-ee\n", ""),
        },
        {},
    )
    found = services.gitlab_services(remote, versions)
    assert [s.name for s in found if s.state == "down"] == ["sidekiq"]
    assert versions.gitlab == "18.9.0-ee"
    nothing = services.gitlab_services(FakeRemote({}, {}), Versions())
    assert nothing == [Service(name="gitlab-ctl status", state="down", detail="sudo: not found")]


def inspect(running: bool) -> str:
    return json.dumps(
        [
            {
                "Image": "sha256:" + "b" * 64,
                "Config": {"Image": "registry.gitlab.com/gw/model-gateway:self-hosted-v18.9.0-ee"},
                "State": {"Running": running, "Status": "running" if running else "exited"},
            }
        ]
    )


def test_gateway_checks_read_the_container_and_its_health() -> None:
    versions = Versions()
    digests = json.dumps(["registry.gitlab.com/gw/model-gateway@sha256:" + "c" * 64])
    remote = FakeRemote(
        {
            "sudo -n docker inspect": CommandOutput(0, inspect(True), ""),
            "sudo -n docker image inspect": CommandOutput(0, digests, ""),
        },
        {"/monitoring/healthz": (200, "{}")},
    )
    found = services.gateway_services(remote, deployment(), versions)
    assert [(s.name, s.state) for s in found] == [
        ("container ai-gateway", "up"),
        ("gateway /monitoring/healthz", "up"),
    ]
    assert versions.gateway_image == "registry.gitlab.com/gw/model-gateway:self-hosted-v18.9.0-ee"
    assert versions.gateway_digest == "sha256:" + "c" * 64
    assert remote.requests == [("10.0.2.10", 5052, "/monitoring/healthz", None)]
    stopped = FakeRemote({"sudo -n docker inspect": CommandOutput(0, inspect(False), "")}, {})
    found = services.gateway_services(stopped, deployment(), Versions())
    assert found[0] == Service(
        name="container ai-gateway", state="down", detail="container is exited"
    )
    assert found[1].state == "down" and "Connection refused" in found[1].detail


def test_ollama_checks() -> None:
    versions = Versions()
    remote = FakeRemote(
        {"sudo -n systemctl is-active ollama": CommandOutput(0, "active\n", "")},
        {
            "/api/version": (200, '{"version": "0.6.2"}'),
            "/api/tags": (200, '{"models": [{"name": "mistral:instruct"}]}'),
        },
    )
    found = services.model_services(remote, deployment(), versions, None)
    assert [(s.name, s.state) for s in found] == [("ollama service", "up"), ("ollama API", "up")]
    assert (versions.model_server, versions.models) == ("ollama 0.6.2", ["mistral:instruct"])
    inactive = FakeRemote({"sudo -n systemctl is-active": CommandOutput(3, "inactive\n", "")}, {})
    found = services.model_services(inactive, deployment(), Versions(), None)
    assert found[0] == Service(name="ollama service", state="down", detail="inactive")
    assert found[1].state == "down"


def test_vllm_checks_send_the_key_in_a_header_only() -> None:
    versions = Versions()
    remote = FakeRemote(
        {"sudo -n systemctl is-active vllm": CommandOutput(0, "active\n", "")},
        {
            "/health": (200, ""),
            "/version": (200, '{"version": "0.9.1"}'),
            "/v1/models": (200, '{"data": [{"id": "mistral-small"}]}'),
        },
    )
    found = services.model_services(remote, deployment("vllm"), versions, "sk-test-key")
    assert [s.state for s in found] == ["up", "up"]
    assert (versions.model_server, versions.models) == ("vllm 0.9.1", ["mistral-small"])
    assert remote.requests[-1] == (
        "10.0.3.10",
        11434,
        "/v1/models",
        {"Authorization": "Bearer sk-test-key"},
    )


def test_http_answers_are_parsed() -> None:
    assert parse_http(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}") == (200, "{}")
    with pytest.raises(ValueError, match="not an HTTP answer"):
        parse_http(b"SSH-2.0-OpenSSH\r\n")


# ------------------------------------------------------------------ inputs and exit codes


def write_folder(root: Path, state: Any = None, bench: dict[str, Any] | None = None) -> Path:
    folder = root / ".deploy" / "aws"
    folder.mkdir(parents=True)
    if state is not None:
        text = state if isinstance(state, str) else json.dumps(state)
        (folder / "state.json").write_text(text)
    for run, results in (bench or {}).items():
        (folder / "bench" / run).mkdir(parents=True)
        (folder / "bench" / run / "results.json").write_text(json.dumps(results))
    return folder


def test_no_deployment_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "error: no deployment 'aws' in .deploy" in err and "Traceback" not in err
    (tmp_path / ".deploy" / "staging").mkdir(parents=True)
    assert main(["status", "--name", "prod"]) == 2
    assert "pass --name with one of: staging" in capsys.readouterr().err
    assert main(["status", "--inventory", "missing.yml"]) == 2
    assert "the inventory missing.yml does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("{not json", "the deploy state"),
        ({"version": 1, "data": {"deployment": {"target": "aws"}}}, "is damaged"),
    ],
)
def test_a_damaged_state_is_bad_input(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    state: Any,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    write_folder(tmp_path, state)
    assert main(["status", "--name", "aws"]) == 2
    err = capsys.readouterr().err
    assert message in err and "fix: " in err and "Traceback" not in err


def test_last_verify_and_newest_bench_are_read(tmp_path: Path) -> None:
    now = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    finished = (now - timedelta(minutes=90)).isoformat()
    state = {"version": 1, "steps": {"verify": {"status": "done", "finished_at": finished}}}
    started = (now - timedelta(hours=26)).isoformat()
    runs = {
        "old": {"schema": "duoctl.bench/1", "knee": None},
        "new": {"schema": "duoctl.bench/1", "started_at": started, "knee": KNEE},
    }
    folder_path = write_folder(tmp_path, state, runs)
    old = folder_path / "bench" / "old" / "results.json"
    past = time.time() - 3600
    os.utime(old, (past, past))
    seen = command.last_verify(state, folder_path / "state.json", now)
    assert seen == LastVerify(
        status="done", finished_at=finished, age_seconds=5400.0, age="1 h 30 min ago"
    )
    failed = command.last_verify(
        {"steps": {"verify": {"status": "failed"}}}, folder_path / "state.json", datetime.now(UTC)
    )
    assert failed is not None and failed.status == "failed" and failed.age is not None
    assert command.last_verify({"steps": {}}, folder_path / "state.json", now) is None
    options = StatusOptions(name="aws", deploy_dir=tmp_path / ".deploy")
    found = inputs.newest_bench(DeploymentFolder.of(options.deploy_dir, "aws", tmp_path))
    assert found is not None and found[0] == "new" and found[2] == KNEE
    bench = command.last_bench(found, now)
    assert bench == LastBench(run="new", age_seconds=93600.0, age="1 d 02 h ago", knee=KNEE)
    (folder_path / "bench" / "new" / "results.json").write_text("{damaged")
    found = inputs.newest_bench(DeploymentFolder.of(options.deploy_dir, "aws", tmp_path))
    assert found is not None and found[2] is None  # tolerated: shown without its knee


def test_run_all_gives_none_for_a_task_past_the_deadline() -> None:
    started = time.monotonic()

    def slow() -> int:
        time.sleep(5)
        return 2

    results = command.run_all({"fast": lambda: 1, "slow": slow}, 0.3)
    assert results == {"fast": 1, "slow": None}
    assert time.monotonic() - started < 2


# ------------------------------------------------------------------ the cloud's view


class FakeEc2:
    def __init__(self, state: str) -> None:
        self.state = state

    def describe_instances(self, InstanceIds: list[str]) -> dict[str, Any]:
        instance = {
            "InstanceId": InstanceIds[0],
            "InstanceType": "g4dn.xlarge",
            "State": {"Name": self.state},
        }
        return {"Reservations": [{"Instances": [instance]}]}


def test_the_cloud_view_of_the_gpu_vm(monkeypatch: pytest.MonkeyPatch) -> None:
    view = cloud.gpu_vm_view(settings(), "aws", "i-0model", None, 2, lambda: FakeEc2("running"))
    assert (view.state, view.up, view.machine_type) == ("running", "up", "g4dn.xlarge")
    view = cloud.gpu_vm_view(settings(), "aws", "i-0model", None, 2, lambda: FakeEc2("stopped"))
    assert (view.state, view.up, view.stopped_by_schedule) == ("stopped", "down", False)
    # Office hours that have the VM stopped now (it started on 1 January at 0:00 and stopped
    # a minute later), then ones that have it running (the other way round).
    off = settings(gpu_schedule="0 0 1 1 *;1 0 1 1 *;UTC")
    view = cloud.gpu_vm_view(off, "aws", "i-0model", None, 2, lambda: FakeEc2("stopped"))
    assert view.stopped_by_schedule
    on = settings(gpu_schedule="1 0 1 1 *;0 0 1 1 *;UTC")
    view = cloud.gpu_vm_view(on, "aws", "i-0model", None, 2, lambda: FakeEc2("stopped"))
    assert not view.stopped_by_schedule, "stopped during office hours: down"
    view = cloud.gpu_vm_view(off, "aws", "i-0model", None, 2, lambda: FakeEc2("running"))
    assert (view.up, view.stopped_by_schedule) == ("up", False)

    def broken() -> Any:
        raise RuntimeError("Unable to locate credentials")

    view = cloud.gpu_vm_view(settings(), "aws", "i-0model", None, 2, broken)
    assert (view.up, view.reason) == ("unknown", "RuntimeError: Unable to locate credentials")
    assert cloud.gpu_vm_view(None, "aws", "i-0model", None, 2).reason == "no settings.yml"


def test_a_check_that_hangs_is_shown_as_not_answering_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hang(*_args: Any) -> HostStatus:
        time.sleep(5)
        raise AssertionError("not reached in time")

    monkeypatch.setattr(command, "check_host", hang)
    monkeypatch.delenv("GITLAB_TOKEN", raising=False)
    folder = DeploymentFolder.of(tmp_path, "lab", tmp_path)
    found = inputs.Inputs(folder, deployment(), None, {})
    options = StatusOptions(name="lab", deploy_dir=tmp_path, timeout=0.2)
    started = time.monotonic()
    seen = command.collect(options, found)
    assert time.monotonic() - started < 3
    assert [(h.state, h.reason) for h in seen.hosts] == [("down", "no answer within 2 s")] * 3
    assert seen.gitlab.state == "unknown"  # no token: GitLab is not asked
    assert seen.gpu_vm is not None and seen.gpu_vm.reason == "no settings.yml"
    assert seen.cost is None and not seen.ok and len(seen.down) == 3


def test_bad_settings_and_a_bad_timeout_are_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_folder(tmp_path, {"version": 1, "data": {"deployment": DEPLOYMENT}})
    assert main(["status", "--timeout", "0"]) == 2
    assert "--timeout 0.0 is not positive" in capsys.readouterr().err
    (folder / "settings.yml").write_text("cloud: aws\nregion: [not, a, region]\n")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "the settings" in err and "are damaged" in err and "Traceback" not in err
    (folder / "settings.yml").unlink()
    assert main(["status", "--gitlab-url", "http://gitlab.example.com"]) == 2
    assert "not an https:// URL" in capsys.readouterr().err
