"""`duoctl inventory` end to end: saved outputs -> inventory file -> ansible-inventory --list;
and duoctl's Terraform calls against a real terraform binary on a provider-less configuration."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from duoctl import terraform
from duoctl.deployment import Deployment

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

OUTPUTS = {
    "cloud": "gcp",
    "gitlab_public_ip": "198.51.100.20",
    "gitlab_private_ip": "10.0.1.2",
    "gateway_private_ip": "10.0.1.3",
    "ollama_private_ip": "10.0.1.4",
    "gitlab_domain": "gitlab.example.org",
    "gitlab_url": "https://gitlab.example.org",
    "ssh_user": "ubuntu",
    "dns_record_needed": "gitlab.example.org. 300 IN A 198.51.100.20",
}


def _duoctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "duoctl"), "inventory", *args], capture_output=True, text=True, check=False
    )


def _ansible_list(inventory: Path) -> dict[str, Any]:
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(listed.stdout)
    return data


def _saved_outputs(tmp_path: Path) -> Path:
    saved = tmp_path / "outputs.json"
    items = {k: {"sensitive": False, "type": "string", "value": v} for k, v in OUTPUTS.items()}
    saved.write_text(json.dumps(items), encoding="utf-8")
    return saved


def test_from_json_to_ansible(tmp_path: Path) -> None:
    folder = tmp_path / ".deploy" / "lab"
    args = ("--from-json", str(_saved_outputs(tmp_path)), "--name", "lab")
    result = _duoctl("gcp", *args, "--deploy-dir", str(tmp_path / ".deploy"))
    inventory = folder / "inventory.yml"
    assert result.returncode == 0, result.stderr
    assert f"{inventory}: written" in result.stdout
    assert "gitlab.example.org. 300 IN A 198.51.100.20" in result.stdout, "tell the DNS record"
    again = _duoctl("gcp", *args, "--deploy-dir", str(tmp_path / ".deploy"))
    assert f"{inventory}: unchanged" in again.stdout

    data = _ansible_list(inventory)
    assert data["all"]["children"] == ["ungrouped", "gitlab", "ai_gateway", "ollama"]
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["gitlab-vm"]["ansible_host"] == "198.51.100.20"
    assert hostvars["ollama-vm"]["ansible_host"] == "10.0.1.4"
    # Every SSH connection reads the deployment's ssh_config: known_hosts and the jump host.
    assert hostvars["gateway-vm"]["ansible_ssh_common_args"] == f"-F {folder / 'ssh_config'}"
    assert "ProxyJump gitlab-vm" in (folder / "ssh_config").read_text()
    assert hostvars["gateway-vm"]["model_endpoint"] == "http://10.0.1.4:11434/v1"
    assert hostvars["gitlab-vm"]["duo_cloud"] == "gcp"


def test_bad_input_exits_2_with_the_fix(tmp_path: Path) -> None:
    saved = tmp_path / "outputs.json"
    saved.write_text(json.dumps({**OUTPUTS, "gitlab_domain": "{{ lookup('pipe', 'id') }}"}))
    deploy_dir = str(tmp_path / ".deploy")
    result = _duoctl("gcp", "--from-json", str(saved), "--deploy-dir", deploy_dir)
    assert result.returncode == 2
    assert "gitlab_domain" in result.stderr and "not a host name" in result.stderr
    assert "fix: apply the configuration again" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".deploy" / "gcp" / "inventory.yml").exists()
    missing = _duoctl("aws", "--from-json", str(tmp_path / "nope.json"), "--deploy-dir", deploy_dir)
    assert missing.returncode == 2 and "No such file" in missing.stderr
    nothing = _duoctl("aws", "--deploy-dir", deploy_dir)
    assert nothing.returncode == 2 and "has no Terraform working directory yet" in nothing.stderr


def test_hosts_example_is_a_valid_inventory() -> None:
    data = _ansible_list(REPO / "inventory" / "hosts.example.yml")
    assert data["gitlab"]["hosts"] == ["gitlab-vm"]
    assert data["ai_gateway"]["hosts"] == ["gateway-vm"]
    assert data["ollama"]["hosts"] == ["ollama-vm"]
    assert data["_meta"]["hostvars"]["ollama-vm"]["duo_cloud"] == "hosts"


OUTPUTS_ONLY_CONFIG = """
variable "ip" {
  type = string
}

output "cloud" { value = "aws" }
output "gitlab_public_ip" { value = "203.0.113.7" }
output "gitlab_private_ip" { value = "10.0.1.7" }
output "gateway_private_ip" { value = "10.0.2.7" }
output "ollama_private_ip" { value = var.ip }
output "gitlab_domain" { value = "gitlab.example.com" }
output "gitlab_url" { value = "https://gitlab.example.com" }
output "ssh_user" { value = "ubuntu" }
output "dns_record_needed" { value = "" }
"""


@pytest.mark.skipif(shutil.which("terraform") is None, reason="TERRAFORM MISSING: not on PATH")
def test_terraform_calls_for_real(tmp_path: Path) -> None:
    """init/apply/outputs/destroy through python-terraform on a configuration without providers."""
    (tmp_path / "main.tf").write_text(OUTPUTS_ONLY_CONFIG, encoding="utf-8")
    terraform.init(tmp_path)
    terraform.apply(tmp_path, {"ip": "10.0.2.8"})
    outputs = terraform.outputs(tmp_path)
    assert outputs["ollama_private_ip"] == "10.0.2.8"
    assert Deployment.from_outputs(outputs, "aws").model_endpoint == "http://10.0.2.8:11434/v1"
    terraform.destroy(tmp_path, {"ip": "10.0.2.8"})
    assert terraform.outputs(tmp_path) == {}
    with pytest.raises(terraform.TerraformError, match="terraform apply failed") as err:
        terraform.apply(tmp_path, {})
    assert "Fix: set the required variables" in str(err.value)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="TERRAFORM MISSING: not on PATH")
def test_terraform_output_streams_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a sink, each line reaches it as terraform prints it; errors keep their fix."""
    var_files = tmp_path / "tmp"
    var_files.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(var_files))  # where python-terraform writes
    config = tmp_path / "config"
    config.mkdir()
    (config / "main.tf").write_text(OUTPUTS_ONLY_CONFIG, encoding="utf-8")
    lines: list[str] = []
    terraform.init(config, sink=lines.append)
    assert any("Terraform has been successfully initialized" in line for line in lines)
    lines.clear()
    seen_var_files: list[int] = []

    def sink(line: str) -> None:
        lines.append(line)
        seen_var_files.append(len(list(var_files.glob("*.tfvars.json"))))

    terraform.apply(config, {"ip": "10.0.2.9"}, sink=sink)
    assert any(line.startswith("Apply complete!") for line in lines)
    assert max(seen_var_files) == 1, "the variables went through a -var-file"
    assert all("\n" not in line for line in lines)
    assert terraform.outputs(config)["ollama_private_ip"] == "10.0.2.9"
    assert not list(var_files.glob("*.tfvars.json")), "the -var-file is removed"
    lines.clear()
    with pytest.raises(terraform.TerraformError, match="terraform apply failed") as err:
        terraform.apply(config, {}, sink=lines.append)
    assert "Fix: set the required variables" in str(err.value)
    assert any("No value for required variable" in line for line in lines)
    terraform.destroy(config, {"ip": "10.0.2.9"}, sink=lines.append)
    assert any("Destroy complete!" in line for line in lines)
