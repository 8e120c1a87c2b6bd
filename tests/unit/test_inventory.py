"""duoctl.inventory: Terraform outputs -> the inventory shape the playbooks consume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl.inventory import (
    InventoryError,
    load_outputs_file,
    render_inventory,
    write_inventory,
)
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
}

JUMP = "-o ProxyJump=ubuntu@203.0.113.10 -o StrictHostKeyChecking=accept-new"
CONTRACT = {
    "all": {
        "vars": {
            "duo_cloud": "aws",
            "ansible_user": "ubuntu",
            "gitlab_domain": "gitlab.example.com",
            "gitlab_url": "https://gitlab.example.com",
            "gateway_url": "http://10.0.2.10:5052",
            "gateway_agent_platform_address": "10.0.2.10:50052",
            "ollama_endpoint": "http://10.0.3.10:11434/v1",
        },
        "children": {
            "gitlab": {
                "hosts": {
                    "gitlab-vm": {
                        "ansible_host": "203.0.113.10",
                        "private_ip": "10.0.1.10",
                        "public_ip": "203.0.113.10",
                    }
                }
            },
            "ai_gateway": {
                "hosts": {"gateway-vm": {"ansible_host": "10.0.2.10", "private_ip": "10.0.2.10"}},
                "vars": {"ansible_ssh_common_args": JUMP},
            },
            "ollama": {
                "hosts": {"ollama-vm": {"ansible_host": "10.0.3.10", "private_ip": "10.0.3.10"}},
                "vars": {"ansible_ssh_common_args": JUMP},
            },
        },
    }
}


def test_renders_exactly_the_contract() -> None:
    assert yaml.safe_load(render_inventory(OUTPUTS, "aws")) == CONTRACT


def test_accepts_terraform_output_json_items() -> None:
    wrapped = {k: {"value": v, "type": "string", "sensitive": False} for k, v in OUTPUTS.items()}
    assert render_inventory(wrapped, "aws") == render_inventory(OUTPUTS, "aws")


def test_gcp_and_custom_ports() -> None:
    outputs = {**OUTPUTS, "cloud": "gcp", "gateway_port": 6000, "ollama_port": "12000"}
    data = yaml.safe_load(render_inventory(outputs, "gcp"))["all"]["vars"]
    assert data["duo_cloud"] == "gcp"
    assert data["gateway_url"] == "http://10.0.2.10:6000"
    assert data["gateway_agent_platform_address"] == "10.0.2.10:50052"
    assert data["ollama_endpoint"] == "http://10.0.3.10:12000/v1"


def test_rendering_is_lint_clean() -> None:
    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    problems = list(linter.run(render_inventory(OUTPUTS, "aws"), config))
    assert problems == []


def test_write_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "inventory" / "aws.yml"
    assert write_inventory(OUTPUTS, "aws", path) is True
    first = path.read_bytes()
    assert write_inventory(OUTPUTS, "aws", path) is False
    assert path.read_bytes() == first
    assert write_inventory({**OUTPUTS, "ollama_private_ip": "10.0.3.11"}, "aws", path) is True
    assert b"10.0.3.11" in path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["aws.yml"], "no temporary file left"


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    taken = tmp_path / "inventory" / "aws.yml"
    taken.mkdir(parents=True)
    with pytest.raises(InventoryError, match="something else than a file is there"):
        write_inventory(OUTPUTS, "aws", taken)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(InventoryError, match=r"cannot write the inventory .*pass --inventory"):
        write_inventory(OUTPUTS, "aws", blocked / "aws.yml")


@pytest.mark.parametrize("key", ["gitlab_public_ip", "ollama_private_ip", "ssh_user"])
def test_missing_output_names_the_key_and_the_command(key: str) -> None:
    outputs = {k: v for k, v in OUTPUTS.items() if k != key}
    with pytest.raises(InventoryError) as err:
        render_inventory(outputs, "aws")
    message = str(err.value)
    assert key in message
    assert "terraform -chdir=terraform/aws apply" in message
    assert "duoctl inventory aws --from-json FILE" in message


def test_empty_value_counts_as_missing() -> None:
    with pytest.raises(InventoryError, match="gateway_private_ip"):
        render_inventory({**OUTPUTS, "gateway_private_ip": ""}, "gcp")


def test_no_outputs_at_all() -> None:
    with pytest.raises(
        InventoryError, match=r"no terraform outputs yet.*terraform -chdir=terraform/gcp"
    ):
        render_inventory({}, "gcp")


def test_outputs_of_the_other_cloud_are_refused() -> None:
    with pytest.raises(InventoryError, match="come from aws, not gcp"):
        render_inventory(OUTPUTS, "gcp")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("gitlab_public_ip", "not-an-ip", "not an IPv4 address"),
        ("gitlab_domain", "https://gitlab.example.com", "not a host name"),
        ("gitlab_url", "http://gitlab.example.com", "not an https:// URL"),
        ("ssh_user", "root; rm -rf /", "not a user name"),
        ("gateway_port", "port", "not a TCP port"),
        ("ollama_port", 70000, "not a TCP port"),
    ],
)
def test_bad_values_are_refused(key: str, value: object, problem: str) -> None:
    with pytest.raises(InventoryError, match=problem):
        render_inventory({**OUTPUTS, key: value}, "aws")


def test_unknown_cloud() -> None:
    with pytest.raises(InventoryError, match="unknown cloud"):
        render_inventory(OUTPUTS, "azure")


def test_load_outputs_file(tmp_path: Path) -> None:
    saved = tmp_path / "out.json"
    saved.write_text(json.dumps({"ssh_user": {"value": "ubuntu", "type": "string"}}))
    assert load_outputs_file(saved, "aws") == {"ssh_user": "ubuntu"}
    with pytest.raises(InventoryError, match="does not exist"):
        load_outputs_file(tmp_path / "missing.json", "aws")
    saved.write_text("not json")
    with pytest.raises(InventoryError, match="not a terraform output -json document"):
        load_outputs_file(saved, "aws")
    saved.write_text("[]")
    with pytest.raises(InventoryError, match="JSON object"):
        load_outputs_file(saved, "aws")


def test_hosts_example_has_the_same_shape() -> None:
    example = yaml.safe_load((REPO / "inventory" / "hosts.example.yml").read_text())
    rendered = yaml.safe_load(render_inventory(OUTPUTS, "aws"))

    def shape(node: object) -> object:
        return {k: shape(v) for k, v in node.items()} if isinstance(node, dict) else None

    assert shape(example) == shape(rendered)
    assert example["all"]["vars"]["duo_cloud"] == "hosts"
