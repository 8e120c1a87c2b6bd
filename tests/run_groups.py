"""Run every test group and print one summary line per group.

`make test` calls this. Each group is a pytest run over one folder (plus the lint
step); a group's counts come from its JUnit report. The last line is the overall
"N passed, N failed" count, and the exit code is non-zero when anything failed or
when no test ran at all.

Two lanes run at once, each group of a lane after the other: the ansible group, whose
output streams to the terminal, and beside it the others, fastest first, each writing to
its own log, printed whole once the ansible group is over. The ansible group leaves about
half of the machine idle (containers booting, Terraform's and the services' own waits): the
other groups fill it instead of doubling the wall time. The two lanes share nothing: only
the ansible group uses Docker; every test binds its own ports and temporary folders.

Select groups with DUO_TEST_GROUPS=unit,integration (default: all).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
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
    beside: bool = True  # in the lane beside the ansible group, its output kept in a log


GROUPS = [
    Group("lint", None),
    Group("unit", "tests/unit"),
    Group("integration", "tests/integration"),
    Group("terraform", "tests/terraform"),
    Group("ansible", "tests/molecule", beside=False),
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


def run_group(group: Group, report_dir: Path, log: Path | None) -> Result:
    """Run one group, its output to the terminal or, given `log`, to that file."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    start = time.monotonic()
    if group.folder is None:
        cmd = ["make", "--no-print-directory", "lint"]
    else:
        report = report_dir / f"{group.name}.xml"
        cmd = [str(BIN / "pytest"), group.folder, f"--junitxml={report}"]
        cmd += ["-p", "no:cacheprovider", "--durations=12"]  # where the time goes
    if log is None:
        code = subprocess.call(cmd, cwd=ROOT, env=env)
    else:
        with log.open("w", encoding="utf-8") as out:
            code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if group.folder is None:
        res = Result(passed=int(code == 0), failed=int(code != 0))
    else:
        res = junit_counts(report) if report.exists() else Result()
        if code not in (0, 5) and res.failed == 0:
            res.failed = 1  # pytest itself failed (collection error, crash)
    res.seconds = time.monotonic() - start
    return res


def run_lane(groups: list[Group], tmp: Path, results: dict[str, Result]) -> None:
    for group in groups:
        if group.folder and not any((ROOT / group.folder).rglob("test_*.py")):
            print(f"\n=== {group.name}: no tests in {group.folder} ===", flush=True)
            continue
        if not group.beside:
            print(f"\n=== {group.name} ===", flush=True)
        log = tmp / f"{group.name}.log" if group.beside else None
        results[group.name] = run_group(group, tmp, log)


def main() -> int:
    wanted = {g for g in os.environ.get("DUO_TEST_GROUPS", "").split(",") if g}
    groups = [g for g in GROUPS if not wanted or g.name in wanted]
    beside = [g for g in groups if g.beside]
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="duo-tests-") as name:
        tmp = Path(name)
        if beside:
            names = ", ".join(g.name for g in beside)
            print(f"=== {names}: running beside the ansible group, logs shown after it ===")
        lane = threading.Thread(target=run_lane, args=(beside, tmp, results))
        lane.start()
        run_lane([g for g in groups if not g.beside], tmp, results)
        lane.join()
        for group in beside:
            log = tmp / f"{group.name}.log"
            if log.exists():
                print(f"\n=== {group.name} ===", flush=True)
                print(log.read_text(encoding="utf-8", errors="replace"), end="", flush=True)

    print("\n=== summary ===")
    total = Result()
    for group in groups:
        if group.name not in results:
            continue
        res = results[group.name]
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
