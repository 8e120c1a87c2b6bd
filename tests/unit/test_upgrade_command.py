"""duoctl upgrade's inputs: which deployment, its own-hosts inventory, the gateway image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from duoctl.errors import DuoctlError
from duoctl.upgrade.command import UpgradeOptions, deployment_folder
from duoctl.upgrade.gateway_tags import default_image

ROOT = Path(__file__).resolve().parents[2]


def test_own_hosts_keep_the_inventory_deploy_hosts_was_given(tmp_path: Path) -> None:
    own = tmp_path / "hosts.yml"
    folder = tmp_path / ".deploy" / "hosts"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(
        json.dumps({"version": 1, "inputs": {"inventory": str(own)}, "steps": {}})
    )
    found = deployment_folder(UpgradeOptions("19.5.0", None, tmp_path / ".deploy"))
    assert found.inventory == own
    assert found.state_file == folder / "upgrade-state.json"
    assert found.admin_token_file == folder / "secrets" / "gitlab_admin_token"


def test_an_unknown_deployment_is_named(tmp_path: Path) -> None:
    (tmp_path / ".deploy").mkdir()
    with pytest.raises(DuoctlError, match="no deployment in"):
        deployment_folder(UpgradeOptions("19.5.0", None, tmp_path / ".deploy"))
    with pytest.raises(DuoctlError, match="there is no deployment lab"):
        deployment_folder(UpgradeOptions("19.5.0", "lab", tmp_path / ".deploy"))


def test_the_gateway_image_is_the_roles_unless_the_inventory_says_otherwise() -> None:
    image = default_image(ROOT)
    assert image.registry == "registry.gitlab.com"
    assert image.repository.endswith("/model-gateway")
    assert image.registry_url == ""
    mirror = default_image(ROOT, {"ai_gateway_image_registry_url": "https://mirror.example"})
    assert mirror.registry_url == "https://mirror.example"
