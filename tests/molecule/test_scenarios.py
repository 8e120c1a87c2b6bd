"""Every Molecule scenario of the repository, one parametrized test each.

Scenarios are discovered, not listed: `ansible/roles/<role>/molecule/<name>/molecule.yml`
(test id `<role>/<name>`, run from the role folder) and `ansible/molecule/<name>/molecule.yml`
(test id `<name>`, run from `ansible/`). Each runs `molecule test -s <name>` (create, converge,
idempotence, verify, destroy) with its output streamed to the terminal; a failure names the
stage that failed. Each scenario's duration (and per stage) is reported at the end of the
run; for the three-host `site` scenario the idempotence run's time is reported against its
goal of 30 s.

Before the first scenario, the `container_tooling` fixture (conftest.py) makes sure the
Docker engine runs and the Debian 12 systemd base image exists (tests/tooling/docker_env.py).

Run one:  .venv/bin/pytest tests/molecule -k common
Env:      DUO_MOLECULE_TIMEOUT (seconds per scenario, default 1800), TEST_IMAGE.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.molecule.reporting import REPORTS, ScenarioReport

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
STAGES = (
    "dependency", "cleanup", "destroy", "syntax", "create", "prepare", "converge",
    "idempotence", "side_effect", "verify", "lint",
)  # fmt: skip
# molecule prints e.g. "INFO     [default > converge] Executing" and "... Executed: Failed"
STAGE_RE = re.compile(r"\[(?P<scenario>[\w.-]+) > (?P<stage>\w+)\]")


@dataclass(frozen=True)
class Scenario:
    test_id: str
    name: str
    workdir: Path


def discover() -> list[Scenario]:
    found: list[Scenario] = []
    for file in sorted(ANSIBLE_DIR.glob("roles/*/molecule/*/molecule.yml")):
        role_dir = file.parents[2]
        found.append(Scenario(f"{role_dir.name}/{file.parent.name}", file.parent.name, role_dir))
    for file in sorted(ANSIBLE_DIR.glob("molecule/*/molecule.yml")):
        found.append(Scenario(file.parent.name, file.parent.name, ANSIBLE_DIR))
    return found


SCENARIOS = discover()


def _stream(proc: subprocess.Popen[str], report: ScenarioReport, started: float) -> Iterator[str]:
    stage_start = started
    stage: str | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        match = STAGE_RE.search(line)
        if match and "Executed: Failed" in line and report.failed_stage is None:
            report.failed_stage = match["stage"]
        if match and match["stage"] in STAGES and match["stage"] != stage:
            now = time.monotonic()
            if stage is not None:
                report.stages[stage] = report.stages.get(stage, 0.0) + now - stage_start
            stage, stage_start = match["stage"], now
        yield line
    if stage is not None:
        report.stages[stage] = report.stages.get(stage, 0.0) + time.monotonic() - stage_start


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.test_id for s in SCENARIOS])
def test_molecule_scenario(
    scenario: Scenario,
    container_tooling: str,
    capsys: pytest.CaptureFixture[str],
    record_property: pytest.RecordProperty,
) -> None:
    timeout = float(os.environ.get("DUO_MOLECULE_TIMEOUT", "1800"))
    env = dict(os.environ, TEST_IMAGE=container_tooling, PY_COLORS="0", NO_COLOR="1")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    report = ScenarioReport(scenario.test_id)
    REPORTS.append(report)
    tail: list[str] = []
    started = time.monotonic()
    with (
        capsys.disabled(),
        subprocess.Popen(
            ["molecule", "test", "-s", scenario.name],
            cwd=scenario.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        print(f"\n----- molecule test -s {scenario.name} ({scenario.workdir.name}) -----")
        for line in _stream(proc, report, started):
            sys.stdout.write(line)
            sys.stdout.flush()
            tail = [*tail[-39:], line]
            if time.monotonic() - started > timeout:
                proc.kill()
                break
        code = proc.wait()
    report.seconds = time.monotonic() - started
    record_property("seconds", f"{report.seconds:.1f}")
    for stage, seconds in report.stages.items():
        record_property(f"{stage}_seconds", f"{seconds:.1f}")
    if code != 0 and report.failed_stage is None:
        report.failed_stage = "configuration" if not report.stages else "unknown"
    assert code == 0, (
        f"molecule scenario {scenario.test_id} failed in stage "
        f"'{report.failed_stage}' (exit {code}); last lines:\n" + "".join(tail)
    )
