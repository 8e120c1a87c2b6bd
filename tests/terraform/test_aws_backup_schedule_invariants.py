"""The AWS backup bucket, GPU schedule and metrics rules against their Google Cloud twins and the
least-privilege rules, on the parsed configuration (python-hcl2; no terraform binary needed).
terraform/aws/tests/backup_schedule.tftest.hcl proves the values on a plan."""

from __future__ import annotations

import re

import pytest

from tests.terraform.hcl_config import config_dir, load_config, locals_of, named

ACTION = re.compile(r'"((?:s3|ec2|kms|iam|sts|bedrock|scheduler):[A-Za-z*]+)"')


@pytest.mark.parametrize("name", ["gpu_schedule", "metrics_ports", "backup_retention_days"])
def test_the_new_variables_have_the_google_cloud_shape(name: str) -> None:
    """The same type and default on both clouds, and (at least) the same validations: duoctl
    passes one value to either."""
    aws = named(load_config("aws"), "variable")[name]
    gcp = named(load_config("gcp"), "variable")[name]
    assert aws["type"] == gcp["type"]
    assert aws.get("default") == gcp.get("default")
    assert all(rule in aws["validation"] for rule in gcp["validation"])


def test_both_clouds_name_the_same_outputs_for_backups_and_the_schedule() -> None:
    for cloud in ("aws", "gcp"):
        assert {"backup_bucket", "gpu_schedule"} <= set(named(load_config(cloud), "output"))


def test_no_iam_action_is_a_wildcard_but_the_tls_deny() -> None:
    found = {
        path.name: ACTION.findall(path.read_text(encoding="utf-8"))
        for path in config_dir("aws").glob("*.tf")
    }
    wildcards = {name: [a for a in acts if "*" in a] for name, acts in found.items()}
    assert {name: acts for name, acts in wildcards.items() if acts} == {"backup.tf": ["s3:*"]}
    bucket_policy = named(load_config("aws"), "resource")["aws_s3_bucket_policy.backups"]
    assert re.search(r"Effect\W+Deny.*Action\W+s3:\*", bucket_policy["policy"], re.S)


def test_the_gitlab_role_may_only_write_and_read_backups() -> None:
    assert locals_of("aws")["backup_object_actions"] == [
        "s3:PutObject",
        "s3:GetObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ]
    assert "s3:DeleteObject" not in (config_dir("aws") / "backup.tf").read_text(encoding="utf-8")


def test_only_the_gitlab_vm_always_has_an_instance_profile() -> None:
    vm = named(load_config("aws"), "resource")["aws_instance.vm"]
    profile = vm["iam_instance_profile"]
    assert "gitlab = aws_iam_instance_profile.gitlab.name" in profile.replace('"', "")
    assert "ollama" not in profile, "the model server calls no AWS API"


def test_the_schedule_acts_on_the_gpu_vm_only() -> None:
    resources = named(load_config("aws"), "resource")
    schedule = resources["aws_scheduler_schedule.gpu"]
    assert schedule["for_each"] == "${local.gpu_cron}"
    target = schedule["target"][0]
    assert target["arn"] == "arn:aws:scheduler:::aws-sdk:ec2:${each.key}Instances"
    assert 'aws_instance.vm["ollama"].id' in target["input"]
    policy = resources["aws_iam_role_policy.gpu_schedule"]["policy"]
    assert 'aws_instance.vm["ollama"].arn' in policy
    assert locals_of("aws")["gpu_instance_actions"] == {
        "start": "ec2:StartInstances",
        "stop": "ec2:StopInstances",
    }


def test_the_metrics_rules_come_from_the_matrix() -> None:
    text = (config_dir("aws") / "security.tf").read_text(encoding="utf-8")
    for key in ("gateway_node_exporter", "gateway_metrics", "ollama_node_exporter"):
        assert re.search(rf"{key}\s*=\s*{{[^}}]*from_role = \"gitlab\"", text), key
    assert re.search(r'ollama_metrics\s*=\s*{[^}]*local\.model_port[^}]*from_role = "gitlab"', text)
