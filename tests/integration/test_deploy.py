"""`duoctl deploy` / `duoctl destroy` end to end with every step aimed at a local target.

- preflight: the real AWS checks against the moto server double;
- terraform: the real python-terraform calls on a provider-free configuration that declares the
  variables of terraform/aws and returns outputs of the same names (the real apply against moto is
  tested with the Terraform configuration itself);
- inventory: the real duoctl.inventory;
- wait_ssh / wait_dns: a recording probe and a resolver table;
- site / duo: a stand-in ansible-playbook executable that records its arguments and writes the
  secrets files the playbooks write;
- verify: a recording step (duoctl verify is tested on its own).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl import cli, deploy
from duoctl.pipeline import Context, StepFailed
from duoctl.preflight.aws import run_checks as aws_checks

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, MotoEndpoint, moto_server

pytestmark = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform is not on PATH: deploy tests need it"
)

PUBLIC_IP = "203.0.113.10"
ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
)
OUTPUTS_ONLY_TF = """
variable "region" { type = string }
variable "admin_cidrs" { type = list(string) }
variable "ssh_public_key" { type = string }
variable "gitlab_domain" { type = string }
variable "prefix" { type = string }
variable "availability_zone" {
  type    = string
  default = null
}
variable "route53_zone_id" {
  type    = string
  default = null
}
output "cloud" { value = "aws" }
output "gitlab_public_ip" { value = "@IP@" }
output "gitlab_private_ip" { value = "10.0.1.10" }
output "gateway_private_ip" { value = "10.0.2.10" }
output "ollama_private_ip" { value = "10.0.2.11" }
output "gitlab_domain" { value = var.gitlab_domain }
output "gitlab_url" { value = "https://${var.gitlab_domain}" }
output "ssh_user" { value = "ubuntu" }
output "dns_record_needed" { value = "${var.gitlab_domain}. 300 IN A @IP@" }
output "seen_admin_cidrs" { value = var.admin_cidrs }
""".replace("@IP@", PUBLIC_IP)

FAKE_ANSIBLE = """#!%(python)s
# Stand-in for ansible-playbook: records its arguments, writes the secrets the playbooks write.
import json, os, pathlib, sys
args = sys.argv[1:]
extra = json.loads(args[args.index("-e") + 1])
secrets = pathlib.Path(extra["duo_secrets_dir"])
for name in ("gitlab_root_password", "gitlab_admin_token"):
    path = secrets / name
    if not path.exists():
        path.write_text("s3cret\\n")
        path.chmod(0o600)
with open(os.environ["FAKE_ANSIBLE_RECORD"], "a") as record:
    record.write(json.dumps(args) + "\\n")
