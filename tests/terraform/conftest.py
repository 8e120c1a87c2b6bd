"""Fixtures of the Terraform tests: the binary, the offline provider mirror, initialised copies.

Tests needing terraform or the mirror skip with a loud reason when either is
missing; the schema and invariant checks need neither and always run.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from tests.terraform.tooling import Terraform, cli_config, copy_config, find_mirror, terraform_env


def _skip_loudly(reason: str) -> None:
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def terraform_binary() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        _skip_loudly(
            "TERRAFORM TESTS SKIPPED: no terraform binary on PATH (install Terraform >= 1.6)"
        )
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def terraform_plain(terraform_binary: str) -> Terraform:
    """terraform without providers (fmt)."""
    return Terraform(terraform_binary, terraform_env(None))


@pytest.fixture(scope="session")
def terraform(terraform_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """terraform that installs providers from the local mirror only."""
    mirror = find_mirror()
    if mirror is None:
        _skip_loudly(
            "TERRAFORM TESTS SKIPPED: no provider mirror holding "
            "registry.terraform.io/hashicorp/aws was found on this machine"
        )
    assert mirror is not None
    config = cli_config(mirror, tmp_path_factory.mktemp("tf-cli"))
    return Terraform(terraform_binary, terraform_env(config))


@pytest.fixture(scope="session")
def aws_workdir(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised copy of terraform/aws (with its tests/)."""
    workdir = copy_config("aws", tmp_path_factory.mktemp("aws-plan") / "aws")
    terraform.run(workdir, "init", "-backend=false", "-input=false", "-no-color")
    return workdir
