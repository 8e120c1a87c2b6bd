"""terraform apply of terraform/aws against a moto server on loopback, through duoctl's
own Terraform calls; then `duoctl inventory aws` on the real outputs, `ansible-inventory
--list` on the result, and terraform destroy at the end. The deployment (the session's one,
tests/terraform/moto_deployment.py) has office hours for the GPU VM (EventBridge Scheduler),
keeps its backups 14 days (the S3 bucket) and gives the AI gateway Bedrock access (checked in
test_aws_moto_bedrock.py)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doubles.aws_moto_server import MotoEndpoint
from tests.terraform.moto_deployment import (
    ACCOUNT,
    DOMAIN,
    REGION,
    Deployment,
    client,
    running_instances,
)
from tests.terraform.tooling import Terraform

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def test_outputs_follow_the_contract(aws_deployment: Deployment) -> None:
    _, outputs, _ = aws_deployment
    assert outputs["cloud"] == "aws"
    assert outputs["ssh_user"] == "ubuntu"
    assert outputs["gitlab_domain"] == DOMAIN
    assert outputs["gitlab_url"] == f"https://{DOMAIN}"
    assert outputs["dns_record_needed"] == ""
    public = ipaddress.ip_network("10.0.1.0/24")
    private = ipaddress.ip_network("10.0.2.0/24")
    assert ipaddress.ip_address(outputs["gitlab_private_ip"]) in public
    assert ipaddress.ip_address(outputs["gateway_private_ip"]) in private
    assert ipaddress.ip_address(outputs["ollama_private_ip"]) in private
    ipaddress.IPv4Address(outputs["gitlab_public_ip"])


def test_instances_as_built(aws_moto: str, aws_deployment: Deployment) -> None:
    _, outputs, _ = aws_deployment
    ec2 = client("ec2", aws_moto)
    instances = running_instances(ec2)
    assert set(instances) == {"gitlab", "ai_gateway", "ollama"}
    for role, instance in instances.items():
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["duo_prefix"] == "duo" and tags["Name"].startswith("duo-"), tags
        assert instance["MetadataOptions"]["HttpTokens"] == "required", role
        assert instance["ImageId"] == "ami-04b70fa74e45c3917", "the newest Ubuntu 24.04 image"
        volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        assert volume["Encrypted"] and volume["VolumeType"] == "gp3", role
    assert instances["ollama"]["InstanceType"] == "g4dn.xlarge"
    assert instances["ollama"]["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert instances["gitlab"].get("PublicIpAddress") == outputs["gitlab_public_ip"]
    assert "PublicIpAddress" not in instances["ai_gateway"]
    assert "PublicIpAddress" not in instances["ollama"]


def test_security_groups_as_built(aws_moto: str, aws_deployment: Deployment) -> None:
    ec2 = client("ec2", aws_moto)
    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"].startswith("duo-")
    }
    # The fourth is the Bedrock endpoint's (bedrock_vpc_endpoint); without it there are
    # three (bedrock.tftest.hcl, run "nothing_by_default").
    assert set(groups) == {"duo-gitlab", "duo-ai-gateway", "duo-ollama", "duo-bedrock-endpoint"}
    ids = {name: g["GroupId"] for name, g in groups.items()}
    seen = set()
    for name, group in groups.items():
        for perm in group["IpPermissions"]:
            for cidr in perm.get("IpRanges", []):
                seen.add((name, perm["FromPort"], cidr["CidrIp"]))
            for pair in perm.get("UserIdGroupPairs", []):
                source = next(n for n, i in ids.items() if i == pair["GroupId"])
                seen.add((name, perm["FromPort"], source))
    assert seen == {
        ("duo-gitlab", 80, "0.0.0.0/0"),
        ("duo-gitlab", 443, "0.0.0.0/0"),
        ("duo-gitlab", 22, "198.51.100.7/32"),
        ("duo-ai-gateway", 5052, "duo-gitlab"),
        ("duo-ai-gateway", 50052, "duo-gitlab"),
        ("duo-ai-gateway", 22, "duo-gitlab"),
        ("duo-ollama", 11434, "duo-ai-gateway"),
        ("duo-ollama", 22, "duo-gitlab"),
        # GitLab's Prometheus scrapes the node exporters, the gateway and the model server.
        ("duo-ai-gateway", 9100, "duo-gitlab"),
        ("duo-ai-gateway", 8082, "duo-gitlab"),
        ("duo-ollama", 9100, "duo-gitlab"),
        ("duo-ollama", 11434, "duo-gitlab"),
        # HTTPS to the bedrock-runtime endpoint, from the gateway only.
        ("duo-bedrock-endpoint", 443, "duo-ai-gateway"),
    }


def test_backup_bucket_as_built(aws_moto: str, aws_deployment: Deployment) -> None:
    _, outputs, _ = aws_deployment
    bucket = f"duo-backups-{ACCOUNT}-{REGION}"
    assert outputs["backup_bucket"] == bucket
    s3 = client("s3", aws_moto)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
    )
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert lifecycle["expire-backups"]["Expiration"] == {"Days": 14}
    assert lifecycle["expire-backups"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert [(s["Effect"], s["Condition"]) for s in policy["Statement"]] == [
        ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    ]

    iam = client("iam", aws_moto)
    document = iam.get_role_policy(RoleName="duo-gitlab", PolicyName="backup-bucket")
    statements = document["PolicyDocument"]["Statement"]
    assert {a for s in statements for a in s["Action"]} == {
        "s3:ListBucket",
        "s3:PutObject",
        "s3:GetObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    assert {r for s in statements for r in s["Resource"]} == {
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/*",
    }
    instances = running_instances(client("ec2", aws_moto))
    profile = instances["gitlab"]["IamInstanceProfile"]["Arn"]
    assert profile == f"arn:aws:iam::{ACCOUNT}:instance-profile/duo-gitlab"
    # The gateway's profile is its Bedrock role's (test_aws_moto_bedrock.py); without
    # bedrock_models it has none (bedrock.tftest.hcl, run "nothing_by_default").
    gateway = instances["ai_gateway"]["IamInstanceProfile"]["Arn"]
    assert gateway == f"arn:aws:iam::{ACCOUNT}:instance-profile/duo-gateway"
    assert "IamInstanceProfile" not in instances["ollama"]


def test_gpu_schedule_as_built(aws_moto: str, aws_deployment: Deployment) -> None:
    _, outputs, _ = aws_deployment
    gpu = outputs["instances"]["ollama"]
    scheduler = client("scheduler", aws_moto)
    seen = {}
    for action in ("start", "stop"):
        schedule = scheduler.get_schedule(Name=f"duo-gpu-{action}")
        target = schedule["Target"]
        seen[action] = (
            schedule["ScheduleExpression"],
            schedule["ScheduleExpressionTimezone"],
            schedule["State"],
            target["Arn"],
            json.loads(target["Input"]),
            target["RoleArn"],
        )
    role = f"arn:aws:iam::{ACCOUNT}:role/duo-gpu-schedule"
    assert seen == {
        "start": (
            "cron(0 8 ? * MON-FRI *)",
            "Europe/Berlin",
            "ENABLED",
            "arn:aws:scheduler:::aws-sdk:ec2:startInstances",
            {"InstanceIds": [gpu]},
            role,
        ),
        "stop": (
            "cron(0 19 ? * MON-FRI *)",
            "Europe/Berlin",
            "ENABLED",
            "arn:aws:scheduler:::aws-sdk:ec2:stopInstances",
            {"InstanceIds": [gpu]},
            role,
        ),
    }
    assert outputs["gpu_schedule"]["start_expression"] == "cron(0 8 ? * MON-FRI *)"
    iam = client("iam", aws_moto)
    statements = iam.get_role_policy(RoleName="duo-gpu-schedule", PolicyName="start-stop-gpu-vm")[
        "PolicyDocument"
    ]["Statement"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (
            ["ec2:StartInstances", "ec2:StopInstances"],
            [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{gpu}"],
        )
    ]
    trust = iam.get_role(RoleName="duo-gpu-schedule")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}


def test_dns_record_points_at_the_elastic_ip(aws_moto: str, aws_deployment: Deployment) -> None:
    _, outputs, variables = aws_deployment
    records = client("route53", aws_moto).list_resource_record_sets(
        HostedZoneId=str(variables["route53_zone_id"])
    )["ResourceRecordSets"]
    a_records = [r for r in records if r["Type"] == "A"]
    assert [(r["Name"], [v["Value"] for v in r["ResourceRecords"]]) for r in a_records] == [
        (f"{DOMAIN}.", [outputs["gitlab_public_ip"]])
    ]


def test_inventory_from_the_real_outputs(
    terraform: Terraform,
    aws_deployment: Deployment,
    tmp_path: Path,
) -> None:
    workdir, outputs, _ = aws_deployment
    saved = tmp_path / "outputs.json"
    saved.write_text(terraform.run(workdir, "output", "-json").stdout, encoding="utf-8")
    folder = tmp_path / ".deploy" / "aws"
    inventory = folder / "inventory.yml"
    command = [str(BIN / "duoctl"), "inventory", "aws", "--from-json", str(saved)]
    command += ["--deploy-dir", str(tmp_path / ".deploy")]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "written" in first.stdout
    text = inventory.read_text(encoding="utf-8")
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert inventory.read_text(encoding="utf-8") == text

    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(listed.stdout)
    hostvars = data["_meta"]["hostvars"]
    assert data["gitlab"]["hosts"] == ["gitlab-vm"]
    assert data["ai_gateway"]["hosts"] == ["gateway-vm"]
    assert data["ollama"]["hosts"] == ["ollama-vm"]
    gitlab, gateway, ollama = (hostvars[h] for h in ("gitlab-vm", "gateway-vm", "ollama-vm"))
    ssh_config = folder / "ssh_config"
    assert gitlab["ansible_host"] == gitlab["public_ip"] == outputs["gitlab_public_ip"]
    assert gitlab["private_ip"] == outputs["gitlab_private_ip"]
    assert gateway["ansible_host"] == gateway["private_ip"] == outputs["gateway_private_ip"]
    assert ollama["ansible_host"] == ollama["private_ip"] == outputs["ollama_private_ip"]
    # Every host through the deployment's ssh_config: the private ones jump through GitLab.
    for host in (gitlab, gateway, ollama):
        assert host["ansible_ssh_common_args"] == f"-F {ssh_config}"
    config = ssh_config.read_text(encoding="utf-8")
    assert f"Host gateway-vm {outputs['gateway_private_ip']}" in config
    assert config.count("ProxyJump gitlab-vm") == 2
    # The instance IDs are what the SSH wait asks the console output for.
    assert gitlab["duo_instance"].startswith("i-") and gateway["duo_instance"].startswith("i-")
    for host in (gitlab, gateway, ollama):
        assert host["duo_cloud"] == "aws"
        assert host["ansible_user"] == "ubuntu"
        assert host["gitlab_url"] == f"https://{DOMAIN}"
        assert host["gateway_url"] == f"http://{outputs['gateway_private_ip']}:5052"
        assert host["gateway_agent_platform_address"] == f"{outputs['gateway_private_ip']}:50052"
        assert host["model_endpoint"] == f"http://{outputs['ollama_private_ip']}:11434/v1"


# moto does not return the description of a rule that references another security
# group, so the provider sees it as unset; on AWS these rules do not drift.
MOTO_DRIFT = {"aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"}


def test_second_plan_changes_nothing_and_warns_about_the_gpu_quota(
    terraform: Terraform,
    aws_moto: MotoEndpoint,
    aws_deployment: Deployment,
    tmp_path: Path,
) -> None:
    """Every resource of the deployment, the Bedrock ones (role, policy, instance profile,
    endpoint and its rules) included, reads back as applied."""
    workdir, _, variables = aws_deployment
    var_file = tmp_path / "vars.tfvars.json"
    var_file.write_text(json.dumps(variables), encoding="utf-8")
    plan_file = tmp_path / "second.tfplan"
    aws_moto.set_gpu_vcpu_quota(0)
    try:
        planned = terraform.run(
            workdir,
            "plan",
            "-input=false",
            "-no-color",
            f"-var-file={var_file}",
            f"-out={plan_file}",
        )
    finally:
        aws_moto.set_gpu_vcpu_quota(8)
    warning = " ".join((planned.stdout + planned.stderr).split())
    assert "(L-DB2E81BA) in us-east-1 is 0 vCPUs; g4dn.xlarge needs at least 4" in warning
    assert "request-service-quota-increase" in warning
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
