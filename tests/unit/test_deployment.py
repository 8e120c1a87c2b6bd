"""duoctl.deployment: the typed deployment from Terraform outputs or an inventory, and the
inventory and ssh_config it writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl.deployment import Deployment, check_user
from duoctl.errors import DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.inventory import load_outputs_file, write_files
from yamllint import linter
from yamllint.config import YamlLintConfig

REPO = Path(__file__).resolve().parents[2]

OUTPUTS: dict[str, Any] = {
    "cloud": "aws",
    "gitlab_public_ip": "203.0.113.10",
    "gitlab_private_ip": "10.0.1.10",
    "gateway_private_ip": "10.0.2.10",
    "ollama_private_ip": "10.0.3.10",
    "gitlab_domain": "gitlab.example.com",
    "gitlab_url": "https://gitlab.example.com",
    "ssh_user": "ubuntu",
    "dns_record_needed": "",
    "instances": {"gitlab": "i-1", "ai_gateway": "i-2", "ollama": "i-3"},
}
SSH_CONFIG = Path("/deploy/aws/ssh_config")
CONTRACT = {
    "all": {
        "vars": {
            "duo_cloud": "aws",
            "ansible_user": "ubuntu",
            "gitlab_domain": "gitlab.example.com",
            "gitlab_url": "https://gitlab.example.com",
            "gateway_url": "http://10.0.2.10:5052",
            "gateway_agent_platform_address": "10.0.2.10:50052",
            "model_endpoint": "http://10.0.3.10:11434/v1",
            "ansible_ssh_common_args": "-F /deploy/aws/ssh_config",
        },
        "children": {
            "gitlab": {
                "hosts": {
                    "gitlab-vm": {
                        "ansible_host": "203.0.113.10",
                        "private_ip": "10.0.1.10",
                        "public_ip": "203.0.113.10",
                        "duo_instance": "i-1",
                    }
                }
            },
            "ai_gateway": {
                "hosts": {
                    "gateway-vm": {
                        "ansible_host": "10.0.2.10",
                        "private_ip": "10.0.2.10",
                        "duo_ssh_jump": "gitlab-vm",
                        "duo_instance": "i-2",
                    }
                }
            },
            "ollama": {
                "hosts": {
                    "ollama-vm": {
                        "ansible_host": "10.0.3.10",
                        "private_ip": "10.0.3.10",
                        "duo_ssh_jump": "gitlab-vm",
                        "duo_instance": "i-3",
                    }
                }
            },
        },
    }
}


def deployment(**changes: Any) -> Deployment:
    return Deployment.from_outputs({**OUTPUTS, **changes}, "aws")


def test_inventory_is_exactly_the_contract() -> None:
    assert deployment().inventory(SSH_CONFIG) == CONTRACT


def test_accepts_terraform_output_json_items() -> None:
    items = {k: {"value": v, "type": "string", "sensitive": False} for k, v in OUTPUTS.items()}
    assert Deployment.from_outputs(items, "aws") == deployment()


def test_non_default_ports_reach_every_url() -> None:
    d = deployment(gateway_port=15052, gateway_grpc_port=15053, ollama_port=21434)
    assert d.gateway_url == "http://10.0.2.10:15052"
    assert d.agent_platform_address == "10.0.2.10:15053"
    assert d.model_endpoint == "http://10.0.3.10:21434/v1"


def test_the_url_is_derived_from_the_domain_not_taken_from_the_outputs() -> None:
    d = deployment(gitlab_url="https://{{ lookup('pipe', 'id') }}")
    assert d.gitlab_url == "https://gitlab.example.com"


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("gitlab_public_ip", "not-an-ip", "not an IPv4 address"),
        ("gateway_private_ip", "{{ lookup('pipe', 'id') }}", "not an IPv4 address"),
        ("gitlab_domain", "{{ 7 * 7 }}.example.com", "not a host name"),
        ("ssh_user", "root; rm -rf /", "not a user name"),
        ("ollama_port", 70000, "less than 65536"),
    ],
)
def test_bad_values_are_refused_and_named(key: str, value: object, problem: str) -> None:
    with pytest.raises(DuoctlError, match=problem) as caught:
        deployment(**{key: value})
    assert "bad Terraform outputs" in caught.value.message


@pytest.mark.parametrize("key", ["gitlab_public_ip", "gitlab_domain", "ssh_user"])
def test_missing_output_is_named(key: str) -> None:
    with pytest.raises(DuoctlError, match=f"lack {key}"):
        deployment(**{key: ""})


def test_no_outputs_and_other_cloud() -> None:
    with pytest.raises(DuoctlError, match="no Terraform outputs yet"):
        Deployment.from_outputs({}, "aws")
    with pytest.raises(DuoctlError, match="come from gcp, not aws"):
        deployment(cloud="gcp")


def test_ssh_config_jumps_through_gitlab_and_pins_host_keys() -> None:
    text = deployment().ssh_config_text(Path("/d/known_hosts"), "/home/me/.ssh/id_ed25519")
    assert "Host gateway-vm 10.0.2.10\n  HostName 10.0.2.10\n  User ubuntu\n" in text
    assert "  ProxyJump gitlab-vm\n" in text
    gitlab = text.split("Host gitlab-vm")[1].split("Host ")[0]
    assert "ProxyJump" not in gitlab
    assert '  UserKnownHostsFile "/d/known_hosts"\n' in text
    assert "  StrictHostKeyChecking accept-new\n" in text
    assert '  IdentityFile "/home/me/.ssh/id_ed25519"\n' in text


def test_files_are_lint_clean_idempotent_and_read_back(tmp_path: Path) -> None:
    folder = DeploymentFolder.of(tmp_path, "aws", REPO)
    d = deployment()
    assert write_files(d, folder, None) is True
    assert write_files(d, folder, None) is False
    text = folder.inventory.read_text()
    problems = list(linter.run(text, YamlLintConfig(file=str(REPO / ".yamllint"))))
    assert problems == []
    assert oct(folder.ssh_config.stat().st_mode & 0o777) == "0o600"
    assert Deployment.from_inventory(folder.inventory) == d


def test_ssh_reads_the_config(tmp_path: Path) -> None:
    """OpenSSH itself accepts the file and resolves the jump (ssh -G prints the result)."""
    folder = DeploymentFolder.of(tmp_path, "aws", REPO)
    write_files(deployment(), folder, None)
    try:
        result = subprocess.run(
            ["ssh", "-G", "-F", str(folder.ssh_config), "10.0.2.10"],
            capture_output=True,
            text=True,
            check=True,
        )
    except FileNotFoundError:
        pytest.skip("no OpenSSH client on this machine")
    options = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert options["proxyjump"] == "gitlab-vm"
    assert options["stricthostkeychecking"] in ("accept-new", "false")
    assert options["userknownhostsfile"].strip('"') == str(folder.known_hosts)


def test_load_outputs_file(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({k: {"value": v} for k, v in OUTPUTS.items()}))
    assert load_outputs_file(path)["gitlab_domain"] == "gitlab.example.com"
    path.write_text("{not json")
    with pytest.raises(DuoctlError, match="not a terraform output -json document"):
        load_outputs_file(path)
    with pytest.raises(DuoctlError, match="No such file"):
        load_outputs_file(tmp_path / "missing.json")


def test_hosts_example_is_read_as_a_deployment() -> None:
    d = Deployment.from_inventory(REPO / "inventory" / "hosts.example.yml")
    assert d.target == "hosts"
    assert [h.via_jump for h in d.hosts] == [False, True, True]
    assert (
        d.gateway_url
        == yaml.safe_load((REPO / "inventory" / "hosts.example.yml").read_text())["all"]["vars"][
            "gateway_url"
        ]
    )


def test_damaged_inventory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all: [unclosed")
    with pytest.raises(DuoctlError, match="not valid YAML"):
        Deployment.from_inventory(path)
    with pytest.raises(DuoctlError, match="cannot read the inventory"):
        Deployment.from_inventory(tmp_path / "missing.yml")


def test_user_names_reaching_a_shell_are_checked() -> None:
    assert check_user("root") == "root"
    with pytest.raises(DuoctlError, match="not a user name"):
        check_user("root]'; id; '")


def test_vllm_serving_puts_the_model_server_in_its_group(tmp_path: Path) -> None:
    d = Deployment.from_outputs({**OUTPUTS, "ollama_port": 8000}, "aws", "vllm")
    assert (d.serving, d.model.name, d.model.group) == ("vllm", "vllm-vm", "vllm")
    assert d.model_endpoint == "http://10.0.3.10:8000/v1"
    inventory = d.inventory(SSH_CONFIG)
    assert "vllm" in inventory["all"]["children"] and "ollama" not in inventory["all"]["children"]
    folder = DeploymentFolder.of(tmp_path, "aws", REPO)
    write_files(d, folder, None)
    assert Deployment.from_inventory(folder.inventory) == d


def test_an_inventory_needs_exactly_one_model_server_group(tmp_path: Path) -> None:
    both = yaml.safe_load(yaml.safe_dump(CONTRACT))
    both["all"]["children"]["vllm"] = {"hosts": {"vllm-vm": {"private_ip": "10.0.3.11"}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(both))
    with pytest.raises(DuoctlError, match=r"one model server host.*has ollama and vllm"):
        Deployment.from_inventory(path)


def test_the_duo_configuration_of_a_vllm_preset(tmp_path: Path) -> None:
    from duoctl import serving
    from duoctl.duo_config import duo_config, vllm_model

    preset = serving.PRESETS[serving.DEFAULT_PRESET]
    key = tmp_path / "vllm_api_key"
    key.write_text("k\n")
    d = Deployment.from_outputs({**OUTPUTS, "ollama_port": 8000}, "aws", "vllm")
    config = duo_config(d, vllm_model(preset, key))
    [model] = config.models
    assert model.identifier == f"custom_openai/{preset.served_model_name}"
    assert model.endpoint == "http://10.0.3.10:8000/v1" and model.api_key_file == str(key)
    assert set(config.features) <= set(preset.model.features)
    assert set(config.features.values()) == {preset.name}


BEDROCK_ENDPOINT = "https://vpce-0abc-defg.bedrock-runtime.us-east-1.vpce.amazonaws.com"


def _gateway_vars(d: Deployment) -> dict[str, Any]:
    hosts: dict[str, Any] = d.inventory(None)["all"]["children"]["ai_gateway"]["hosts"]
    return dict(hosts["gateway-vm"])


def test_bedrock_outputs_become_the_gateway_host_variables(tmp_path: Path) -> None:
    d = deployment(bedrock_region="us-east-1", bedrock_runtime_endpoint=BEDROCK_ENDPOINT)
    gateway = _gateway_vars(d)
    assert gateway["ai_gateway_aws_region"] == "us-east-1"
    assert gateway["ai_gateway_bedrock_runtime_endpoint"] == BEDROCK_ENDPOINT
    children = d.inventory(None)["all"]["children"]
    for group in ("gitlab", "ollama"):
        host = next(iter(children[group]["hosts"].values()))
        assert not any(key.startswith("ai_gateway_") for key in host), group
    assert not any(key.startswith("ai_gateway_") for key in d.inventory(None)["all"]["vars"])
    # Read back from the inventory it wrote.
    path = tmp_path / "inventory.yml"
    path.write_text(d.inventory_text(None), encoding="utf-8")
    assert Deployment.from_inventory(path).inventory(None) == d.inventory(None)


def test_bedrock_without_an_endpoint_names_the_region_only() -> None:
    gateway = _gateway_vars(deployment(bedrock_region="eu-central-1", bedrock_runtime_endpoint=""))
    assert gateway["ai_gateway_aws_region"] == "eu-central-1"
    assert "ai_gateway_bedrock_runtime_endpoint" not in gateway


@pytest.mark.parametrize(
    "changes",
    [
        {},  # older states and Google Cloud: no such outputs
        {"bedrock_region": "", "bedrock_runtime_endpoint": ""},  # bedrock_models empty
        {"bedrock_region": {"value": "", "type": "string"}},
    ],
)
def test_no_bedrock_no_gateway_variables(changes: dict[str, Any]) -> None:
    d = deployment(**changes)
    assert d.bedrock is None
    assert d.inventory(SSH_CONFIG) == CONTRACT


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"bedrock_region": "us-east-1\nAWS_SECRET_ACCESS_KEY=x"}, "bedrock_region"),
        (
            {"bedrock_region": "us-east-1", "bedrock_runtime_endpoint": "http://x.example.com"},
            "bedrock_runtime_endpoint",
        ),
        (
            {"bedrock_region": "us-east-1", "bedrock_runtime_endpoint": "https://x.example.com/\n"},
            "bedrock_runtime_endpoint",
        ),
    ],
)
def test_bad_bedrock_outputs_are_refused_and_named(changes: dict[str, Any], name: str) -> None:
    with pytest.raises(DuoctlError) as err:
        deployment(**changes)
    assert f"{name}:" in str(err.value)


@pytest.mark.parametrize(
    ("backup", "expected"),
    [
        (
            {
                "provider": "aws",
                "bucket": "duo-backups-123456789012-us-east-1",
                "region": "us-east-1",
            },
            {"gitlab_backup_aws_region": "us-east-1"},
        ),
        (
            {"provider": "google", "bucket": "my-project-1-duo-backups", "project": "my-project-1"},
            {"gitlab_backup_google_project": "my-project-1"},
        ),
    ],
)
def test_the_backup_bucket_becomes_the_gitlab_hosts_variables(
    tmp_path: Path, backup: dict[str, str], expected: dict[str, str]
) -> None:
    d = deployment(backup=backup)
    children = d.inventory(None)["all"]["children"]
    gitlab = next(iter(children["gitlab"]["hosts"].values()))
    wanted = {
        "gitlab_backup_provider": backup["provider"],
        "gitlab_backup_bucket": backup["bucket"],
    }
    assert {k: v for k, v in gitlab.items() if k.startswith("gitlab_backup_")} == {
        **wanted,
        **expected,
    }
    for group in ("ai_gateway", "ollama"):
        host = next(iter(children[group]["hosts"].values()))
        assert not any(key.startswith("gitlab_backup_") for key in host), group
    path = tmp_path / "inventory.yml"
    path.write_text(d.inventory_text(None), encoding="utf-8")
    assert Deployment.from_inventory(path).backups == d.backups


@pytest.mark.parametrize(
    "backup",
    [
        {"provider": "aws", "bucket": "Not_A_Bucket", "region": "us-east-1"},
        {"provider": "aws", "bucket": "duo-backups"},  # no region
        {"provider": "google", "bucket": "duo-backups"},  # no project
        {"provider": "azure", "bucket": "duo-backups"},
    ],
)
def test_a_bad_backup_output_is_refused_and_named(backup: dict[str, str]) -> None:
    with pytest.raises(DuoctlError) as err:
        deployment(backup=backup)
    assert "backup:" in str(err.value)
