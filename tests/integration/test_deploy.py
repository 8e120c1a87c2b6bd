"""`duoctl deploy` / `duoctl destroy` end to end with every step aimed at a local target.

- preflight: the real AWS checks against the moto server double;
- terraform: the real python-terraform calls on a provider-free configuration that declares the
  variables of terraform/aws and returns outputs of the same names, copied into the deployment's
  own Terraform working directory (the real apply against moto is tested with the Terraform
  configuration itself);
- inventory: the real duoctl.inventory (inventory.yml and ssh_config in the deployment folder);
- wait_ssh / wait_dns: a recording probe and a resolver table;
- site / duo: a stand-in ansible-playbook executable that records its arguments and writes the
  secrets files the playbooks write;
- verify: a recording step (duoctl verify is tested on its own).
"""

from __future__ import annotations

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
from duoctl import cli, deploy, serving, verify
from duoctl.deployment import Host
from duoctl.folder import DeploymentFolder
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
output "instances" {
  value = { gitlab = "i-0aaa", ai_gateway = "i-0bbb", ollama = "i-0ccc" }
}
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
            *extra,
        ]

    def folder(self, name: str = "aws") -> Path:
        return self.tmp / ".deploy" / name

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
    (tf_dir / "versions.tf").write_text("terraform {}\n")
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


