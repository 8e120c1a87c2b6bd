"""The resumable pipeline: order, state file, resume after a failure, --from, invalidation,
progress output and the final summary. Steps are local fakes."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from duoctl import cli, deploy
from duoctl.pipeline import (
    Context,
    DeploymentFolder,
    Pipeline,
    Progress,
    RunResult,
    StepFailed,
    fmt_seconds,
)
from duoctl.process import Interrupted

NAMES = ["preflight", "terraform", "inventory", "wait_ssh", "wait_dns", "site", "duo", "verify"]


@dataclass
class FakeStep:
    name: str
    fail_times: int = 0  # fail this many runs, then succeed
    runs: int = 0
    log: list[str] = field(default_factory=list)

    def run(self, ctx: Context) -> None:
        self.runs += 1
        self.log.append(self.name)
        ctx.progress.output(f"{self.name}: working")
        if self.fail_times:
            self.fail_times -= 1
            raise StepFailed(f"{self.name} broke on purpose")
        ctx.data[f"{self.name}_done"] = True
        if self.name == "inventory":
            ctx.data["gitlab_url"] = "https://gitlab.example.com"


def make(tmp_path: Path, steps: list[FakeStep]) -> tuple[Pipeline, io.StringIO]:
    out = io.StringIO()
    paths = DeploymentFolder(tmp_path / ".deploy" / "aws", tmp_path)
    ctx = Context("aws", paths, Progress(paths.log_file, out, tick=0.01, quiet_interval=0.05))
    return Pipeline(steps, ctx, "duoctl deploy aws"), out


def fresh(**fail: int) -> list[FakeStep]:
    return [FakeStep(n, fail_times=fail.get(n, 0)) for n in NAMES]


INPUTS = {"region": "us-east-1", "zone": None}


def test_runs_every_step_in_order_and_prints_the_summary(tmp_path: Path):
    steps = fresh()
    pipeline, out = make(tmp_path, steps)
    assert pipeline.run(INPUTS)
    text = out.getvalue()
    assert [s.runs for s in steps] == [1] * len(NAMES)
    for i, name in enumerate(NAMES, start=1):
        assert f"[{i}/8] {name} ..." in text
        assert f"[{i}/8] {name}: done in " in text
    assert "Deploy complete" in text
    assert "GitLab:        https://gitlab.example.com" in text
    assert str(tmp_path / ".deploy/aws/secrets/gitlab_root_password") in text
    assert str(tmp_path / ".deploy/aws/secrets/gitlab_admin_token") in text
    assert "Step times:" in text and "  wait_dns " in text
    state = json.loads((tmp_path / ".deploy/aws/state.json").read_text())
    assert all(state["steps"][n]["status"] == "done" for n in NAMES)
    assert "site: working" in (tmp_path / ".deploy/aws/deploy.log").read_text()


@pytest.mark.parametrize("broken", NAMES)
def test_failure_then_rerun_resumes_at_the_failed_step(tmp_path: Path, broken: str):
    steps = fresh(**{broken: 1})
    pipeline, out = make(tmp_path, steps)
    assert not pipeline.run(INPUTS)
    index = NAMES.index(broken)
    assert [s.runs for s in steps] == [1] * (index + 1) + [0] * (len(NAMES) - index - 1)
    text = out.getvalue()
    assert f"{broken}: FAILED after" in text and f"{broken} broke on purpose" in text
    assert f"it resumes at {broken}" in text
    assert f"  | {broken}: working" in text  # the tail of the step's output

    again, out2 = make(tmp_path, steps)  # a new process: only the state file carries over
    assert again.run(INPUTS)
    # Every step ran exactly once successfully; the broken one twice in all.
    assert [s.runs for s in steps] == [2 if s.name == broken else 1 for s in steps]
    assert "done in an earlier run" in out2.getvalue() or index == 0
    assert "Deploy complete" in out2.getvalue()


def test_step_data_survives_a_rerun(tmp_path: Path):
    steps = fresh(site=1)
    pipeline, _ = make(tmp_path, steps)
    pipeline.run(INPUTS)
    again, out = make(tmp_path, steps)
    assert again.run(INPUTS)
    assert again.ctx.data["terraform_done"] is True
    assert "https://gitlab.example.com" in out.getvalue()


def test_from_restarts_there(tmp_path: Path):
    steps = fresh()
    pipeline, _ = make(tmp_path, steps)
    assert pipeline.run(INPUTS)
    again, _ = make(tmp_path, steps)
    assert again.run(INPUTS, from_step="site")
    assert [s.runs for s in steps] == [1, 1, 1, 1, 1, 2, 2, 2]


def test_unknown_from_step_is_refused_before_anything_runs(tmp_path: Path):
    steps = fresh()
    pipeline, _ = make(tmp_path, steps)
    with pytest.raises(ValueError, match=r"unknown step 'nope'.*preflight, terraform"):
        pipeline.run(INPUTS, from_step="nope")
    assert all(s.runs == 0 for s in steps)


def test_changed_inputs_discard_the_recorded_steps(tmp_path: Path):
    steps = fresh(duo=1)
    pipeline, _ = make(tmp_path, steps)
    pipeline.run(INPUTS)
    again, out = make(tmp_path, steps)
    assert again.run({**INPUTS, "region": "eu-west-3"})
    assert "region: 'us-east-1' -> 'eu-west-3'" in out.getvalue()
    assert "every step runs again" in out.getvalue()
    assert [s.runs for s in steps] == [2, 2, 2, 2, 2, 2, 2, 1]


def test_unchanged_inputs_skip_everything_on_a_complete_deploy(tmp_path: Path):
    steps = fresh()
    make(tmp_path, steps)[0].run(INPUTS)
    again, out = make(tmp_path, steps)
    assert again.run(INPUTS)
    assert [s.runs for s in steps] == [1] * len(NAMES)
    assert out.getvalue().count("done in an earlier run") == len(NAMES)


@dataclass
class SlowStep:
    name: str = "terraform"

    def run(self, ctx: Context) -> None:
        ctx.progress.output("Still creating... [10s elapsed]")
        time.sleep(0.3)


def test_progress_ticks_with_elapsed_time_and_the_tail(tmp_path: Path):
    pipeline, out = make(tmp_path, [SlowStep()])  # type: ignore[list-item]
    assert pipeline.run({})
    assert "[1/1] terraform 0s | Still creating... [10s elapsed] (still running)" in out.getvalue()


@dataclass
class ToolStep:
    name: str = "site"
    code: int = 3

    def run(self, ctx: Context) -> None:
        script = f"import sys\nfor i in range(40): print('line', i)\nsys.exit({self.code})"
        ctx.run_command([sys.executable, "-c", script])


def test_a_failing_tool_shows_its_last_lines_and_logs_all(tmp_path: Path):
    pipeline, out = make(tmp_path, [ToolStep()])  # type: ignore[list-item]
    assert not pipeline.run({})
    text = out.getvalue()
    assert "exited with code 3" in text
    assert "  | line 39" in text and "  | line 20" not in text  # the tail only
    log = (tmp_path / ".deploy/aws/deploy.log").read_text()
    assert "line 0\n" in log and "line 39\n" in log
    assert ToolStep(code=0).name == "site"


def test_an_unexpected_exception_is_a_failed_step(tmp_path: Path):
    @dataclass
    class Crashing:
        name: str = "inventory"

        def run(self, ctx: Context) -> None:
            raise KeyError("gitlab_public_ip")

    pipeline, out = make(tmp_path, [Crashing()])  # type: ignore[list-item]
    assert not pipeline.run({})
    assert "KeyError: 'gitlab_public_ip'" in out.getvalue()


def test_duplicate_step_names_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="unique"):
        make(tmp_path, [FakeStep("site"), FakeStep("site")])


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4s"), (61, "1m 01s"), (3725, "1h 02m 05s")])
def test_fmt_seconds(seconds: float, text: str):
    assert fmt_seconds(seconds) == text


@dataclass
class InterruptedStep:
    """Raises `interrupt` on its first run (a tool stopped by Ctrl-C, or Ctrl-C in Python)."""

    interrupt: KeyboardInterrupt
    name: str = "site"
    runs: int = 0

    def run(self, ctx: Context) -> None:
        self.runs += 1
        ctx.progress.output(f"{self.name}: working")
        if self.runs == 1:
            raise self.interrupt


@pytest.mark.parametrize(
    ("interrupt", "stopped"),
    [
        (Interrupted("ansible-playbook", signal.SIGINT, 99), ": ansible-playbook stopped cleanly"),
        (Interrupted("terraform", signal.SIGTERM, 1), ": terraform stopped cleanly"),
        (KeyboardInterrupt(), ""),  # Ctrl-C during a Python step
    ],
)
def test_an_interrupt_is_recorded_as_such_and_a_rerun_resumes_there(
    tmp_path: Path, interrupt: KeyboardInterrupt, stopped: str
):
    steps = [FakeStep("terraform"), InterruptedStep(interrupt), FakeStep("verify")]
    pipeline, out = make(tmp_path, steps)  # type: ignore[arg-type]
    assert pipeline.run({}) is RunResult.INTERRUPTED
    text = out.getvalue()
    assert (
        f"Interrupted during site after 0s{stopped}; "
        "run `duoctl deploy aws` again: it resumes at site."
    ) in text
    assert "FAILED" not in text
    assert "  | site: working" in text
    state = json.loads((tmp_path / ".deploy/aws/state.json").read_text())
    assert state["steps"]["terraform"]["status"] == "done"
    assert state["steps"]["site"]["status"] == "interrupted"
    assert "verify" not in state["steps"]

    again, out2 = make(tmp_path, steps)  # type: ignore[arg-type]
    assert again.run({}) is RunResult.DONE
    assert [step.runs for step in steps] == [1, 2, 1]
    assert "[1/3] terraform: done in an earlier run" in out2.getvalue()


def test_a_failure_is_not_an_interrupt(tmp_path: Path):
    pipeline, _ = make(tmp_path, fresh(site=1))
    result = pipeline.run(INPUTS)
    assert result is RunResult.FAILED and not result
    state = json.loads((tmp_path / ".deploy/aws/state.json").read_text())
    assert state["steps"]["site"]["status"] == "failed"


@dataclass
class CtrlCDuringTool:
    """A tool that receives the user's Ctrl-C: the signal reaches duoctl (this process), which
    must forward it once; the tool then saves its work, says so and exits 130."""

    name: str = "terraform"

    def run(self, ctx: Context) -> None:
        script = (
            "import os, signal, sys, time\n"
            "got = []\n"
            "signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))\n"
            "print('creating', flush=True)\n"
            "os.kill(os.getppid(), signal.SIGINT)\n"
            "deadline = time.monotonic() + 120\n"
            "while not got and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n"
            "print(f'state saved after {len(got)} SIGINT', flush=True)\n"
            "sys.exit(130)\n"
        )
        ctx.run_command([sys.executable, "-c", script])


def test_ctrl_c_during_a_tool_stops_it_cleanly_and_is_recorded(tmp_path: Path):
    pipeline, out = make(tmp_path, [CtrlCDuringTool()])  # type: ignore[list-item]
    assert pipeline.run({}) is RunResult.INTERRUPTED
    text = out.getvalue()
    tool = Path(sys.executable).name
    assert f"Interrupted during terraform after 0s: {tool} stopped cleanly; run" in text
    log = (tmp_path / ".deploy/aws/deploy.log").read_text()
    assert f"stopping {tool} cleanly (it finishes what it is doing); wait..." in log
    assert "state saved after 1 SIGINT" in log
    state = json.loads((tmp_path / ".deploy/aws/state.json").read_text())
    assert state["steps"]["terraform"]["status"] == "interrupted"


def test_deploy_exits_130_when_interrupted(tmp_path: Path):
    inventory = tmp_path / "hosts.yml"
    shutil.copy(Path(__file__).resolve().parents[2] / "inventory" / "hosts.example.yml", inventory)
    argv = ["deploy", "hosts", "--inventory", str(inventory), "--deploy-dir", str(tmp_path)]
    steps = [InterruptedStep(Interrupted("ansible-playbook", signal.SIGINT, 99))]
    out = io.StringIO()
    args = cli.deployment_options_for(argv)
    assert deploy.deploy_main(args, steps=steps, progress_stream=out) == 130  # type: ignore[arg-type]
    assert "it resumes at site" in out.getvalue()


def test_sigterm_during_a_python_step_is_recorded_as_interrupted(tmp_path: Path) -> None:
    """SIGTERM (a closed session, `kill`) while duoctl itself works: the same clean record."""

    class Terminated:
        name = "wait_ssh"

        def run(self, ctx: Context) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
            raise AssertionError("SIGTERM was not turned into an interrupt")

    inventory = tmp_path / "hosts.yml"
    shutil.copy(Path(__file__).resolve().parents[2] / "inventory" / "hosts.example.yml", inventory)
    argv = ["deploy", "hosts", "--inventory", str(inventory), "--deploy-dir", str(tmp_path)]
    out = io.StringIO()
    options = cli.deployment_options_for(argv)
    assert deploy.deploy_main(options, steps=[Terminated()], progress_stream=out) == 130
    assert "it resumes at wait_ssh" in out.getvalue()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler was restored"
