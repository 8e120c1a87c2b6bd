"""The one deployment of terraform/aws on a moto server that test_aws_moto_apply.py and
test_aws_moto_bedrock.py read: applied once for the session through duoctl's own Terraform
calls, destroyed at its end (also when a test fails). The fixtures `aws_moto` and
`aws_deployment` (tests/terraform/conftest.py) hand it out.

Everything is on at once, so one apply (the slowest step of the group) shows it all: office
hours for the GPU VM (EventBridge Scheduler), backups kept 14 days (the S3 bucket), a Route 53
record, and Bedrock access for the AI gateway (two models, the bedrock-runtime VPC endpoint).
What the configuration does without Bedrock (no Bedrock resource, no instance profile on the
gateway, a hop limit of 1 everywhere, empty Bedrock outputs) is asserted with a mocked
provider by terraform/aws/tests/bedrock.tftest.hcl, run "nothing_by_default".
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from duoctl import terraform as tf

from tests.doubles.aws_moto_server import AWS_CREDENTIALS
from tests.terraform.tooling import MOTO_OVERRIDE, Terraform, copy_config

REGION = "us-east-1"
DOMAIN = "gitlab.example.com"
ACCOUNT = "123456789012"  # moto's default account
SCHEDULE = {"start": "0 8 * * 1-5", "stop": "0 19 * * 1-5", "time_zone": "Europe/Berlin"}
# Bedrock: a cross-region inference profile and a plain model ID.
PROFILE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"

# The configuration folder, the outputs, the variables of the apply.
Deployment = tuple[Path, dict[str, Any], dict[str, object]]


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def ssh_public_key() -> str:
    """A real OpenSSH public key: moto, like EC2, refuses malformed ones."""
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " duo-test"


def running_instances(ec2: Any) -> dict[str, Any]:
    """The running instances by their duo_role tag."""
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
    )["Reservations"]
    return {
        {t["Key"]: t["Value"] for t in i["Tags"]}["duo_role"]: i
        for r in reservations
        for i in r["Instances"]
    }


@contextmanager
def _terraform_environment(terraform: Terraform) -> Iterator[None]:
    """duoctl's calls run terraform with the process environment: the mirror's CLI
    configuration, for these calls only."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in terraform.env.items():
            mp.setenv(key, value)
        yield


def deploy(terraform: Terraform, endpoint: str, folder: Path) -> Iterator[Deployment]:
    """The body of the `aws_deployment` fixture: apply, yield, destroy."""
    workdir = copy_config("aws", folder / "aws")
    shutil.rmtree(workdir / "tests")
    override = MOTO_OVERRIDE.read_text(encoding="utf-8")
    (workdir / "moto_endpoints_override.tf").write_text(
        override.replace("MOTO_ENDPOINT", endpoint), encoding="utf-8"
    )
    zone = client("route53", endpoint).create_hosted_zone(Name="example.com", CallerReference="duo")
    variables: dict[str, object] = {
        "gitlab_domain": DOMAIN,
        "admin_cidrs": ["198.51.100.7/32"],
        "ssh_public_key": ssh_public_key(),
        "region": REGION,
        "route53_zone_id": zone["HostedZone"]["Id"].split("/")[-1],
        "gpu_schedule": SCHEDULE,
        "backup_retention_days": 14,
        "bedrock_models": [PROFILE, MODEL],
        "bedrock_vpc_endpoint": True,
    }
    with _terraform_environment(terraform):
        tf.init(workdir)
    try:
        with _terraform_environment(terraform):
            tf.apply(workdir, variables)
            outputs = tf.outputs(workdir)
        yield workdir, outputs, variables
    finally:
        with _terraform_environment(terraform):
            tf.destroy(workdir, variables)
