"""checkov (static security analysis) on both Terraform configurations.

checkov gets its own virtualenv, .venv-checkov, made here on first use and reused
afterwards: its bc-python-hcl2 dependency overwrites python-hcl2's files, so it
cannot share the main one. Every accepted finding is skipped inline in the
resource, one `#checkov:skip=CKV_...:reason` line per check.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.hcl_config import REPO, config_dir

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
VENV = REPO / ".venv-checkov"
REQUIREMENTS = HERE / "requirements-checkov.txt"
STAMP = VENV / ".installed"


@pytest.fixture(scope="module")
def checkov() -> Path:
    binary = VENV / "bin" / "checkov"
    wanted = REQUIREMENTS.read_text(encoding="utf-8")
    if not (STAMP.is_file() and STAMP.read_text(encoding="utf-8") == wanted and binary.exists()):
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", "-r", str(REQUIREMENTS)],
            check=True,
            timeout=900,
        )
        STAMP.write_text(wanted, encoding="utf-8")
    return binary


@pytest.fixture(scope="module", params=["aws", "gcp"])
def report(request: pytest.FixtureRequest, checkov: Path) -> dict[str, Any]:
    """One checkov run per directory (a run over both reports one of them twice)."""
    result = subprocess.run(
        [
            str(checkov),
            "--skip-download",
            "--framework",
            "terraform",
            "--output",
            "json",
            "--compact",
            "-d",
            str(config_dir(request.param)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return {"results": [r.get("results", {}) for r in _documents(result.stdout)]}


def _documents(text: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document per directory, one after the other."""
    decoder, documents, index = json.JSONDecoder(), [], 0
    while index < len(text.rstrip()):
        while text[index].isspace():
            index += 1
        document, index = decoder.raw_decode(text, index)
        documents.extend(document if isinstance(document, list) else [document])
    return documents


def _checks(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [check for results in report["results"] for check in results.get(kind, [])]


def test_no_failed_check(report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): "
        f"{c['check_name']}"
        for c in _checks(report, "failed_checks")
    ]
    assert failed == []


def test_checks_did_run(report: dict[str, Any]) -> None:
    passed = _checks(report, "passed_checks")
    files = {c["file_path"] for c in passed}
    assert any("instances.tf" in f for f in files)
    assert len(passed) > 30


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_skip_is_inline_with_a_reason(cloud: str) -> None:
    pattern = re.compile(r"#\s*checkov:skip=(\S+?)(?::(.*))?$")
    for path in config_dir(cloud).glob("*.tf"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = pattern.search(line)
            if not match:
                continue
            check_id, reason = match.groups()
            assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", check_id), f"{path.name}:{number}: one check"
            assert reason and len(reason.strip()) > 20, f"{path.name}:{number}: give the reason"
