"""terraform fmt, validate and the plan-level `terraform test` files of terraform/aws, and the
GPU shape tests of terraform/gcp."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.terraform.hcl_config import config_dir
from tests.terraform.tooling import Terraform

pytestmark = pytest.mark.slow

TEST_FILES = sorted(p.name for p in (config_dir("aws") / "tests").glob("*.tftest.hcl"))


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_fmt_check(terraform_plain: Terraform, cloud: str) -> None:
    result = terraform_plain.run(config_dir(cloud), "fmt", "-check", "-recursive", check=False)
    assert result.returncode == 0, (
        f"run terraform fmt -recursive terraform/{cloud}:\n{result.stdout}"
    )


def test_validate(terraform: Terraform, aws_workdir: Path) -> None:
    result = terraform.run(aws_workdir, "validate", "-no-color")
    assert "The configuration is valid" in result.stdout


def test_there_are_test_files() -> None:
    assert {
        "network_security.tftest.hcl",
        "dns_outputs.tftest.hcl",
        "validation.tftest.hcl",
        "gpu_presets.tftest.hcl",
        "bedrock.tftest.hcl",
        "backup_schedule.tftest.hcl",
    } <= set(TEST_FILES)


@pytest.fixture(scope="module")
def terraform_test_output(terraform: Terraform, aws_workdir: Path) -> str:
    """One `terraform test` run over every test file (one run is several times faster)."""
    result = terraform.run(aws_workdir, "test", "-no-color", check=False, timeout=600)
    return result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_terraform_test(terraform_test_output: str, test_file: str) -> None:
    verdict = re.search(
        rf"^tests/{re.escape(test_file)}\.\.\. (pass|fail)$", terraform_test_output, re.M
    )
    assert verdict, f"{test_file} did not run:\n{terraform_test_output[-4000:]}"
    assert verdict.group(1) == "pass", terraform_test_output[-8000:]


def test_terraform_test_summary(terraform_test_output: str) -> None:
    summary = re.search(r"Success! (\d+) passed, 0 failed", terraform_test_output)
    assert summary and int(summary.group(1)) >= 16, terraform_test_output[-8000:]


def test_gcp_gpu_shapes(terraform: Terraform, tmp_path: Path) -> None:
    """terraform/gcp/tests/gpu_presets.tftest.hcl on gpu.tf and variables.tf only: its
    assertions read nothing else, so it runs without the google provider (mocked anyway)."""
    gcp = config_dir("gcp")
    (tmp_path / "tests").mkdir()
    for name in ("variables.tf", "gpu.tf", "tests/gpu_presets.tftest.hcl"):
        (tmp_path / name).write_text((gcp / name).read_text(encoding="utf-8"), encoding="utf-8")
    terraform.run(tmp_path, "init", "-backend=false", "-input=false", "-no-color")
    result = terraform.run(tmp_path, "test", "-no-color", check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert re.search(r"Success! (\d+) passed, 0 failed", output), output[-4000:]
