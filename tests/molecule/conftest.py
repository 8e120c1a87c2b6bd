"""The container tooling shared by the scenario tests, and each Molecule scenario's timings
printed at the end of the run (see test_scenarios.py)."""

from __future__ import annotations

import os

import pytest

from tests.molecule.reporting import IDEMPOTENCE_GOAL_SECONDS, REPORTS
from tests.tooling import docker_env


@pytest.fixture(scope="session")
def container_tooling() -> str:
    """The Docker engine runs and the Debian 12 systemd base image exists; returns the image."""
    image = docker_env.ensure_all()
    os.environ["TEST_IMAGE"] = image
    return image


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.section("molecule scenario timings")
    for report in REPORTS:
        stages = ", ".join(f"{name} {secs:.0f}s" for name, secs in report.stages.items())
        status = f"FAILED in {report.failed_stage}" if report.failed_stage else "ok"
        terminalreporter.write_line(
            f"{report.test_id:24s} {report.seconds:6.0f}s  {status}  ({stages})"
        )
        if report.test_id == "site" and "idempotence" in report.stages:
            secs = report.stages["idempotence"]
            verdict = "within" if secs < IDEMPOTENCE_GOAL_SECONDS else "OVER"
            terminalreporter.write_line(
                f"three-host idempotence run: {secs:.1f}s "
                f"({verdict} the {IDEMPOTENCE_GOAL_SECONDS:.0f}s goal)"
            )
