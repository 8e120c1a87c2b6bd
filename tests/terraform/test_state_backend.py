"""Remote state for teams: each deployment's Terraform state in an S3 bucket under duo/<name>/,
with S3's native lock file, through duoctl's own working directory and Terraform calls, with
the real terraform binary against the moto server.

Difference from production, and why: the bucket is moto's on loopback, reached with the AWS
SDK's standard AWS_ENDPOINT_URL, and path-style addressing is added with TF_CLI_ARGS_init (the
bucket has no DNS name on loopback). The root module is a small one without providers: the
backend, not the VMs, is under test (the real module on moto is tested elsewhere).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest
from duoctl import terraform
from duoctl.terraform_workdir import StateBackend, prepare

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, moto_server
from tests.terraform.tooling import cli_config, find_mirror

pytestmark = pytest.mark.slow

BUCKET = "duo-team-state"
MODULE = {
    "versions.tf": 'terraform {\n  required_version = ">= 1.6"\n}\n',
    "main.tf": (
        'variable "name" {\n  type = string\n}\n'
        'resource "terraform_data" "vm" {\n  input = var.name\n}\n'
        'output "name" {\n  value = terraform_data.vm.output\n}\n'
    ),
}


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    if shutil.which("terraform") is None:
        pytest.fail("terraform is not on PATH")
    mirror = find_mirror()
    with moto_server() as endpoint:
        for name, value in {
            **AWS_CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "TF_CLI_CONFIG_FILE": str(cli_config(mirror, tmp_path)) if mirror else "/dev/null",
            "TF_CLI_ARGS_init": "-backend-config=use_path_style=true",
            "TF_IN_AUTOMATION": "1",
        }.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def workdir(tmp_path: Path, name: str) -> Path:
    module = tmp_path / "module"
    module.mkdir(exist_ok=True)
    for file, text in MODULE.items():
        (module / file).write_text(text)
    folder = tmp_path / ".deploy" / name / "terraform"
    prepare(module, folder, StateBackend(kind="s3", bucket=BUCKET).hcl(name, "us-east-1"))
    return folder


def keys(s3: object) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET)  # type: ignore[attr-defined]
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_two_deployments_keep_their_state_apart_in_one_bucket(s3: object, tmp_path: Path) -> None:
    for name in ("staging", "prod"):
        folder = workdir(tmp_path, name)
        terraform.init(folder)
        terraform.apply(folder, {"name": name})
        assert terraform.outputs(folder) == {"name": name}
        assert not (folder / "terraform.tfstate").exists(), "no local state with a bucket"
    assert keys(s3) == ["duo/prod/terraform.tfstate", "duo/staging/terraform.tfstate"]
    body = s3.get_object(Bucket=BUCKET, Key="duo/staging/terraform.tfstate")  # type: ignore[attr-defined]
    assert json.loads(body["Body"].read())["outputs"]["name"]["value"] == "staging"


def test_a_teammates_running_apply_holds_the_lock(s3: object, tmp_path: Path) -> None:
    folder = workdir(tmp_path, "staging")
    terraform.init(folder)
    lock = {
        "ID": "0b1c",
        "Operation": "OperationTypeApply",
        "Who": "alice@laptop",
        "Version": "1.11.4",
        "Created": "2026-12-01T00:00:00Z",
        "Path": f"{BUCKET}/duo/staging/terraform.tfstate",
        "Info": "",
    }
    s3.put_object(  # type: ignore[attr-defined]
        Bucket=BUCKET, Key="duo/staging/terraform.tfstate.tflock", Body=json.dumps(lock)
    )
    with pytest.raises(terraform.TerraformError) as refused:
        terraform.apply(folder, {"name": "staging"})
    assert "alice@laptop" in str(refused.value)
    assert "Fix: another Terraform run holds the state" in str(refused.value)
    assert keys(s3) == ["duo/staging/terraform.tfstate.tflock"], "nothing was written"
