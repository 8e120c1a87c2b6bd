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
    code = deploy.deploy_main(cli.build_parser().parse_args(argv), steps=steps, progress_stream=out)
    assert code == 0, out.getvalue()
    gitlab, gateway, ollama = (hosts[n] for n in NAMES)
    # The private hosts were reached through the GitLab host, which forwarded to them.
    assert ("127.0.0.1", gateway.port) in gitlab.forwards
    assert ("127.0.0.1", ollama.port) in gitlab.forwards
    # Every host was asked to wait for cloud-init (the first-boot apt lock).
    for host in hosts.values():
        assert any("cloud-init status --wait" in c for c in host.execs), host.name
    assert ollama.connections == 3  # refused twice while "booting", then reached
    log = (tmp_path / "hosts" / "deploy.log").read_text()
    assert "ssh ok: ollama-vm (127.0.0.1 via 127.0.0.1)" in log
    assert "waiting for ssh: ollama-vm" in log
    assert "GitLab:        https://gitlab.example.com" in out.getvalue()
    runs = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [Path(r[0]).name for r in runs] == ["site.yml", "duo.yml"]

    # A changed inventory is a changed input: every step runs again.
    inventory.write_text(inventory.read_text().replace("10.0.3.10", "10.0.3.11"))
    out = io.StringIO()
    code = deploy.deploy_main(cli.build_parser().parse_args(argv), steps=steps, progress_stream=out)
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
    code = deploy.deploy_main(cli.build_parser().parse_args(argv), steps=steps, progress_stream=out)
    assert code == 1
    text = out.getvalue()
    assert "no SSH after 0s to ollama-vm:" in text
    assert "admin CIDR" in text
    assert "gateway-vm:" not in text.split("no SSH after")[1]
