"""A second run of site.yml keeps the gateway's JWT signing key and GitLab's admin token."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

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
