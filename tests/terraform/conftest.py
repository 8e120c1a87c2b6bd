"""Fixtures of the Terraform tests: the binary, the offline provider mirror, initialised copies,
and the one deployment of terraform/aws on a moto server (tests/terraform/moto_deployment.py).

Tests needing terraform or the mirror skip with a loud reason when either is
missing; the schema and invariant checks need neither and always run.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.aws_moto_server import MotoEndpoint, moto_server
from tests.terraform.moto_deployment import Deployment, deploy
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


@pytest.fixture(scope="session")
def aws_moto() -> Iterator[MotoEndpoint]:
    """The moto server of `aws_deployment`."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def aws_deployment(
    terraform: Terraform, aws_moto: MotoEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """terraform/aws applied on `aws_moto` once for the session (test_aws_moto_apply.py and
    test_aws_moto_bedrock.py read it), destroyed at its end, also when a test fails."""
    yield from deploy(terraform, aws_moto, tmp_path_factory.mktemp("aws-moto"))
