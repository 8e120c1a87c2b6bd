"""Evidence 1: the testinfra suite tests/infra on the inventory's hosts, read back from JUnit."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from duoctl.verify.report import HOP_GITLAB, Check, Status


def junit_checks(xml_text: str) -> list[Check]:
    """One Check per test case of a pytest JUnit report written by the infra suite."""
    root = ET.fromstring(xml_text)  # noqa: S314 - our own pytest's report, not remote input
    checks = []
    for case in root.iter("testcase"):
        props = {str(p.get("name")): str(p.get("value", "")) for p in case.iter("property")}
        name = props.get("check") or str(case.get("name", "?"))
        if props.get("params"):
            name += f" ({props['params']})"
        status: Status = "pass"
        detail = ""
        outcomes: tuple[tuple[str, Status], ...] = (
            ("failure", "fail"),
            ("error", "fail"),
            ("skipped", "skip"),
        )
        for tag, outcome in outcomes:
            element = case.find(tag)
            if element is not None:
                status = outcome
                detail = _first_message(element.get("message") or element.text or "")
                break
        checks.append(
            Check("testinfra", name, status, props.get("hop", ""), detail, props.get("host", ""))
        )
    return checks


def _first_message(message: str) -> str:
    message = re.sub(r'^failed on setup with "', "", message.strip())
    message = re.sub(r"^(AssertionError|Failed|Skipped): ", "", message)
    message = re.sub(r"^.*?\.py:\d+: (Skipped: )?", "", message)
    return message.splitlines()[0].strip() if message else ""


class SuiteRunner(Protocol):
    def __call__(self, inventory: Path, junit: Path) -> tuple[int, str]: ...


@dataclass
class PytestSuite:
    """pytest over tests/infra with testinfra's ansible connection, in a subprocess."""

    suite: Path
    ssh_identity_file: str | None = None
    sudo: bool = True
    timeout: float = 1800

    def __call__(self, inventory: Path, junit: Path) -> tuple[int, str]:
        if importlib.util.find_spec("testinfra") is None:
            return 3, (
                "the infra suite needs pytest-testinfra in duoctl's environment: "
                "`make venv` (or pip install -e '.[dev]')"
            )
        cmd = [sys.executable, "-m", "pytest", str(self.suite), "-q", "-p", "no:cacheprovider"]
        cmd += ["--connection=ansible", f"--ansible-inventory={inventory}", f"--junitxml={junit}"]
        cmd += ["-o", "junit_family=xunit1"]
        if self.sudo:
            cmd.append("--sudo")
        if self.ssh_identity_file:
            cmd.append(f"--ssh-identity-file={self.ssh_identity_file}")
        try:
            # ansible-inventory and friends live beside this interpreter (a venv not activated).
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
            proc = subprocess.run(
                cmd,
                cwd=self.suite.parents[1],
                env={**os.environ, "PATH": path},
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"the infra suite did not finish within {self.timeout:.0f} s"
        return proc.returncode, proc.stdout + proc.stderr


def suite_checks(runner: SuiteRunner, inventory: Path) -> list[Check]:
    with tempfile.TemporaryDirectory(prefix="duo-verify-") as tmp:
        junit = Path(tmp) / "infra.xml"
        code, output = runner(inventory, junit)
        checks = junit_checks(junit.read_text(encoding="utf-8")) if junit.exists() else []
    if not checks or code not in (0, 1):
        tail = " | ".join(line for line in output.strip().splitlines()[-5:])
        checks.append(
            Check("testinfra", "infra suite ran", "fail", HOP_GITLAB, f"exit {code}: {tail}")
        )
    return checks
