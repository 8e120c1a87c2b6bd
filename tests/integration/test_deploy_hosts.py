"""`duoctl deploy hosts`: wait_ssh for real (paramiko, ProxyJump through the GitLab host) against
loopback SSH servers, then the playbook steps with a stand-in ansible-playbook."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from duoctl import cli, deploy
from duoctl.pipeline import Context

from tests.doubles.ssh_hosts import SshHosts, inventory_for, ssh_hosts

NAMES = ["gitlab-vm", "gateway-vm", "ollama-vm"]
FAKE_ANSIBLE = f"""#!{sys.executable}
# Stand-in for ansible-playbook: records its arguments.
import json, os, sys
with open(os.environ["FAKE_ANSIBLE_RECORD"], "a") as record:
    record.write(json.dumps(sys.argv[1:]) + "\\n")
print("PLAY RECAP: ok")
"""


class PassingVerify:
    name = "verify"

    def run(self, ctx: Context) -> None:
        ctx.progress.output("verified")


@pytest.fixture
def hosts() -> Iterator[SshHosts]:
    with ssh_hosts(NAMES, refuse_first={"ollama-vm": 2}) as running:
        yield running


def test_deploy_hosts_waits_for_ssh_through_the_jump_host(
    hosts: SshHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump(inventory_for(hosts)))
    ansible = tmp_path / "ansible-playbook"
    ansible.write_text(FAKE_ANSIBLE)
    ansible.chmod(0o755)
    monkeypatch.setenv("FAKE_ANSIBLE_RECORD", str(tmp_path / "runs.jsonl"))
    steps = [
        deploy.WaitSshStep(key_file=str(hosts.key_file), interval=0.1, timeout=30),
        deploy.PlaybookStep("site", "ansible/playbooks/site.yml", executable=str(ansible)),
        deploy.PlaybookStep("duo", "ansible/playbooks/duo.yml", executable=str(ansible)),
        PassingVerify(),
    ]
    argv = ["deploy", "hosts", "--inventory", str(inventory), "--deploy-dir", str(tmp_path)]
    out = io.StringIO()
    code = deploy.deploy_main(cli.deployment_options_for(argv), steps=steps, progress_stream=out)
    assert code == 0, out.getvalue()
    gitlab, gateway, ollama = (hosts[n] for n in NAMES)
    # The private hosts were reached through the GitLab host, which forwarded to them.
    assert ("127.0.0.1", gateway.port) in gitlab.forwards
    assert ("127.0.0.1", ollama.port) in gitlab.forwards
    # Every host was asked to wait for cloud-init (the first-boot apt lock).
    for host in hosts.values():
        assert any("cloud-init status --wait" in c for c in host.execs), host.name
    assert ollama.connections == 3  # refused twice while "booting", then reached
    folder = tmp_path / "hosts"
    log = (folder / "deploy.log").read_text()
    assert "ssh ok: ollama-vm (127.0.0.1 via gitlab-vm)" in log
    # Each host's key was pinned on first login in the deployment's own known_hosts, which
    # the ssh_config written for Ansible names (the user's inventory is left as it was).
    pinned = (folder / "known_hosts").read_text().splitlines()
    key = gitlab.host_key
    for host in hosts.values():
        assert f"[127.0.0.1]:{host.port} {key.get_name()} {key.get_base64()}" in pinned
    assert oct((folder / "known_hosts").stat().st_mode & 0o777) == "0o600"
    ssh_config = (folder / "ssh_config").read_text()
    assert f'UserKnownHostsFile "{folder / "known_hosts"}"' in ssh_config
    assert f"Port {ollama.port}\n  ProxyJump gitlab-vm" in ssh_config
    assert not (folder / "inventory.yml").exists()
    assert "waiting for ssh: ollama-vm" in log
    assert "GitLab:        https://gitlab.example.com" in out.getvalue()
    runs = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [Path(r[0]).name for r in runs] == ["site.yml", "duo.yml"]
    assert runs[0][runs[0].index("-i") + 1] == str(inventory.resolve())

    # A changed inventory is a changed input: every step runs again.
    inventory.write_text(inventory.read_text().replace("10.0.3.10", "10.0.3.11"))
    out = io.StringIO()
    code = deploy.deploy_main(cli.deployment_options_for(argv), steps=steps, progress_stream=out)
    assert code == 0
    assert "The inputs changed since the last run (digest:" in out.getvalue()


def test_unreachable_host_times_out_naming_it(hosts: SshHosts, tmp_path: Path):
    inventory = inventory_for(hosts)
    inventory["all"]["children"]["ollama"]["hosts"]["ollama-vm"]["ansible_port"] = 1
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    steps = [deploy.WaitSshStep(key_file=str(hosts.key_file), interval=0.05, timeout=0.3)]
    argv = ["deploy", "hosts", "--inventory", str(path), "--deploy-dir", str(tmp_path)]
    out = io.StringIO()
    code = deploy.deploy_main(cli.deployment_options_for(argv), steps=steps, progress_stream=out)
    assert code == 1
    text = out.getvalue()
    assert "no SSH after 0s to ollama-vm:" in text
    assert "admin CIDR" in text
    assert "gateway-vm:" not in text.split("no SSH after")[1]


def test_a_changed_host_key_stops_the_wait_at_once(hosts: SshHosts, tmp_path: Path):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory_for(hosts)))
    steps = [deploy.WaitSshStep(key_file=str(hosts.key_file), interval=0.05, timeout=30)]
    argv = ["deploy", "hosts", "--inventory", str(path), "--deploy-dir", str(tmp_path)]
    out = io.StringIO()
    code = deploy.deploy_main(cli.deployment_options_for(argv), steps=steps, progress_stream=out)
    assert code == 0, out.getvalue()
    known_hosts = tmp_path / "hosts" / "known_hosts"
    gateway = f"[127.0.0.1]:{hosts['gateway-vm'].port}"
    forged = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    lines = [
        f"{gateway} {forged}" if line.startswith(gateway + " ") else line
        for line in known_hosts.read_text().splitlines()
    ]
    known_hosts.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    args = cli.deployment_options_for([*argv, "--from", "wait_ssh"])
    code = deploy.deploy_main(args, steps=steps, progress_stream=out)
    text = out.getvalue()
    assert code == 1, text
    assert f"the SSH host key of {gateway} differs from the key pinned in {known_hosts}" in text
    assert "waiting for ssh" not in text  # refused at once, not retried until the timeout
    assert f"{gateway} {forged}" in known_hosts.read_text()  # the pinned key is kept
