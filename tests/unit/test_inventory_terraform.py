"""duoctl.terraform: command lines and error translation, without running terraform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from duoctl import terraform
from python_terraform import Terraform


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the command lines python-terraform would run; pretend they succeed."""
    calls: list[list[str]] = []

    def fake_cmd(self: Terraform, cmd: str, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
        kwargs.pop("capture_output", None)
        kwargs.pop("raise_on_error", None)
        calls.append(self.generate_cmd_string(cmd, *args, **kwargs))
        return 0, '{"ssh_user": {"value": "ubuntu", "type": "string", "sensitive": false}}', ""

    monkeypatch.setattr(Terraform, "cmd", fake_cmd)
    monkeypatch.setattr(terraform.shutil, "which", lambda _: "/usr/bin/terraform")
    return calls


def test_terraform_dir() -> None:
    assert terraform.terraform_dir("aws").name == "aws"
    assert (terraform.terraform_dir("gcp") / "versions.tf").is_file()
    with pytest.raises(terraform.TerraformError, match="unknown cloud"):
        terraform.terraform_dir("azure")


def test_destroy_does_not_pass_the_removed_force_flag(
    recorded: list[list[str]], tmp_path: Path
) -> None:
    terraform.destroy(tmp_path, {"admin_cidrs": ["198.51.100.7/32"]})
    (line,) = recorded
    assert line[:2] == ["terraform", "destroy"]
    assert "-force" not in line
    assert "-auto-approve" in line
    assert any(arg.startswith("-var-file=") for arg in line)


def test_apply_init_and_outputs(recorded: list[list[str]], tmp_path: Path) -> None:
    terraform.init(tmp_path)
    terraform.apply(tmp_path, {"gitlab_domain": "gitlab.example.com"})
    assert terraform.outputs(tmp_path) == {"ssh_user": "ubuntu"}
    init, apply, output = recorded
    assert init[:2] == ["terraform", "init"] and "-input=false" in init
    assert apply[:2] == ["terraform", "apply"] and "-auto-approve=true" in apply
    assert "-input=false" in apply
    assert output == ["terraform", "output", "-json"]


def test_failure_names_the_command_the_error_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stderr = "\nError: No valid credential sources found\n\nwith provider[aws]\n"
    monkeypatch.setattr(Terraform, "cmd", lambda *a, **k: (1, "", stderr))
    monkeypatch.setattr(terraform.shutil, "which", lambda _: "/usr/bin/terraform")
    with pytest.raises(terraform.TerraformError) as err:
        terraform.apply(tmp_path, {})
    message = str(err.value)
    assert message.startswith(f"terraform apply failed in {tmp_path} (exit 1):")
    assert "Error: No valid credential sources found" in message
    assert "Fix: configure AWS credentials" in message


def test_missing_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(terraform.shutil, "which", lambda _: None)
    with pytest.raises(terraform.TerraformError, match="terraform is not on PATH"):
        terraform.outputs(tmp_path)


def test_none_means_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    passed: list[dict[str, Any]] = []
    monkeypatch.setattr(
        Terraform, "cmd", lambda _self, *_a, **k: passed.append(k["var"]) or (0, "", "")
    )
    monkeypatch.setattr(terraform.shutil, "which", lambda _: "/usr/bin/terraform")
    terraform.apply(tmp_path, {"zone": None, "region": "us-east-1"})
    terraform.destroy(tmp_path, {"route53_zone_id": None})
    assert passed == [{"region": "us-east-1"}, {}]


def test_a_rule_an_interrupted_apply_left_unrecorded_is_explained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stderr = (
        "\nError: creating VPC Security Group Rule\n\n  with "
        'aws_vpc_security_group_ingress_rule.vm["gitlab_https"],\n'
        "api error InvalidPermission.Duplicate: The specified rule already exists\n"
    )
    monkeypatch.setattr(Terraform, "cmd", lambda *a, **k: (1, "", stderr))
    monkeypatch.setattr(terraform.shutil, "which", lambda _: "/usr/bin/terraform")
    with pytest.raises(terraform.TerraformError, match="Fix: an interrupted apply created"):
        terraform.apply(tmp_path, {})