def local_steps(
    env: Env, probes: list[str], fail: int = 0, known_hosts: set[Path] | None = None
) -> list[Recorder]:
    def probe(host: Host, jump: Host | None, key: str | None, timeout: float, known: Path) -> None:
        via = (jump.ssh_user, jump.address, jump.ssh_port) if jump else None
        probes.append(f"{host.ssh_user}@{host.address} via {via}")
        if known_hosts is not None:
            known_hosts.add(known)

    dns = {f"gitlab.{PUBLIC_IP}.sslip.io": {PUBLIC_IP}}
    steps = [
        deploy.PreflightStep(checks=aws_checks),
        deploy.TerraformStep(source=env.tf_dir),
        deploy.InventoryStep(),
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
    args = cli.deployment_options_for(env.argv(*extra))
    out = io.StringIO()
    code = deploy.deploy_main(args, detect=no_detection, steps=list(steps), progress_stream=out)
    return code, out.getvalue()


def test_deploy_end_to_end_with_a_failure_at_every_step(env: Env):
    probes: list[str] = []
    known_hosts: set[Path] = set()
    steps = local_steps(env, probes, fail=1, known_hosts=known_hosts)
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
    target_dir = env.folder()
    inventory = yaml.safe_load((target_dir / "inventory.yml").read_text())
    domain = f"gitlab.{PUBLIC_IP}.sslip.io"
    assert inventory["all"]["vars"]["gitlab_domain"] == domain
    assert f"GitLab:        https://{domain}" in out
    # Every SSH connection of Ansible reads the deployment's ssh_config and known_hosts.
    assert inventory["all"]["vars"]["ansible_ssh_common_args"] == (
        f"-F {target_dir / 'ssh_config'}"
    )
    ssh_config = (target_dir / "ssh_config").read_text()
    assert f'UserKnownHostsFile "{target_dir / "known_hosts"}"' in ssh_config
    assert "ProxyJump gitlab-vm" in ssh_config
    # Terraform ran in the deployment's own working directory; the module source stays clean.
    tf_state = json.loads((target_dir / "terraform" / "terraform.tfstate").read_text())
    assert tf_state["outputs"]["seen_admin_cidrs"]["value"] == ["198.51.100.7/32"]
    assert (target_dir / "terraform" / "backend.tf").is_file()
    assert sorted(p.name for p in env.tf_dir.iterdir()) == ["main.tf", "versions.tf"]
    # The deployment the outputs describe is kept in the state for the later steps.
    recorded = json.loads((target_dir / "state.json").read_text())["data"]["deployment"]
    assert [h["instance"] for h in recorded["hosts"]] == ["i-0aaa", "i-0bbb", "i-0ccc"]
    assert f"root password: {target_dir / 'secrets' / 'gitlab_root_password'}" in out
    assert "Step times:" in out and "  verify " in out
    assert "`duoctl destroy aws` removes everything" in out
    # SSH: GitLab directly, the two private VMs through it.
    assert probes[0] == "ubuntu@203.0.113.10 via None"
    assert "ubuntu@10.0.2.10 via ('ubuntu', '203.0.113.10', 22)" in probes
    assert known_hosts == {target_dir / "known_hosts"}
    # The playbooks ran against the written inventory with the deploy's secrets directory.
    site, duo = env.playbook_runs()
    assert site[0].endswith("ansible/playbooks/site.yml") and duo[0].endswith("duo.yml")
    assert site[site.index("-i") + 1] == str((target_dir / "inventory.yml").resolve())
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


def test_settings_file_is_reused_and_strict(env: Env, capsys: pytest.CaptureFixture[str]):
    steps = local_steps(env, [])
    assert run_deploy(env, steps)[0] == 0
    args = cli.deployment_options_for(
        [
            "deploy",
            "aws",
            "--deploy-dir",
            str(env.tmp / ".deploy"),
        ]
    )
    out = io.StringIO()
    # No region, key or CIDR given: all come from .deploy/aws/settings.yml.
    assert deploy.deploy_main(args, no_detection, list(steps), out) == 0
    settings = env.folder() / "settings.yml"
    settings.write_text(settings.read_text() + "colour: blue\n")
    capsys.readouterr()
    assert deploy.deploy_main(args, no_detection, list(steps), io.StringIO()) == 2
    assert "--colour" in capsys.readouterr().err


def test_undetectable_ip_asks_for_admin_cidr(env: Env, capsys: pytest.CaptureFixture[str]):
    argv = env.argv()
    del argv[argv.index("--admin-cidr") : argv.index("--admin-cidr") + 2]

    def offline() -> str:
        raise OSError("network unreachable")

    args = cli.deployment_options_for(argv)
    assert deploy.deploy_main(args, offline, [], io.StringIO()) == 2
    assert "--admin-cidr 198.51.100.7/32" in capsys.readouterr().err
    args = cli.deployment_options_for(argv)
    assert deploy.deploy_main(args, lambda: "192.0.2.44", [], io.StringIO()) == 0
    saved = (env.folder() / "settings.yml").read_text()
    assert "admin_cidr: 192.0.2.44/32" in saved
    assert "192.0.2.44/32 (detected" in capsys.readouterr().err


def destroy_args(env: Env, *extra: str) -> deploy.DeploymentOptions:
    return cli.deployment_options_for(
        ["destroy", "aws", "--deploy-dir", str(env.tmp / ".deploy"), *extra]
    )


def test_destroy_asks_for_confirmation(env: Env, capsys: pytest.CaptureFixture[str]):
    assert run_deploy(env, local_steps(env, []))[0] == 0
    target_dir = env.folder()
    tf_state = target_dir / "terraform" / "terraform.tfstate"
    assert (target_dir / "state.json").exists()
    (target_dir / "known_hosts").write_text("[203.0.113.10]:22 ssh-ed25519 AAAA\n")
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
    assert json.loads(tf_state.read_text())["outputs"]["gitlab_public_ip"]["value"] == PUBLIC_IP

    code = deploy.destroy_main(destroy_args(env), no_detection, say("aws"), env.tf_dir)
    assert code == 0, capsys.readouterr()
    assert not (target_dir / "state.json").exists()
    assert not (target_dir / "secrets").exists()
    assert not (target_dir / "known_hosts").exists()
    assert (target_dir / "settings.yml").exists()
    assert json.loads(tf_state.read_text())["outputs"] == {}
    assert not (env.tf_dir / "terraform.tfstate").exists()


def test_destroy_yes_does_not_ask(env: Env):
    assert run_deploy(env, local_steps(env, []))[0] == 0

    def never(prompt: str) -> str:
        raise AssertionError("--yes must not ask")

    out = io.StringIO()
    args = destroy_args(env, "--yes")
    assert deploy.destroy_main(args, no_detection, never, env.tf_dir, out) == 0
    assert "terraform destroy (aws, us-east-1) ..." in out.getvalue()
    assert "Destroyed." in out.getvalue() and "settings.yml is kept" in out.getvalue()


def test_real_verify_step_checks_the_deployment_and_a_failure_stops_the_deploy(
    env: Env, monkeypatch: pytest.MonkeyPatch
):
    seen: list[verify.VerifyOptions] = []

    def failing_verify(options: verify.VerifyOptions) -> int:
        seen.append(options)
        options.out("✘ code completion through GitLab: GitLab answered 502")
        return 1

    # verify itself is tested on its own; here: what the step gives it and what it does with
    # the answer (no traffic leaves this machine).
    monkeypatch.setattr(verify, "run", failing_verify)
    steps = local_steps(env, [])
    steps[-1] = Recorder(deploy.VerifyStep())
    code, out = run_deploy(env, steps)
    assert code == 1
    assert "verification failed (exit code 1)" in out
    assert "GitLab answered 502" in out
    assert "it resumes at verify" in out
    assert "Deploy complete" not in out
    (options,) = seen
    folder = env.folder()
    assert options.inventory == folder / "inventory.yml"
    assert options.token_file == folder / "secrets" / "gitlab_admin_token"
    assert options.known_hosts == folder / "known_hosts"


def test_deploy_hosts_needs_an_inventory(env: Env, capsys: pytest.CaptureFixture[str]):
    args = cli.deployment_options_for(["deploy", "hosts", "--deploy-dir", str(env.tmp)])
    assert deploy.deploy_main(args, no_detection, [], io.StringIO()) == 2
    assert "--inventory" in capsys.readouterr().err
    assert os.environ["FAKE_ANSIBLE_RECORD"]


def test_two_named_deployments_never_touch_each_other(env: Env):
    runs: dict[str, tuple[list[Recorder], list[str]]] = {}
    for name, cidr in (("a", "198.51.100.7/32"), ("b", "198.51.100.64/28")):
        probes: list[str] = []
        steps = local_steps(env, probes)
        code, out = run_deploy(env, steps, "--name", name, "--admin-cidr", cidr)
        assert code == 0, out
        assert f"`duoctl destroy aws --name {name}` removes everything" in out
        runs[name] = (steps, probes)
    a, b = env.folder("a"), env.folder("b")
    assert not env.folder().exists()
    for folder, cidr in ((a, "198.51.100.7/32"), (b, "198.51.100.64/28")):
        # Its own settings, state, inventory, ssh_config and Terraform working directory.
        assert yaml.safe_load((folder / "settings.yml").read_text())["admin_cidr"] == cidr
        state = json.loads((folder / "state.json").read_text())
        assert state["inputs"]["admin_cidr"] == cidr
        tf_state = json.loads((folder / "terraform" / "terraform.tfstate").read_text())
        assert tf_state["outputs"]["seen_admin_cidrs"]["value"] == [cidr]
        inventory = yaml.safe_load((folder / "inventory.yml").read_text())
        assert inventory["all"]["vars"]["ansible_ssh_common_args"] == f"-F {folder / 'ssh_config'}"
        ssh_config = (folder / "ssh_config").read_text()
        assert f'UserKnownHostsFile "{folder / "known_hosts"}"' in ssh_config
        assert str(folder.parent / ("b" if folder == a else "a")) not in ssh_config
        assert "PLAY RECAP" in (folder / "deploy.log").read_text()
    assert "deploy aws --name b" not in (a / "deploy.log").read_text()
    # Each deployment's playbooks ran on its own inventory with its own secrets.
    first, _, second, _ = env.playbook_runs()
    for run, folder in ((first, a), (second, b)):
        assert run[run.index("-i") + 1] == str((folder / "inventory.yml").resolve())
        extra = json.loads(run[run.index("-e") + 1])
        assert extra["duo_secrets_dir"] == str((folder / "secrets").resolve())
    # Re-running a finds its own record (b's run changed nothing of it).
    code, out = run_deploy(env, runs["a"][0], "--name", "a", "--admin-cidr", "198.51.100.7/32")
    assert code == 0 and out.count("done in an earlier run") == len(runs["a"][0])
    # Destroying a leaves b's state, secrets and Terraform state as they were.
    b_files = {p: p.read_bytes() for p in b.rglob("*") if p.is_file() and "/." not in str(p)}
    args = destroy_args(env, "--name", "a", "--yes")
    assert deploy.destroy_main(args, no_detection, input, env.tf_dir, io.StringIO()) == 0
    assert not (a / "state.json").exists()
    tf_a = json.loads((a / "terraform" / "terraform.tfstate").read_text())
    assert tf_a["outputs"] == {}
    after = {p: p.read_bytes() for p in b.rglob("*") if p.is_file() and "/." not in str(p)}
    assert after == b_files


def test_a_second_run_of_the_same_deployment_refuses_naming_the_first(
    env: Env, capsys: pytest.CaptureFixture[str]
):
    folder = DeploymentFolder.of(env.tmp / ".deploy", "aws", env.tmp)
    steps = local_steps(env, [])
    with folder.lock():
        code, out = run_deploy(env, steps)
        assert code == 2, out
        err = capsys.readouterr().err
        assert f"another duoctl run (PID {os.getpid()}) is using the deployment aws" in err
        assert str(folder.log_file) in err
        # It refused before saving anything or running any step.
        assert not folder.settings_file.exists() and not folder.state_file.exists()
        assert [s.runs for s in steps] == [0] * len(steps)
        args = destroy_args(env, "--yes")
        # A deployment to destroy, its settings saved by the run holding the lock.
        folder.settings_file.write_text(f"region: us-east-1\nssh_public_key_file: {env.key}\n")
        assert deploy.destroy_main(args, no_detection, input, env.tf_dir, io.StringIO()) == 2
        assert f"PID {os.getpid()}" in capsys.readouterr().err
        folder.settings_file.unlink()
    # Once the first run is over, the lock is free.
    assert run_deploy(env, steps)[0] == 0


PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("private key as --ssh-key", "--ssh-key"),
        ("missing --license-file", "--license-file"),
        ("empty --admin-cidr", "--admin-cidr given empty"),
        ("template in --domain", "--domain"),
        ("whole internet as --admin-cidr", "--admin-cidr"),
        ("--inventory for a cloud", "--inventory is for deploy hosts"),
        ("--deploy-dir inside a file", "cannot write the deployment folder"),
    ],
)
def test_bad_input_exits_2_naming_it_and_writes_nothing(
    env: Env, capsys: pytest.CaptureFixture[str], case: str, named: str
):
    deploy_dir = env.tmp / ".deploy"
    options: list[str] = []
    if case == "private key as --ssh-key":
        env.key.write_text(PRIVATE_KEY)
    elif case == "missing --license-file":
        options = ["--license-file", str(env.tmp / "no.gitlab-license")]
    elif case == "empty --admin-cidr":
        options = ["--admin-cidr", ""]
    elif case == "template in --domain":
        options = ["--domain", "{{ lookup('pipe', 'id') }}.example.com"]
    elif case == "whole internet as --admin-cidr":
        options = ["--admin-cidr", "0.0.0.0/0"]
    elif case == "--inventory for a cloud":
        options = ["--inventory", str(env.tmp / "aws.yml")]
    else:
        blocker = env.tmp / "a-file"
        blocker.write_text("not a folder\n")
        deploy_dir = blocker / "deploy"
        options = ["--deploy-dir", str(deploy_dir)]
    steps = local_steps(env, [])
    code, out = run_deploy(env, steps, *options)
    err = capsys.readouterr().err
    assert code == 2, (out, err)
    assert f"error: {named}" in err or named in err.split("\nfix:")[0], err
    assert "\nfix: " in err
    assert "PRIVATE KEY" not in err and "b3BlbnNzaC1rZXkt" not in err
    # Nothing was written: no deployment folder, no settings, no step ran.
    assert not deploy_dir.exists()
    assert [s.runs for s in steps] == [0] * len(steps)
    assert out == ""


