"""Fast checks of the playbooks on the controller (no containers).

- every playbook parses against an inventory of the contract's shape, run from the root;
- duo.yml renders a duoctl configuration that duoctl itself accepts, calls `duoctl
  configure` with the token file (and the CA file for a private CA), and reports changed
  only when duoctl says so; an activation code file reaches the configuration by path,
  and the code itself never shows in Ansible's output;
- the gitlab role's Let's Encrypt DNS pre-check fails with the exact record to create.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from duoctl.config import load_config

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
                "hosts": {"gateway-vm": {"ansible_host": "10.0.2.10", "private_ip": "10.0.2.10"}}
            },
            "ollama": {
                "hosts": {"ollama-vm": {"ansible_host": "10.0.3.10", "private_ip": "10.0.3.10"}}
            },
        },
    }
}

FAKE_DUOCTL = textwrap.dedent(
    """\
    #!/bin/sh
    # Records its arguments; answers like `duoctl configure --json`.
    printf '%s\\n' "$@" > "$(dirname "$0")/duoctl.args"
    if [ -n "$FAKE_ERROR" ]; then
        echo "{\\"error\\": \\"$FAKE_ERROR\\"}"; echo "details on stderr" >&2; exit 1
    fi
    echo "{\\"changed\\": $FAKE_CHANGED, \\"changes\\": []}"
    """
)


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "aws.yml").write_text(yaml.safe_dump(INVENTORY))
    fake = tmp_path / "duoctl"
    fake.write_text(FAKE_DUOCTL)
    fake.chmod(0o755)
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


@pytest.mark.parametrize("playbook", ["site", "gitlab", "ai_gateway", "ollama", "duo"])
def test_playbook_parses_with_contract_inventory(deployment: Path, playbook: str) -> None:
    # As a user runs it: from the repository root, no ansible.cfg picked up.
    inventory = deployment / "inventory" / "aws.yml"
    path = f"ansible/playbooks/{playbook}.yml"
    result = ansible_playbook("-i", str(inventory), path, "--syntax-check", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def run_duo(
    deployment: Path, changed: str, *extra: str, error: str = ""
) -> subprocess.CompletedProcess[str]:
    (deployment / ".deploy" / "secrets").mkdir(parents=True, exist_ok=True)
    token = deployment / ".deploy" / "secrets" / "gitlab_admin_token"
    token.write_text("glpat-test\n")
    token.chmod(0o600)
    return ansible_playbook(
        "-i",
        str(deployment / "inventory" / "aws.yml"),
        "playbooks/duo.yml",
        "-e",
        f"duo_duoctl_executable={deployment / 'duoctl'}",
        *extra,
        env={"FAKE_CHANGED": changed, "FAKE_ERROR": error},
    )


def recap_changed(output: str) -> int:
    line = next(ln for ln in output.splitlines() if ln.startswith("localhost"))
    return int(line.split("changed=")[1].split()[0])


def test_duo_renders_config_duoctl_accepts_and_calls_configure(deployment: Path) -> None:
    result = run_duo(deployment, "true")
    assert result.returncode == 0, result.stdout + result.stderr
    config_file = deployment / ".deploy" / "duo.yml"
    config = load_config(config_file)
    assert config.gitlab.url == "https://gitlab.example.com"
    assert config.gateway.url == "http://10.0.2.10:5052"
    assert config.gateway.agent_platform_url == "10.0.2.10:50052"
    (model,) = config.models
    assert model.identifier == "custom_openai/mistral:instruct"
    assert model.endpoint == "http://10.0.3.10:11434/v1"
    assert set(config.features) == {"code_generations", "code_completions", "duo_chat"}
    assert set(config.features.values()) == {model.name}
    assert config.seats == ["root"]
    assert config.outbound_allowlist == ["10.0.2.10"]
    assert config.license.activation_code_file is None
    args = (deployment / "duoctl.args").read_text().split()
    secrets = deployment / ".deploy" / "secrets"
    assert args == [
        "configure",
        "--config",
        str(config_file),
        "--token-file",
        str(secrets / "gitlab_admin_token"),
        "--json",
    ]


def test_duo_changed_follows_duoctl_and_private_ca_is_passed(deployment: Path) -> None:
    first = run_duo(deployment, "true")
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_duo(deployment, "false", "-e", "gitlab_tls_mode=selfsigned")
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap_changed(second.stdout) == 0  # rendered config unchanged, duoctl: no change
    args = (deployment / "duoctl.args").read_text().split()
    ca_file = deployment / ".deploy" / "secrets" / "gitlab_ca.crt"
    assert args[args.index("--ca-file") + 1] == str(ca_file)


def test_duo_failure_shows_duoctls_error(deployment: Path) -> None:
    result = run_duo(deployment, "false", error="GitLab answered HTTP 502")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "duoctl configure failed (exit 1): GitLab answered HTTP 502 details on stderr" in (
        " ".join(result.stdout.split())
    )


def test_duo_passes_the_activation_code_file(deployment: Path) -> None:
    code = "Abcdefghij0123456789WXYZ"
    code_file = deployment / "activation_code"
    code_file.write_text(code + "\n")
    code_file.chmod(0o600)
    result = run_duo(deployment, "true", "-v", "-e", f"duo_activation_code_file={code_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    config_file = deployment / ".deploy" / "duo.yml"
    config = load_config(config_file)
    assert config.license.activation_code_file == str(code_file)
    activation = config.license.activation_code()
    assert activation is not None and activation.value == code
    args = (deployment / "duoctl.args").read_text().split()
    assert args[:3] == ["configure", "--config", str(config_file)]
    assert code not in result.stdout + result.stderr
    # A re-run without it renders the configuration without a license section.
    again = run_duo(deployment, "false")
    assert again.returncode == 0, again.stdout + again.stderr
    assert load_config(config_file).license.activation_code_file is None


def test_duo_fails_clearly_without_token(deployment: Path) -> None:
    result = ansible_playbook(
        "-i",
        str(deployment / "inventory" / "aws.yml"),
        "playbooks/duo.yml",
        "-e",
        f"duo_duoctl_executable={deployment / 'duoctl'}",
    )
    assert result.returncode != 0
    assert "gitlab_admin_token is missing: run gitlab.yml" in result.stdout


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
