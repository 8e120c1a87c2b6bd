"""The GPU VM's office hours (duoctl.schedule): cron parsing and whether the VM is stopped at a
moment; --gpu-schedule and --backup-retention-days in the settings (exit 2 on bad input, saved
in settings.yml, passed to Terraform on both clouds); the stop/start logic of `duoctl gpu` on a
VM that answers what the test says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl import deploy, gpu
from duoctl.cli import deployment_options_for
from duoctl.errors import DuoctlError
from duoctl.schedule import Cron, GpuSchedule, off_hours
from duoctl.settings import DeploySettings, SettingsError, load_saved, resolve, save

ED25519_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample me"
BERLIN = "0 8 * * 1-5;0 19 * * 1-5;Europe/Berlin"


# ------------------------------------------------------------------ cron


def test_cron_fields_lists_ranges_steps_and_names() -> None:
    cron = Cron.parse("*/15 8-10,18 1,15 jan-mar mon-fri")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {8, 9, 10, 18}
    assert cron.days == {1, 15} and cron.months == {1, 2, 3}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert Cron.parse("0 0 * * 5-7").weekdays == {5, 6, 0}, "7 is Sunday too"
    assert Cron.parse("0 0 * * 1/2").weekdays == {1, 3, 5, 7 % 7}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 8 * *", "has 4 fields"),
        ("0 8 ? * MON-FRI *", "has 6 fields"),
        ("60 8 * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range"),
        ("0 8 * * 5-1", "day of week: the range 5-1 runs backwards"),
        ("0 8 * * 8", "day of week 8 is out of range 0-7"),
        ("0 8 * * */0", "step '0' must be a positive number"),
        ("0 8 * * 1/", "step '' must be a positive number"),
        ("0 8 * foo *", "month 'foo' is not a number"),
    ],
)
def test_bad_cron_is_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        Cron.parse(text)


def test_day_of_month_and_day_of_week_are_ored_when_both_are_given() -> None:
    cron = Cron.parse("0 8 1 * 1")  # the 1st of the month, and every Monday (Vixie cron)
    assert cron.day_matches(datetime(2026, 12, 1).date())  # a Tuesday, the 1st
    assert cron.day_matches(datetime(2026, 12, 7).date())  # a Monday
    assert not cron.day_matches(datetime(2026, 12, 8).date())


@pytest.mark.parametrize(
    ("moment", "off"),
    [
        ("2026-12-01T06:59:00+00:00", True),  # Tuesday 7:59 in Berlin: not yet started
        ("2026-12-01T07:00:00+00:00", False),  # 8:00 in Berlin: started
        ("2026-12-01T17:59:00+00:00", False),
        ("2026-12-01T18:00:00+00:00", True),  # 19:00 in Berlin: stopped
        ("2026-12-05T12:00:00+00:00", True),  # Saturday: stopped since Friday 19:00
        ("2026-12-07T06:30:00+00:00", True),  # Monday before 8:00
        ("2026-07-06T06:30:00+00:00", False),  # summer time: 8:30 in Berlin
    ],
)
def test_off_hours_follow_the_time_zone(moment: str, off: bool) -> None:
    schedule = GpuSchedule.parse_option(BERLIN)
    assert schedule is not None
    assert schedule.off_hours(datetime.fromisoformat(moment)) is off


def test_no_schedule_is_never_off_hours() -> None:
    assert not off_hours(None, datetime(2026, 12, 5, tzinfo=UTC))
    never_stops = GpuSchedule(start="0 8 * * *", stop="0 19 31 2 *", time_zone="UTC")
    assert not never_stops.off_hours(datetime(2026, 12, 5, 23, tzinfo=UTC))


def test_the_option_format() -> None:
    schedule = GpuSchedule.parse_option(" 0  8 * * 1-5 ; 0 19 * * 1-5 ; UTC ")
    assert schedule == GpuSchedule(start="0 8 * * 1-5", stop="0 19 * * 1-5", time_zone="UTC")
    assert schedule.terraform() == {
        "start": "0 8 * * 1-5",
        "stop": "0 19 * * 1-5",
        "time_zone": "UTC",
    }
    assert GpuSchedule.parse_option("off") is None and GpuSchedule.parse_option("None") is None
    with pytest.raises(ValueError, match="is not START;STOP;TIME_ZONE"):
        GpuSchedule.parse_option("0 8 * * 1-5;0 19 * * 1-5")


# ------------------------------------------------------------------ settings


def resolved(tmp_path: Path, cloud: str = "aws", **overrides: Any) -> DeploySettings:
    key = tmp_path / "id.pub"
    key.write_text(ED25519_KEY)
    base: dict[str, Any] = {"region": "us-east-1", "ssh_public_key_file": str(key)}
    base["admin_cidr"] = "198.51.100.7/32"
    if cloud == "gcp":
        base.update(region="europe-west4", project="my-project-123")
    return resolve(cloud, {**base, **overrides}, {}, lambda: "198.51.100.7", env={})  # type: ignore[arg-type]


def test_gpu_schedule_and_retention_from_the_command_line_are_saved(tmp_path: Path) -> None:
    options = deployment_options_for(
        ["deploy", "aws", "--gpu-schedule", BERLIN, "--backup-retention-days", "14"]
    )
    assert options.input("gpu_schedule") == BERLIN
    assert options.input("backup_retention_days") == 14
    settings = resolved(tmp_path, gpu_schedule=BERLIN, backup_retention_days=14)
    assert settings.gpu_schedule == GpuSchedule(
        start="0 8 * * 1-5", stop="0 19 * * 1-5", time_zone="Europe/Berlin"
    )
    path = tmp_path / "settings.yml"
    save(settings, path)
    saved = yaml.safe_load(path.read_text())
    assert saved["gpu_schedule"] == {
        "start": "0 8 * * 1-5",
        "stop": "0 19 * * 1-5",
        "time_zone": "Europe/Berlin",
    }
    assert saved["backup_retention_days"] == 14
    again = resolve("aws", {}, load_saved(path), lambda: "198.51.100.7", env={})
    assert again == settings
    off = resolve("aws", {"gpu_schedule": "off"}, load_saved(path), lambda: "", env={})
    assert off.gpu_schedule is None and off.backup_retention_days == 14


def test_without_the_new_options_the_fingerprint_keeps_its_old_keys(tmp_path: Path) -> None:
    """A deployment made before these options must not see its inputs as changed."""
    fingerprint = resolved(tmp_path).fingerprint()
    assert fingerprint["gpu_schedule"] is None and fingerprint["backup_retention_days"] is None


@pytest.mark.parametrize(
    ("cloud", "value", "message"),
    [
        (
            "aws",
            "0 8 * * 1-5;0 19 * * 1-5;Berlin time",
            "--gpu-schedule: time_zone: 'Berlin time' is not an IANA",
        ),
        ("aws", "0 8 * * 1-5;0 19 * * 1-5;Mars/Olympus", "not an IANA time zone"),
        (
            "aws",
            "0 8 * * 1-5;0 25 * * 1-5;UTC",
            "--gpu-schedule: stop: hour 25 is out of range 0-23",
        ),
        ("aws", "0 8 * * 1-5", "is not START;STOP;TIME_ZONE"),
        ("aws", "0 8 1 * 1-5;0 19 * * 1-5;UTC", "restricts both the day of the month"),
        ("aws", "0 8 * * */2;0 19 * * 1-5;UTC", "no step (/) in the day of the week on AWS"),
        ("aws", "0 8 * * *;0 8 * * *;UTC", "start and stop are the same time"),
    ],
)
def test_bad_gpu_schedules_are_refused_at_settings_time(
    tmp_path: Path, cloud: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        resolved(tmp_path, cloud, gpu_schedule=value)
    assert raised.value.exit_code == 2
    assert message in raised.value.message, raised.value.message


def test_google_cloud_takes_what_eventbridge_cannot(tmp_path: Path) -> None:
    settings = resolved(tmp_path, "gcp", gpu_schedule="0 8 1 * 1-5;0 19 * * */2;UTC")
    assert settings.gpu_schedule is not None


@pytest.mark.parametrize("days", [0, 3651])
def test_retention_days_are_bounded(tmp_path: Path, days: int) -> None:
    with pytest.raises(SettingsError, match="--backup-retention-days"):
        resolved(tmp_path, backup_retention_days=days)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_terraform_gets_the_schedule_and_the_retention(tmp_path: Path, cloud: str) -> None:
    settings = resolved(tmp_path, cloud, gpu_schedule=BERLIN, backup_retention_days=60)
    variables = deploy.terraform_variables(settings, "gitlab.example.com", "europe-west4-a")
    assert variables["gpu_schedule"] == {
        "start": "0 8 * * 1-5",
        "stop": "0 19 * * 1-5",
        "time_zone": "Europe/Berlin",
    }
    assert variables["backup_retention_days"] == 60
    plain = deploy.terraform_variables(resolved(tmp_path, cloud), "gitlab.example.com", "z")
    assert "gpu_schedule" not in plain and "backup_retention_days" not in plain


# ------------------------------------------------------------------ duoctl gpu's logic


class FakeVm:
    """Answers the states of `states` one per look (the last one holds)."""

    def __init__(self, *states: str) -> None:
        self.name = "i-0gpu"
        self.states = list(states)
        self.calls: list[str] = []

    def state(self) -> str:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


def options(action: gpu.Action, lines: list[str], timeout: float = 60) -> gpu.GpuOptions:
    clock = iter(range(0, 100_000, 10))
    return gpu.GpuOptions(
        action=action,
        timeout=timeout,
        out=lines.append,
        sleep=lambda _s: None,
        clock=lambda: float(next(clock)),
    )


def test_stop_shows_each_state_until_stopped() -> None:
    vm, lines = FakeVm("running", "stopping", "stopping", "stopped"), []
    gpu.stop(vm, options("stop", lines))
    assert vm.calls == ["stop"]
    assert lines == [
        "stopping the GPU VM i-0gpu (it was running)",
        "  i-0gpu: stopping (10 s)",
        "  i-0gpu: stopped (30 s)",
        "GPU VM i-0gpu stopped: it bills no compute time until started again",
    ]


def test_a_stop_in_progress_is_waited_on_not_repeated() -> None:
    vm, lines = FakeVm("stopping", "stopped"), []
    gpu.stop(vm, options("stop", lines))
    assert vm.calls == []


def test_a_vm_still_starting_is_stopped_once_it_runs() -> None:
    vm, lines = FakeVm("pending", "running", "stopping", "stopped"), []
    gpu.stop(vm, options("stop", lines))
    assert vm.calls == ["stop"]
    assert lines[:3] == [
        "the GPU VM i-0gpu is starting: waiting for that first",
        "  i-0gpu: running (10 s)",
        "stopping the GPU VM i-0gpu (it was running)",
    ]


def test_a_vm_that_never_gets_there_fails_with_exit_1() -> None:
    vm, lines = FakeVm("running"), []
    with pytest.raises(DuoctlError) as raised:
        gpu.stop(vm, options("stop", lines, timeout=60))
    assert raised.value.exit_code == 1
    assert raised.value.message == "the GPU VM i-0gpu is still running after 60 s"


@pytest.mark.parametrize("state", ["terminated", "shutting-down"])
def test_a_terminated_vm_cannot_be_started(state: str) -> None:
    with pytest.raises(DuoctlError, match=f"is {state}") as raised:
        gpu.start(FakeVm(state), options("start", []))
    assert raised.value.exit_code == 1 and "deploy again" in raised.value.fix


def test_a_suspended_vm_is_named_not_started() -> None:
    vm = FakeVm("suspended")
    with pytest.raises(DuoctlError, match="is suspended"):
        gpu.start(vm, options("start", []))
    assert vm.calls == []


def test_a_pending_vm_is_waited_on_not_started_twice() -> None:
    vm, lines = FakeVm("pending", "pending", "running"), []
    gpu.start(vm, options("start", lines))
    assert vm.calls == [] and lines[-2] == "  i-0gpu: running (20 s)"


def test_no_deployment_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DuoctlError) as raised:
        gpu.run(gpu.GpuOptions(action="stop", name="nothing", deploy_dir=tmp_path))
    assert raised.value.exit_code == 2
    assert raised.value.message.startswith("no deployment 'nothing'")
    assert "--inventory" not in raised.value.fix
