"""Prints each Molecule scenario's timings at the end of the run (see test_scenarios.py)."""

from __future__ import annotations

import pytest

from tests.molecule.reporting import IDEMPOTENCE_GOAL_SECONDS, REPORTS


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