def test_damaged_settings_file_is_named_and_kept(env: Env, capsys: pytest.CaptureFixture[str]):
    settings = env.folder() / "settings.yml"
    settings.parent.mkdir(parents=True)
    settings.write_text("region: [us-east-1\n")
    steps = local_steps(env, [])
    code, out = run_deploy(env, steps)
    assert code == 2 and out == ""
    assert f"error: {settings} is not valid YAML" in capsys.readouterr().err
    assert settings.read_text() == "region: [us-east-1\n"
    assert not (env.folder() / "state.json").exists()
    assert [s.runs for s in steps] == [0] * len(steps)
    args = destroy_args(env, "--yes")
    assert deploy.destroy_main(args, no_detection, input, env.tf_dir, io.StringIO()) == 2
    assert f"{settings} is not valid YAML" in capsys.readouterr().err


def test_destroy_names_a_damaged_state_file_and_destroys_nothing(
    env: Env, capsys: pytest.CaptureFixture[str]
):
    assert run_deploy(env, local_steps(env, []))[0] == 0
    state = env.folder() / "state.json"
    state.write_text('{"version": 1, "data": ')
    out = io.StringIO()
    code = deploy.destroy_main(destroy_args(env, "--yes"), no_detection, input, env.tf_dir, out)
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: the deploy state {state} is damaged" in err
    assert "fix: delete it" in err
    assert "terraform destroy" not in out.getvalue()
    tf_state = json.loads((env.folder() / "terraform" / "terraform.tfstate").read_text())
    assert tf_state["outputs"]["gitlab_public_ip"]["value"] == PUBLIC_IP
    # As the fix says: without the state file, destroy works from the settings alone.
    state.unlink()
    assert deploy.destroy_main(destroy_args(env, "--yes"), no_detection, input, env.tf_dir) == 0
    tf_state = json.loads((env.folder() / "terraform" / "terraform.tfstate").read_text())
    assert tf_state["outputs"] == {}


