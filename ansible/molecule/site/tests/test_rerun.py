"""A second run of site.yml keeps the gateway's JWT signing key, GitLab's admin token and (with
vLLM) the model server's API key; the controller's secrets are private files."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import testinfra

testinfra_hosts = ["ai_gateway"]

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def first_run() -> dict[str, str]:
    return dict(json.loads((EPHEMERAL / "first-run.json").read_text()))


def test_jwt_signing_key_unchanged_by_second_run(host: Any) -> None:
    key = host.file("/etc/ai-gateway/duo_workflow_jwt.key")
    assert key.sha256sum == first_run()["jwt_key"]


def test_gitlab_token_unchanged_by_second_run() -> None:
    token = (EPHEMERAL / "secrets" / "gitlab_admin_token").read_text().rstrip("\n")
    assert hashlib.sha256(token.encode()).hexdigest() == first_run()["gitlab_token"]


def test_vllm_api_key_unchanged_by_second_run(host: Any) -> None:
    if not host.backend.ansible_runner.get_hosts("vllm"):
        pytest.skip("no vllm host in this scenario")
    key = (EPHEMERAL / "secrets" / "vllm_api_key").read_text().rstrip("\n")
    assert hashlib.sha256(key.encode()).hexdigest() == first_run()["vllm_api_key"]


def test_controller_secrets_are_private(host: Any) -> None:
    secrets = EPHEMERAL / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    names = ["gitlab_root_password", "gitlab_admin_token"]
    if host.backend.ansible_runner.get_hosts("vllm"):
        names.append("vllm_api_key")
        assert len((secrets / "vllm_api_key").read_text().strip()) == 48
    for name in names:
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
    assert len((secrets / "gitlab_root_password").read_text().strip()) == 32


def test_root_password_from_controller_reaches_gitlab_rb(host: Any) -> None:
    password = (EPHEMERAL / "secrets" / "gitlab_root_password").read_text().strip()
    name = host.backend.ansible_runner.get_hosts("gitlab")[0]
    gitlab = testinfra.get_host(
        f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )
    rb = gitlab.file("/etc/gitlab/gitlab.rb")
    assert rb.mode == 0o600
    assert f"gitlab_rails['initial_root_password'] = '{password}'" in rb.content_string
