"""No secret of the gitlab role reaches a process list, a log, or verbose Ansible output.

Three witnesses, each first checked to have seen what matters, then searched for every
secret the scenario gives the role (root passwords, license, TLS key) or gets from it (the
admin tokens the controller holds, and the one side_effect.yml made it replace):
- the stand-in's `gitlab-rails runner` records, on each call, the command line and
  environment of itself and of every parent process (what `ps` and /proc show to whoever
  looks while it runs);
- converge runs through sudo, which logs each command it runs to the journal;
- side_effect.yml ran one more converge with -vvv and --diff, in which gitlab-node1 sends its
  held token, gitlab-node2 gets a new one, and the license and TLS key are installed again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from testinfra.utils.ansible_runner import AnsibleRunner

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
RUNNER_TASK = "Create the token unless the one the controller holds is still valid"


def _file_secrets(name: str, path: Path) -> dict[str, str]:
    """A secret file's content; a PEM file's body lines one by one (they wrap in output)."""
    text = path.read_text()
    if "-----BEGIN" not in text:
        return {name: text.strip()}
    body = [line for line in text.splitlines() if len(line) >= 16 and not line.startswith("-----")]
    return {f"{name} line {number}": line for number, line in enumerate(body, 1)}


@pytest.fixture(scope="module")
def secrets(request: pytest.FixtureRequest) -> dict[str, str]:
    runner = AnsibleRunner(str(request.config.option.ansible_inventory))
    found: dict[str, str] = {}
    for name in runner.get_hosts("all"):
        variables = runner.get_variables(name)
        found[f"{name} root password"] = variables["gitlab_root_password"]
        token_file = Path(variables["gitlab_admin_token_controller_file"])
        for path in (token_file, token_file.with_name(f"{token_file.name}.replaced")):
            if path.exists():
                found[f"{name} admin token {path.name}"] = path.read_text().strip()
        for var in ("gitlab_license_file", "gitlab_tls_key_file"):
            if variables.get(var):
                found.update(_file_secrets(f"{name} {var}", Path(variables[var])))
    assert sum("admin token" in label for label in found) == 3  # node1's, node2's old and new
    assert all(len(value) >= 16 for value in found.values()), "a secret too short to search for"
    return found


def leaked(text: str, secrets: dict[str, str]) -> list[str]:
    return [label for label, value in secrets.items() if value in text]


def test_no_secret_in_the_runners_process_tree(host: Any, secrets: dict[str, str]) -> None:
    log = host.file("/var/log/gitlab/standin/runner-processes.jsonl")
    assert log.mode == 0o600
    calls = [json.loads(line) for line in log.content_string.splitlines()]
    # The token script: converge, idempotence, side effect (test_backup.py may add uploads).
    assert sum("admin_token.rb" in " ".join(call["args"]) for call in calls) == 3
    for call in calls:
        commands = [" ".join(process["cmdline"]) for process in call["processes"]]
        # The walk reached the module and the sudo above it, where a secret would show.
        if "admin_token.rb" in " ".join(call["args"]):
            assert any("sudo " in command for command in commands), commands
        for process in call["processes"]:
            text = "\n".join(process["cmdline"] + process["environ"])
            assert not leaked(text, secrets), (process["pid"], process["cmdline"])


def test_no_secret_in_the_journal_or_sudo_log(host: Any, secrets: dict[str, str]) -> None:
    sudo = host.check_output("journalctl --no-pager --output=cat SYSLOG_IDENTIFIER=sudo")
    assert "COMMAND=" in sudo  # sudo ran the role's commands and logged them here
    journal = host.check_output("journalctl --no-pager --output=cat")
    assert not leaked(journal, secrets)
    auth_log = host.file("/var/log/auth.log")
    if auth_log.exists:
        assert not leaked(auth_log.content_string, secrets)


def test_no_secret_in_verbose_converge_output(secrets: dict[str, str]) -> None:
    output = (EPHEMERAL / "converge-vvv.log").read_text()
    # Verbose enough to show every remote command line, sudo included, and the token task.
    assert "BECOME-SUCCESS" in output
    assert output.count(f"TASK [gitlab : {RUNNER_TASK}]") == 1
    assert not leaked(output, secrets)
