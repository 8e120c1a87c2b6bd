"""Bedrock access (bedrock_models set, the bedrock-runtime VPC endpoint on) of the deployment
of terraform/aws on a moto server on loopback, the session's one (tests/terraform/
moto_deployment.py, applied once for this module and test_aws_moto_apply.py, which also runs
its second plan): the gateway's instance role and its policy, the instance profile on the
gateway VM only, IMDSv2 with hop limit 2 on the gateway, the endpoint and its security group
as the AWS APIs report them; then the outputs through `duoctl inventory aws` into the gateway
host's variables.

What moto cannot show is covered by terraform/aws/tests/bedrock.tftest.hcl instead: moto
accepts any service name for a VPC endpoint (it does not know whether bedrock-runtime is
offered in the region) and does not evaluate IAM policies, so whether the policy lets the
gateway invoke a model (and nothing else) is asserted on the policy document only. moto also
names the endpoint's DNS entry its own way (vpce-ID-RANDOM.com.amazonaws.REGION.bedrock-runtime,
where AWS answers vpce-ID-RANDOM.bedrock-runtime.REGION.vpce.amazonaws.com), so the output is
compared with what DescribeVpcEndpoints reports. The same file covers the configuration
without Bedrock (run "nothing_by_default": no Bedrock resource, no instance profile on the
gateway, a hop limit of 1 everywhere), which this deployment, Bedrock on, does not show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.terraform.moto_deployment import (
    ACCOUNT,
    MODEL,
    PROFILE,
    REGION,
    Deployment,
    client,
    running_instances,
)
from tests.terraform.tooling import Terraform

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ACTIONS = {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}


def test_the_gateway_has_the_bedrock_role_and_gitlab_its_own(
    aws_moto: str, aws_deployment: Deployment
) -> None:
    instances = running_instances(client("ec2", aws_moto))
    assert set(instances) == {"gitlab", "ai_gateway", "ollama"}
    profile_arn = instances["ai_gateway"]["IamInstanceProfile"]["Arn"]
    assert profile_arn == f"arn:aws:iam::{ACCOUNT}:instance-profile/duo-gateway"
    # GitLab has its own role (its backup bucket, backup.tf); the model server none.
    gitlab_profile = instances["gitlab"]["IamInstanceProfile"]["Arn"]
    assert gitlab_profile == f"arn:aws:iam::{ACCOUNT}:instance-profile/duo-gitlab"
    assert "IamInstanceProfile" not in instances["ollama"]
    iam = client("iam", aws_moto)
    profile = iam.get_instance_profile(InstanceProfileName="duo-gateway")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["duo-gateway"]
    trust = iam.get_role(RoleName="duo-gateway")["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]


def test_imds_v2_with_one_more_hop_on_the_gateway(
    aws_moto: str, aws_deployment: Deployment
) -> None:
    instances = running_instances(client("ec2", aws_moto))
    for role, instance in instances.items():
        options = instance["MetadataOptions"]
        assert options["HttpTokens"] == "required", role
        assert options["HttpPutResponseHopLimit"] == (2 if role == "ai_gateway" else 1), role


def test_the_policy_as_stored(aws_moto: str, aws_deployment: Deployment) -> None:
    iam = client("iam", aws_moto)
    assert iam.list_role_policies(RoleName="duo-gateway")["PolicyNames"] == ["bedrock-invoke"]
    assert iam.list_attached_role_policies(RoleName="duo-gateway")["AttachedPolicies"] == []
    document = iam.get_role_policy(RoleName="duo-gateway", PolicyName="bedrock-invoke")[
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
    aws_moto: str, aws_deployment: Deployment
) -> None:
    ec2 = client("ec2", aws_moto)
    endpoints = ec2.describe_vpc_endpoints()["VpcEndpoints"]
    assert [e["ServiceName"] for e in endpoints] == [f"com.amazonaws.{REGION}.bedrock-runtime"]
    endpoint = endpoints[0]
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["PrivateDnsEnabled"] is True
    subnets = ec2.describe_subnets(SubnetIds=endpoint["SubnetIds"])["Subnets"]
    assert [{t["Key"]: t["Value"] for t in s["Tags"]}["Name"] for s in subnets] == ["duo-private"]
    groups = {
        g["GroupId"]: g
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"].startswith("duo-")
    }
    names = {gid: g["GroupName"] for gid, g in groups.items()}
    [endpoint_group] = [groups[g["GroupId"]] for g in endpoint["Groups"]]
    assert endpoint_group["GroupName"] == "duo-bedrock-endpoint"
    rules = [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], names[pair["GroupId"]])
        for p in endpoint_group["IpPermissions"]
        for pair in p.get("UserIdGroupPairs", [])
    ]
    assert rules == [("tcp", 443, 443, "duo-ai-gateway")]
    assert all(
        not p.get("IpRanges") and not p.get("Ipv6Ranges") for p in endpoint_group["IpPermissions"]
    )


def test_outputs_reach_the_gateway_host(
    terraform: Terraform,
    aws_moto: str,
    aws_deployment: Deployment,
    tmp_path: Path,
) -> None:
    workdir, outputs, _ = aws_deployment
    assert outputs["bedrock_region"] == REGION
    endpoint = outputs["bedrock_runtime_endpoint"]
    [described] = client("ec2", aws_moto).describe_vpc_endpoints()["VpcEndpoints"]
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
