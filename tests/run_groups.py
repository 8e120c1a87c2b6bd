"""Run every test group, fastest first, and print one summary line per group.

`make test` calls this. Each group is a pytest run over one folder (plus the lint
step); a group's counts come from its JUnit report. The last line is the overall
"N passed, N failed" count, and the exit code is non-zero when anything failed or
when no test ran at all.

Select groups with DUO_TEST_GROUPS=unit,integration (default: all).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Group:
    name: str
    folder: str | None  # pytest folder; None for the lint step


GROUPS = [
    Group("lint", None),
    Group("unit", "tests/unit"),
    Group("integration", "tests/integration"),
    Group("terraform", "tests/terraform"),
    Group("ansible", "tests/molecule"),
]


@dataclass
class Result:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0


def junit_counts(report: Path) -> Result:
    root = ET.parse(report).getroot()  # noqa: S314 - a report our own pytest wrote
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    res = Result()
    for suite in suites:
        total = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        res.failed += failed
        res.skipped += skipped
        res.passed += total - failed - skipped
    return res


def run_group(group: Group, report_dir: Path) -> Result:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    start = time.monotonic()
    if group.folder is None:
        code = subprocess.call(["make", "--no-print-directory", "lint"], cwd=ROOT, env=env)
        res = Result(passed=int(code == 0), failed=int(code != 0))
    else:
        report = report_dir / f"{group.name}.xml"
        cmd = [str(BIN / "pytest"), group.folder, f"--junitxml={report}", "-p", "no:cacheprovider"]
        cmd.append("--durations=12")  # where the time goes, in the CI log
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        res = junit_counts(report) if report.exists() else Result()
        if code not in (0, 5) and res.failed == 0:
            res.failed = 1  # pytest itself failed (collection error, crash)
    res.seconds = time.monotonic() - start
    return res


def main() -> int:
    wanted = {g for g in os.environ.get("DUO_TEST_GROUPS", "").split(",") if g}
    groups = [g for g in GROUPS if not wanted or g.name in wanted]
    results: list[tuple[Group, Result]] = []
    with tempfile.TemporaryDirectory(prefix="duo-tests-") as tmp:
        for group in groups:
            if group.folder and not any((ROOT / group.folder).rglob("test_*.py")):
                print(f"\n=== {group.name}: no tests in {group.folder} ===", flush=True)
                continue
            print(f"\n=== {group.name} ===", flush=True)
            results.append((group, run_group(group, Path(tmp))))

    print("\n=== summary ===")
    total = Result()
    for group, res in results:
        print(
            f"{group.name:12s} {res.passed:4d} passed {res.failed:3d} failed "
            f"{res.skipped:3d} skipped  {res.seconds:7.1f}s"
        )
        total.passed += res.passed
        total.failed += res.failed
        total.skipped += res.skipped
    print(f"{total.passed} passed, {total.failed} failed, {total.skipped} skipped")
    if total.passed == 0:
        print("No test ran: that is a failure, not a pass.", file=sys.stderr)
        return 1
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
