"""terraform fmt, validate and the plan-level `terraform test` files of terraform/aws, and the
GPU shape tests of terraform/gcp."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.terraform.hcl_config import config_dir
from tests.terraform.tooling import Terraform, copy_config

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


# `terraform test` processes at once, each over its share of the test files.
WORKERS = 2


@pytest.fixture(scope="module")
def terraform_test_outputs(
    terraform: Terraform, tmp_path_factory: pytest.TempPathFactory
) -> list[str]:
    """The output of each `terraform test` process: every test file runs in exactly one.

    One process over many files is several times faster than one process per file, but it
    runs them one after the other, every run block starting the provider anew (about a second
    of CPU each): two processes, each over half the files (a fixed split) in its own initialised
    copy, take about half the time on two idle cores.
    """
    shares = [TEST_FILES[i::WORKERS] for i in range(WORKERS)]
    procs = []
    for number, share in enumerate(shares):
        workdir = copy_config("aws", tmp_path_factory.mktemp(f"aws-test{number}") / "aws")
        terraform.run(workdir, "init", "-backend=false", "-input=false", "-no-color")
        procs.append(
            subprocess.Popen(
                [terraform.binary, f"-chdir={workdir}", "test", "-no-color"]
                + [f"-filter=tests/{name}" for name in share],
                env=terraform.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


@pytest.fixture(scope="module")
def terraform_test_output(terraform_test_outputs: list[str]) -> str:
    return "\n".join(terraform_test_outputs)


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_terraform_test(terraform_test_output: str, test_file: str) -> None:
    verdict = re.search(
        rf"^tests/{re.escape(test_file)}\.\.\. (pass|fail)$", terraform_test_output, re.M
    )
    assert verdict, f"{test_file} did not run:\n{terraform_test_output[-4000:]}"
    assert verdict.group(1) == "pass", terraform_test_output[-8000:]


def test_terraform_test_summary(terraform_test_outputs: list[str]) -> None:
    passed = 0
    for output in terraform_test_outputs:
        summary = re.search(r"Success! (\d+) passed, 0 failed", output)
        assert summary, output[-8000:]
        passed += int(summary.group(1))
    assert passed >= 16, "\n".join(terraform_test_outputs)[-8000:]


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