def test_destroy_works_after_the_ssh_key_file_is_deleted(env: Env):
    assert run_deploy(env, local_steps(env, []))[0] == 0
    env.key.unlink()
    out = io.StringIO()
    code = deploy.destroy_main(destroy_args(env, "--yes"), no_detection, input, env.tf_dir, out)
    assert code == 0, out.getvalue()
    assert "Destroyed." in out.getvalue()
    tf_state = json.loads((env.folder() / "terraform" / "terraform.tfstate").read_text())
    assert tf_state["outputs"] == {}


def test_verify_refuses_an_unknown_option_without_showing_its_value(
    capsys: pytest.CaptureFixture[str],
):
    for argv in (["verify", "--token", "glpat-x"], ["verify", "--token=glpat-x"]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        assert stopped.value.code == 2
        captured = capsys.readouterr()
        # Not taken for --token-file (no abbreviations), and the value is never echoed.
        assert "unrecognized arguments: --token" in captured.err
        assert "glpat-x" not in captured.err + captured.out


def own_inventory(env: Env, group: str) -> Path:
    """An own-hosts inventory whose model server is in `group` (ollama or vllm)."""
    hosts = {
        "gitlab": {"gitlab-vm": {"ansible_host": "203.0.113.10"}},
        "ai_gateway": {"gateway-vm": {"ansible_host": "10.0.2.10"}},
        group: {"model-vm": {"ansible_host": "10.0.3.10"}},
    }
    inventory = {
        "all": {
            "vars": {"ansible_user": "ubuntu", "gitlab_url": "https://gitlab.example.com"},
            "children": {name: {"hosts": members} for name, members in hosts.items()},
        }
    }
    path = env.tmp / f"{group}-hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


@pytest.mark.parametrize(
    ("group", "extra", "message"),
    [
        ("vllm", [], "deploy hosts needs --model-preset"),
        ("ollama", ["--model-preset", "mistral-small-24b-w4a16-l4"], "is for a model server"),
        ("vllm", ["--model-preset", "no-such-preset"], "no serving preset 'no-such-preset'"),
    ],
)
def test_deploy_hosts_checks_the_model_preset_before_anything_runs(
    env: Env, capsys: pytest.CaptureFixture[str], group: str, extra: list[str], message: str
) -> None:
    argv = ["deploy", "hosts", "--deploy-dir", str(env.tmp)]
    argv += ["--inventory", str(own_inventory(env, group)), *extra]
    args = cli.deployment_options_for(argv)
    assert deploy.deploy_main(args, no_detection, None, io.StringIO()) == 2
    assert message in capsys.readouterr().err
    assert not (env.tmp / "hosts" / "state.json").exists()


def test_deploy_hosts_with_vllm_passes_the_presets_role_vars_and_model() -> None:
    preset = serving.preset(serving.DEFAULT_PRESET)
    steps = deploy.hosts_steps(None, preset)
    [site] = (s for s in steps if isinstance(s, deploy.PlaybookStep))
    assert site.extra_vars == serving.vllm_role_vars(preset)
    [duo] = (s for s in steps if isinstance(s, deploy.DuoStep))
    assert duo.preset is preset