print("PLAY RECAP *********")
print("gitlab-vm : ok=12 changed=0 unreachable=0 failed=0")
"""


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEndpoint]:
    with moto_server(gpu_vcpu_quota=8) as endpoint:
        yield endpoint


@dataclass
class Env:
    tmp: Path
    key: Path
    tf_dir: Path
    ansible: Path
    record: Path

    def argv(self, *extra: str) -> list[str]:
        return [
            "deploy",
            "aws",
            "--region",
            "us-east-1",
            "--ssh-key",
            str(self.key),
            "--admin-cidr",
            "198.51.100.7/32",
            "--deploy-dir",
            str(self.tmp / ".deploy"),
            "--inventory",
            str(self.tmp / "inventory" / "aws.yml"),
            *extra,
        ]

    def playbook_runs(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture
def env(moto: MotoEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    for name, value in AWS_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    key = tmp_path / "id_ed25519.pub"
    key.write_text(ED25519_KEY + "\n")
    tf_dir = tmp_path / "tf"
    tf_dir.mkdir()
    (tf_dir / "main.tf").write_text(OUTPUTS_ONLY_TF)
    ansible = tmp_path / "ansible-playbook"
    ansible.write_text(FAKE_ANSIBLE % {"python": sys.executable})
    ansible.chmod(0o755)
    record = tmp_path / "ansible-runs.jsonl"
    monkeypatch.setenv("FAKE_ANSIBLE_RECORD", str(record))
    return Env(tmp_path, key, tf_dir, ansible, record)


@dataclass
class Recorder:
    """Counts runs of a wrapped step; fails the first `fail` runs before the step does anything."""

    inner: Any
    fail: int = 0
    runs: int = 0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    def run(self, ctx: Context) -> None:
        if self.fail:
            self.fail -= 1
            raise StepFailed(f"injected failure in {self.name}")
        self.runs += 1
        self.inner.run(ctx)


@dataclass
class FakeVerify:
    name: str = "verify"

    def run(self, ctx: Context) -> None:
        ctx.progress.output("verify: 12 checks passed")


def local_steps(env: Env, probes: list[str], fail: int = 0) -> list[Recorder]:
    def probe(target: deploy.SshTarget, key: str | None, timeout: float) -> None:
        probes.append(f"{target.user}@{target.host} via {target.jump}")

    dns = {f"gitlab.{PUBLIC_IP}.sslip.io": {PUBLIC_IP}}
    steps = [
        deploy.PreflightStep(checks=aws_checks),
        deploy.TerraformStep(workdir=env.tf_dir),
        deploy.InventoryStep(workdir=env.tf_dir),
        deploy.WaitSshStep(probe=probe, interval=0.01),
        deploy.WaitDnsStep(resolver=lambda name: dns.get(name, set()), interval=0.01),
        deploy.PlaybookStep("site", "ansible/playbooks/site.yml", executable=str(env.ansible)),
        deploy.PlaybookStep("duo", "ansible/playbooks/duo.yml", executable=str(env.ansible)),
        FakeVerify(),
    ]
    return [Recorder(step, fail=fail) for step in steps]


def no_detection() -> str:
    raise AssertionError("the public IP must not be detected when the admin CIDR is known")


def run_deploy(env: Env, steps: list[Recorder], *extra: str) -> tuple[int, str]:
    args = cli.build_parser().parse_args(env.argv(*extra))
    out = io.StringIO()
    code = deploy.deploy_main(args, detect=no_detection, steps=list(steps), progress_stream=out)
    return code, out.getvalue()


def test_deploy_end_to_end_with_a_failure_at_every_step(env: Env):
    probes: list[str] = []
    steps = local_steps(env, probes, fail=1)
    outputs = []
    for attempt in range(len(steps)):
        code, out = run_deploy(env, steps)
        outputs.append(out)
        assert code == 1, out
        assert f"injected failure in {steps[attempt].name}" in out
        assert f"it resumes at {steps[attempt].name}" in out
    code, out = run_deploy(env, steps)
    assert code == 0, out
    # Each step did its work exactly once over the nine runs.
    assert [s.runs for s in steps] == [1] * len(steps)
    assert out.count("done in an earlier run") == len(steps) - 1

    # Terraform saw the settings; the wildcard-DNS name replaced the provisional one.
    inventory = yaml.safe_load((env.tmp / "inventory" / "aws.yml").read_text())
    domain = f"gitlab.{PUBLIC_IP}.sslip.io"
    assert inventory["all"]["vars"]["gitlab_domain"] == domain
    assert f"GitLab:        https://{domain}" in out
    target_dir = env.tmp / ".deploy" / "aws"
    assert f"root password: {target_dir / 'secrets' / 'gitlab_root_password'}" in out
    assert "Step times:" in out and "  verify " in out
    assert "`duoctl destroy aws` removes everything" in out
    # SSH: GitLab directly, the two private VMs through it.
    assert probes[0] == "ubuntu@203.0.113.10 via None"
    assert "ubuntu@10.0.2.10 via ('ubuntu', '203.0.113.10', 22)" in probes
    # The playbooks ran against the written inventory with the deploy's secrets directory.
    site, duo = env.playbook_runs()
    assert site[0].endswith("ansible/playbooks/site.yml") and duo[0].endswith("duo.yml")
    assert site[site.index("-i") + 1] == str((env.tmp / "inventory" / "aws.yml").resolve())
    extra = json.loads(site[site.index("-e") + 1])
    assert extra["duo_secrets_dir"] == str((target_dir / "secrets").resolve())
    assert oct((target_dir / "secrets").stat().st_mode & 0o777) == "0o700"
    log = (target_dir / "deploy.log").read_text()
    assert "PLAY RECAP" in log and "gpu quota L-DB2E81BA" in log
    saved = yaml.safe_load((target_dir / "settings.yml").read_text())
    assert saved["region"] == "us-east-1" and saved["admin_cidr"] == "198.51.100.7/32"


def test_preflight_failure_stops_before_terraform(env: Env, moto: MotoEndpoint):
    moto.set_gpu_vcpu_quota(0)
    try:
        steps = local_steps(env, [])
        code, out = run_deploy(env, steps)
    finally:
        moto.set_gpu_vcpu_quota(8)
    assert code == 1
    assert "--quota-code L-DB2E81BA --desired-value 4 --region us-east-1" in out
    assert [s.runs for s in steps][:2] == [1, 0]


def test_from_and_changed_settings(env: Env):
    steps = local_steps(env, [])
    assert run_deploy(env, steps)[0] == 0
    code, out = run_deploy(env, steps, "--from", "site")
    assert code == 0
    assert [s.runs for s in steps] == [1, 1, 1, 1, 1, 2, 2, 2]
    code, out = run_deploy(env, steps, "--admin-cidr", "198.51.100.0/28")
    assert code == 0
    assert "admin_cidr: '198.51.100.7/32' -> '198.51.100.0/28'" in out
    assert [s.runs for s in steps] == [2, 2, 2, 2, 2, 3, 3, 3]
    assert run_deploy(env, steps, "--from", "nonsense")[0] == 2


def test_settings_file_is_reused_and_strict(env: Env):
    steps = local_steps(env, [])
    assert run_deploy(env, steps)[0] == 0
    args = cli.build_parser().parse_args(
        [
            "deploy",
            "aws",
            "--deploy-dir",
            str(env.tmp / ".deploy"),
            "--inventory",
            str(env.tmp / "inventory" / "aws.yml"),
        ]
    )
    out = io.StringIO()
    # No region, key or CIDR given: all come from .deploy/aws/settings.yml.
    assert deploy.deploy_main(args, no_detection, list(steps), out) == 0
    settings = env.tmp / ".deploy" / "aws" / "settings.yml"
    settings.write_text(settings.read_text() + "colour: blue\n")
    assert deploy.deploy_main(args, no_detection, list(steps), io.StringIO()) == 2


def test_undetectable_ip_asks_for_admin_cidr(env: Env, capsys: pytest.CaptureFixture[str]):
    argv = env.argv()
    del argv[argv.index("--admin-cidr") : argv.index("--admin-cidr") + 2]

    def offline() -> str:
        raise OSError("network unreachable")

    args = cli.build_parser().parse_args(argv)
    assert deploy.deploy_main(args, offline, [], io.StringIO()) == 2
    assert "--admin-cidr 198.51.100.7/32" in capsys.readouterr().err
    args = cli.build_parser().parse_args(argv)
    assert deploy.deploy_main(args, lambda: "192.0.2.44", [], io.StringIO()) == 0
    saved = (env.tmp / ".deploy" / "aws" / "settings.yml").read_text()
    assert "admin_cidr: 192.0.2.44/32" in saved
    assert "192.0.2.44/32 (detected" in capsys.readouterr().err


def destroy_args(env: Env, *extra: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(
        ["destroy", "aws", "--deploy-dir", str(env.tmp / ".deploy"), *extra]
    )


def test_destroy_asks_for_confirmation(env: Env, capsys: pytest.CaptureFixture[str]):
    assert run_deploy(env, local_steps(env, []))[0] == 0
    target_dir = env.tmp / ".deploy" / "aws"
    assert (target_dir / "state.json").exists()
    prompts: list[str] = []

    def say(answer: str) -> Any:
        def confirm(prompt: str) -> str:
            prompts.append(prompt)
            return answer

        return confirm

    code = deploy.destroy_main(destroy_args(env), no_detection, say("no"), env.tf_dir)
    assert code == 2
    assert "Type 'aws' to confirm" in prompts[0] and "us-east-1" in prompts[0]
    assert "nothing destroyed" in capsys.readouterr().out
    assert (target_dir / "state.json").exists()
    assert (env.tf_dir / "terraform.tfstate").read_text().count('"outputs"') == 1

    code = deploy.destroy_main(destroy_args(env), no_detection, say("aws"), env.tf_dir)
    assert code == 0, capsys.readouterr()
    assert not (target_dir / "state.json").exists()
    assert not (target_dir / "secrets").exists()
    assert (target_dir / "settings.yml").exists()
    state = json.loads((env.tf_dir / "terraform.tfstate").read_text())
    assert state["outputs"] == {}


def test_destroy_yes_does_not_ask(env: Env):
    assert run_deploy(env, local_steps(env, []))[0] == 0

    def never(prompt: str) -> str:
        raise AssertionError("--yes must not ask")

    out = io.StringIO()
    args = destroy_args(env, "--yes")
    assert deploy.destroy_main(args, no_detection, never, env.tf_dir, out) == 0
    assert "terraform destroy (aws, us-east-1) ..." in out.getvalue()
    assert "Destroyed." in out.getvalue() and "settings.yml is kept" in out.getvalue()


def test_real_verify_step_says_it_is_missing(env: Env):
    steps = local_steps(env, [])
    steps[-1] = Recorder(deploy.VerifyStep(module="duoctl.no_such_verify_module"))
    code, out = run_deploy(env, steps)
    assert code == 1
    assert "verify is not available in this version of duoctl" in out
    assert "Deploy complete" not in out


def test_deploy_hosts_needs_an_inventory(env: Env, capsys: pytest.CaptureFixture[str]):
    args = cli.build_parser().parse_args(["deploy", "hosts", "--deploy-dir", str(env.tmp)])
    assert deploy.deploy_main(args, no_detection, [], io.StringIO()) == 2
    assert "--inventory" in capsys.readouterr().err
    assert os.environ["FAKE_ANSIBLE_RECORD"]
