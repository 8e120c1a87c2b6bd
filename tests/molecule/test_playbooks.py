"""Fast checks of the playbooks on the controller (no containers).

- every playbook parses against an inventory of the contract's shape, run from the root;
- the gitlab role's Let's Encrypt DNS pre-check fails with the exact record to create.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "ansible" / "playbooks"
BIN = Path(sys.executable).parent

INVENTORY = {
    "all": {
        "vars": {
            "duo_cloud": "aws",
            "ansible_user": "ubuntu",
            "gitlab_domain": "gitlab.example.com",
            "gitlab_url": "https://gitlab.example.com",
            "gateway_url": "http://10.0.2.10:5052",
            "gateway_agent_platform_address": "10.0.2.10:50052",
            "model_endpoint": "http://10.0.3.10:11434/v1",
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
                "hosts": {"gateway-vm": {"ansible_host": "10.0.2.10", "private_ip": "10.0.2.10"}}
            },
            "ollama": {
                "hosts": {"ollama-vm": {"ansible_host": "10.0.3.10", "private_ip": "10.0.3.10"}}
            },
        },
    }
}


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "aws.yml").write_text(yaml.safe_dump(INVENTORY))
    return tmp_path


def ansible_playbook(
    *args: str, cwd: Path = ROOT / "ansible", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, ANSIBLE_NOCOLOR="1", **(env or {}))
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("playbook", ["site", "gitlab", "ai_gateway", "ollama", "vllm"])
def test_playbook_parses_with_contract_inventory(deployment: Path, playbook: str) -> None:
    # As a user runs it: from the repository root, no ansible.cfg picked up.
    inventory = deployment / "inventory" / "aws.yml"
    path = f"ansible/playbooks/{playbook}.yml"
    result = ansible_playbook("-i", str(inventory), path, "--syntax-check", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_letsencrypt_precheck_names_the_record_to_create(tmp_path: Path) -> None:
    play = tmp_path / "dns.yml"
    tasks = ROOT / "ansible" / "roles" / "gitlab" / "tasks" / "letsencrypt_dns.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {"gitlab_host": "localhost", "gitlab_public_ip": "203.0.113.10"},
                    "tasks": [{"ansible.builtin.include_tasks": str(tasks)}],
                }
            ]
        )
    )
    result = ansible_playbook(str(play), cwd=tmp_path)
    assert result.returncode != 0
    failure = next(ln for ln in result.stdout.splitlines() if "FAILED!" in ln)
    message = json.loads(failure.split("=> ", 1)[1])["msg"]
    assert "localhost resolves to 127.0.0.1, not to this host's public IP 203.0.113.10" in message
    assert message.endswith("localhost.  300  IN  A  203.0.113.10")
