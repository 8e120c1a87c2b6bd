"""The deploy pipeline on the real terraform/aws configuration, as far as this machine allows:
preflight and `terraform apply` against the moto server double, the inventory from the real
outputs (with the wildcard-DNS name applied in the second, output-only apply), then
`duoctl destroy --yes`. The host steps on containers: tests/molecule/test_deploy_end_to_end.py."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from duoctl import cli, deploy
from duoctl.preflight.aws import run_checks as aws_checks

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, MotoEndpoint, moto_server
from tests.terraform.tooling import aws_config_on_moto

pytestmark = pytest.mark.slow

ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
)


@pytest.fixture
def moto() -> Iterator[MotoEndpoint]:
    with moto_server(gpu_vcpu_quota=8) as endpoint:
        yield endpoint


@pytest.fixture
def terraform_aws(tmp_path: Path, moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of terraform/aws aimed at moto, and terraform installing from the local mirror."""
    if shutil.which("terraform") is None:
        pytest.skip("DEPLOY-ON-MOTO TEST SKIPPED: no terraform binary on PATH")
    found = aws_config_on_moto(moto, tmp_path)
    if found is None:
        pytest.skip("DEPLOY-ON-MOTO TEST SKIPPED: no provider mirror with hashicorp/aws")
    workdir, cli_config_file = found
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cli_config_file))
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    for name, value in AWS_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)  # boto3 (preflight)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return workdir


def test_pipeline_applies_terraform_aws_on_moto_and_destroys(
    tmp_path: Path, moto: MotoEndpoint, terraform_aws: Path
):
    key = tmp_path / "id_ed25519.pub"
    key.write_text(ED25519_KEY + "\n")
    folder = tmp_path / ".deploy" / "aws"
    inventory = folder / "inventory.yml"
    common = ["--region", "us-east-1", "--ssh-key", str(key), "--admin-cidr", "198.51.100.7/32"]
    common += ["--deploy-dir", str(tmp_path / ".deploy")]
    args = cli.deployment_options_for(["deploy", "aws", *common])
    steps = [
        deploy.PreflightStep(checks=aws_checks),
        deploy.TerraformStep(source=terraform_aws),
        deploy.InventoryStep(),
    ]
    out = io.StringIO()
    code = deploy.deploy_main(args, steps=list(steps), progress_stream=out)
    assert code == 0, out.getvalue()

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto)
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    running = [i for i in instances if i["State"]["Name"] == "running"]
    assert len(running) == 3, [(i["InstanceId"], i["State"]["Name"]) for i in instances]
    public_ip = next(i["PublicIpAddress"] for i in running if "PublicIpAddress" in i)
    data = yaml.safe_load(inventory.read_text())
    assert data["all"]["vars"]["gitlab_domain"] == f"gitlab.{public_ip}.sslip.io"
    assert data["all"]["vars"]["gitlab_url"] == f"https://gitlab.{public_ip}.sslip.io"
    # Terraform ran in the deployment's own working directory, not in the module's source.
    assert (folder / "terraform" / "terraform.tfstate").is_file()
    assert not (terraform_aws / "terraform.tfstate").exists()
    # The cloud's instance IDs reach the inventory (host keys are read from them).
    ids = {i["InstanceId"] for i in running}
    assert {data["all"]["children"]["gitlab"]["hosts"]["gitlab-vm"]["duo_instance"]} <= ids
    log = (folder / "deploy.log").read_text()
    assert f"GitLab's name: gitlab.{public_ip}.sslip.io; applying it" in log
    # terraform's own output reaches the progress tail and the log as it comes
    assert 'aws_instance.vm["ollama"]: Creation complete' in log
    assert log.count("Apply complete!") == 2

    destroy = cli.deployment_options_for(["destroy", "aws", "--yes", *common])
    assert deploy.destroy_main(destroy, source=terraform_aws) == 0
    states = {
        i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    }
    assert states == {"terminated"}
    assert not (folder / "state.json").exists()
