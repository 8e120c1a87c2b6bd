"""terraform apply of terraform/aws with Bedrock access (bedrock_models set, the
bedrock-runtime VPC endpoint on) against a moto server on loopback: the gateway's instance
role and its policy, the instance profile on the gateway VM only, IMDSv2 with hop limit 2 on
the gateway, the endpoint and its security group as the AWS APIs report them; then the
outputs through `duoctl inventory aws` into the gateway host's variables.

What moto cannot show is covered by terraform/aws/tests/bedrock.tftest.hcl instead: moto
accepts any service name for a VPC endpoint (it does not know whether bedrock-runtime is
offered in the region) and does not evaluate IAM policies, so whether the policy lets the
gateway invoke a model (and nothing else) is asserted on the policy document only. moto also
names the endpoint's DNS entry its own way (vpce-ID-RANDOM.com.amazonaws.REGION.bedrock-runtime,
where AWS answers vpce-ID-RANDOM.bedrock-runtime.REGION.vpce.amazonaws.com), so the output is
compared with what DescribeVpcEndpoints reports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from duoctl import terraform as tf

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, MotoEndpoint, moto_server
from tests.terraform.tooling import Terraform, copy_config

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
PROFILE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
ACTIONS = {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}


def _ssh_public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " duo-test"


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


VARIABLES: dict[str, object] = {
    "gitlab_domain": "gitlab.example.com",
    "admin_cidrs": ["198.51.100.7/32"],
    "region": REGION,
    "prefix": "bedrock",
    "bedrock_models": [PROFILE, MODEL],
    "bedrock_vpc_endpoint": True,
}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEndpoint]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def deployment(
    terraform: Terraform, moto: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, Any], dict[str, object]]]:
    """Applied once for the module, destroyed at its end (also when a test fails)."""
    workdir = copy_config("aws", tmp_path_factory.mktemp("aws-bedrock") / "aws")
    shutil.rmtree(workdir / "tests")
    override = (HERE / "moto_endpoints_override.tf").read_text(encoding="utf-8")
    (workdir / "moto_endpoints_override.tf").write_text(
        override.replace("MOTO_ENDPOINT", moto), encoding="utf-8"
    )
    variables: dict[str, object] = VARIABLES | {"ssh_public_key": _ssh_public_key()}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in terraform.env.items():
            mp.setenv(key, value)
        tf.init(workdir)
        try:
            tf.apply(workdir, variables)
            yield workdir, tf.outputs(workdir), variables
        finally:
            tf.destroy(workdir, variables)


def _instances(ec2: Any) -> dict[str, Any]:
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
    )["Reservations"]
    return {
        {t["Key"]: t["Value"] for t in i["Tags"]}["duo_role"]: i
        for r in reservations
        for i in r["Instances"]
    }


def test_the_gateway_has_the_bedrock_role_and_gitlab_its_own(
    moto: str, deployment: tuple[Path, dict[str, Any], dict[str, object]]
) -> None:
    instances = _instances(_client("ec2", moto))
    assert set(instances) == {"gitlab", "ai_gateway", "ollama"}
    profile_arn = instances["ai_gateway"]["IamInstanceProfile"]["Arn"]
    assert profile_arn == f"arn:aws:iam::{ACCOUNT}:instance-profile/bedrock-gateway"
    # GitLab has its own role (its backup bucket, backup.tf); the model server none.
    gitlab_profile = instances["gitlab"]["IamInstanceProfile"]["Arn"]
    assert gitlab_profile == f"arn:aws:iam::{ACCOUNT}:instance-profile/bedrock-gitlab"
    assert "IamInstanceProfile" not in instances["ollama"]
    iam = _client("iam", moto)
    profile = iam.get_instance_profile(InstanceProfileName="bedrock-gateway")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["bedrock-gateway"]
    trust = iam.get_role(RoleName="bedrock-gateway")["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]


def test_imds_v2_with_one_more_hop_on_the_gateway(
    moto: str, deployment: tuple[Path, dict[str, Any], dict[str, object]]
) -> None:
    instances = _instances(_client("ec2", moto))
    for role, instance in instances.items():
        options = instance["MetadataOptions"]
        assert options["HttpTokens"] == "required", role
        assert options["HttpPutResponseHopLimit"] == (2 if role == "ai_gateway" else 1), role


def test_the_policy_as_stored(
    moto: str, deployment: tuple[Path, dict[str, Any], dict[str, object]]
) -> None:
    iam = _client("iam", moto)
    assert iam.list_role_policies(RoleName="bedrock-gateway")["PolicyNames"] == ["bedrock-invoke"]
    assert iam.list_attached_role_policies(RoleName="bedrock-gateway")["AttachedPolicies"] == []
    document = iam.get_role_policy(RoleName="bedrock-gateway", PolicyName="bedrock-invoke")[
        "PolicyDocument"
    ]
    document = json.loads(document) if isinstance(document, str) else document
    profile_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{PROFILE}"
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert all(s["Effect"] == "Allow" and set(s["Action"]) == ACTIONS for s in statements.values())
    assert {sid: s["Resource"] for sid, s in statements.items()} == {
        "InvokeFoundationModels": [f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}"],
        "InvokeInferenceProfiles": [profile_arn],
        "InvokeModelThroughProfile0": [
            "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0"
        ],
    }
    fenced = statements["InvokeModelThroughProfile0"]["Condition"]
    assert fenced == {"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}}


def test_the_endpoint_takes_https_from_the_gateway_only(
    moto: str, deployment: tuple[Path, dict[str, Any], dict[str, object]]
) -> None:
    ec2 = _client("ec2", moto)
    endpoints = ec2.describe_vpc_endpoints()["VpcEndpoints"]
    assert [e["ServiceName"] for e in endpoints] == [f"com.amazonaws.{REGION}.bedrock-runtime"]
    endpoint = endpoints[0]
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["PrivateDnsEnabled"] is True
    subnets = ec2.describe_subnets(SubnetIds=endpoint["SubnetIds"])["Subnets"]
    assert [{t["Key"]: t["Value"] for t in s["Tags"]}["Name"] for s in subnets] == [
        "bedrock-private"
    ]
    groups = {
        g["GroupId"]: g
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"].startswith("bedrock-")
    }
    names = {gid: g["GroupName"] for gid, g in groups.items()}
    [endpoint_group] = [groups[g["GroupId"]] for g in endpoint["Groups"]]
    assert endpoint_group["GroupName"] == "bedrock-bedrock-endpoint"
    rules = [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], names[pair["GroupId"]])
        for p in endpoint_group["IpPermissions"]
        for pair in p.get("UserIdGroupPairs", [])
    ]
    assert rules == [("tcp", 443, 443, "bedrock-ai-gateway")]
    assert all(
        not p.get("IpRanges") and not p.get("Ipv6Ranges") for p in endpoint_group["IpPermissions"]
    )


def test_outputs_reach_the_gateway_host(
    terraform: Terraform,
    moto: str,
    deployment: tuple[Path, dict[str, Any], dict[str, object]],
    tmp_path: Path,
) -> None:
    workdir, outputs, _ = deployment
    assert outputs["bedrock_region"] == REGION
    endpoint = outputs["bedrock_runtime_endpoint"]
    [described] = _client("ec2", moto).describe_vpc_endpoints()["VpcEndpoints"]
    assert endpoint == f"https://{described['DnsEntries'][0]['DnsName']}"
    saved = tmp_path / "outputs.json"
    saved.write_text(terraform.run(workdir, "output", "-json").stdout, encoding="utf-8")
    command = [str(BIN / "duoctl"), "inventory", "aws", "--from-json", str(saved)]
    command += ["--deploy-dir", str(tmp_path / ".deploy")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    inventory = yaml.safe_load(
        (tmp_path / ".deploy" / "aws" / "inventory.yml").read_text(encoding="utf-8")
    )
    gateway = inventory["all"]["children"]["ai_gateway"]["hosts"]["gateway-vm"]
    assert gateway["ai_gateway_aws_region"] == REGION
    assert gateway["ai_gateway_bedrock_runtime_endpoint"] == endpoint
    for group in ("gitlab", "ollama"):
        host = next(iter(inventory["all"]["children"][group]["hosts"].values()))
        assert not any(key.startswith("ai_gateway_") for key in host)


# moto does not return the description of a rule that references another security group, so
# the provider sees it as unset; on AWS these rules do not drift (as in test_aws_moto_apply).
MOTO_DRIFT = {"aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"}


def test_second_plan_changes_nothing(
    terraform: Terraform,
    deployment: tuple[Path, dict[str, Any], dict[str, object]],
    tmp_path: Path,
) -> None:
    workdir, _, variables = deployment
    var_file = tmp_path / "vars.tfvars.json"
    var_file.write_text(json.dumps(variables), encoding="utf-8")
    plan_file = tmp_path / "second.tfplan"
    terraform.run(
        workdir, "plan", "-input=false", "-no-color", f"-var-file={var_file}", f"-out={plan_file}"
    )
    plan = json.loads(terraform.run(workdir, "show", "-json", str(plan_file)).stdout)
    changes = {}
    for change in plan.get("resource_changes", []):
        actions = change["change"]["actions"]
        if actions in (["no-op"], ["read"]):
            continue
        before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if actions == ["update"] and change["type"] in MOTO_DRIFT and changed == ["description"]:
            continue
        changes[change["address"]] = (actions, changed)
    assert changes == {}, "a second apply would change these"
