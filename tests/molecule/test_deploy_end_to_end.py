"""`duoctl deploy aws` from nothing to a verified completion, as far as this machine allows,
over real SSH, with a failure injected at every step, a Ctrl-C at the terraform step and at an
Ansible step, and non-default service ports. Each re-run resumes where the last one stopped.

Every step is the production step class, reaching its component the way production does:
- preflight: the real AWS checks against the moto server double (GPU quota 0 first);
- terraform: the real terraform/aws, copied into the deployment's own working directory
  (.deploy/aws/terraform) and applied to moto (first with a provider mirror that is empty; then
  interrupted with SIGINT while it creates the instances: Terraform stops cleanly, the re-run
  finishes the apply);
- inventory: the real inventory and ssh_config from the deployment (first the inventory's path
  is taken by a folder);
- wait_ssh: the real step and probe: paramiko over SSH to the GitLab container's public address,
  and to the two private containers through it as the jump host, every host key pinned in the
  deployment's known_hosts from the console output the cloud reports (ec2:GetConsoleOutput on
  moto) before the first login (first the Ollama container is paused);
- wait_dns: the real step with Let's Encrypt on; its resolver is a table that first answers
  nothing, then GitLab's public IP;
- site: the real `ansible-playbook site.yml` on the generated inventory, unchanged: Ansible's
  own SSH through the deployment's ssh_config (known_hosts, ProxyJump via GitLab), sudo as
  `ubuntu` (first the Ollama release is missing; then interrupted with SIGINT mid-play);
- duo: the real step (the deployment's configuration, `duoctl configure` in-process) against the
  GitLab API double, which accepts the admin token that the stand-in GitLab issued in the site
  step (the two stand in for one GitLab); first the API answers 502;
- verify: the real `duoctl verify`: the infra suite over SSH through the same inventory, and a
  timed completion through the GitLab API double, which sends it on to the gateway stand-in in
  the gateway container as GitLab does; the gateway asks the model server, whose real small
  model writes the completion (first the Ollama service is stopped).
Then the deployment is upgraded in lockstep, `duoctl upgrade --gitlab-version 19.5.1` with the
production hop steps: migrations finished, `duoctl backup` on the GitLab host, the gitlab role
installing the 19.5.1 stand-in package (interrupted with SIGINT first: the re-run resumes),
migrations again, the ai_gateway role moving the gateway to the 19.5.1 image, configure
re-applying the gateway URL the upgrade dropped, verify. A later playbook run keeps 19.5.1, and
a pin back to 19.4.1 is refused.

Where the test path still differs from production, and why:
- The VMs are systemd containers of the Molecule `site` scenario, started at the addresses
  Terraform's outputs give once the terraform step has run (moto creates no machine); cloud-init's
  part (the SSH key in authorized_keys, the host keys on the console) is played by
  tests/tooling/cloud_init.py. The VPC ranges and the Elastic IP range are test ranges
  (10.213.0.0/16) so the containers can hold the addresses; they are set with Terraform override
  files in the deployment's working directory (kept there like a user's own `*_override.tf`),
  which also point the AWS provider at moto.
- The controller reaches the private containers directly too (one Docker host); the inventory
  still takes the jump host, as the assertions on the ssh_config show.
- The artifacts that cannot be downloaded here (GitLab package, gateway image, Ollama release)
  come from host_vars/ beside the generated inventory (source variables, not connection ones),
  one per version, as the README shows for air-gapped upgrades.
- The GitLab API double learns that the GitLab it stands for was upgraded from the container's
  installed package (read with dpkg-query after the upgrade's gitlab step): the double then
  answers with the new version, queues the upgrade's batched background migrations and drops
  the gateway URL (GitLab.upgrade in the double).
- No ACME server is reachable, so the site step passes gitlab_tls_mode=selfsigned; the stand-in
  GitLab has no Rails, so verify leaves out the rake check (its parsing is tested on recorded
  outputs), and GitLab's part of the completion (seat, feature mapping, the request to the
  gateway) is played by the GitLab API double.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl import cli, deploy
from duoctl.deploy import steps as deploy_steps
from duoctl.deploy.state import deployment_of
from duoctl.deployment import Deployment
from duoctl.pipeline import Context
from duoctl.preflight.aws import run_checks as aws_checks

from tests.doubles import aws_ec2_extras
from tests.doubles.aws_moto_server import AWS_CREDENTIALS, MotoEndpoint, moto_server
from tests.doubles.gitlab_api import GitLabDouble, gitlab_double
from tests.terraform.tooling import MOTO_OVERRIDE, cli_config, find_mirror
from tests.tooling import cloud_init

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
ARTIFACTS = ROOT / "tests" / ".artifacts" / "site"
OLLAMA_ARCHIVE = "ollama-linux-amd64.tar.zst"
# Test ranges for the VPC and the Elastic IPs, so the containers can hold the VMs' addresses.
NETWORK_OVERRIDE = """# Test ranges (see the end-to-end test): the containers hold these addresses.
variable "vpc_cidr" {
  default = "10.213.64.0/20"
}
variable "public_subnet_cidr" {
  default = "10.213.65.0/24"
}
variable "private_subnet_cidr" {
  default = "10.213.66.0/24"
}
"""
PRIVATE_RANGE = "10.213.64.0/20"
VLLM_VERSION = str(
    yaml.safe_load((ROOT / "ansible/roles/vllm/defaults/main.yml").read_text())["vllm_version"]
)
BOOT_SECONDS = 15.0
PUBLIC_RANGE = "10.213.120.0/24"  # outside PRIVATE_RANGE, as the two Docker networks must be
PORTS = {"gateway_port": 15052, "gateway_grpc_port": 15053, "model_port": 21434}
# The inventory's hosts -> the `site` scenario's containers.
CONTAINERS = {
    "gitlab-vm": "site-gitlab",
    "gateway-vm": "site-ai-gateway",
    "ollama-vm": "site-ollama",
    "vllm-vm": "site-ollama",  # the same GPU VM stand-in, serving with vLLM
}
# What each host needs to install offline: the stand-in artifacts prepare.yml builds (and the
# node exporter's real Debian package it downloads).
NODE_EXPORTER = ARTIFACTS / "prometheus-node-exporter.deb"
# One package and one gateway archive per GitLab version (the air-gapped upgrade path).
HOST_SOURCES: dict[str, dict[str, Any]] = {
    "gitlab-vm": {
        "gitlab_package_file": f"{ARTIFACTS}/gitlab-ee_{{{{ gitlab_package_version }}}}_amd64.deb"
    },
    "gateway-vm": {
        "ai_gateway_image_registry": "localhost",
        "ai_gateway_image_repository": "ai-gateway-standin",
        "ai_gateway_image_archive": (
            f"{ARTIFACTS}/ai-gateway-standin-v{{{{ ai_gateway_gitlab_version }}}}.tar.gz"
        ),
        "node_exporter_package_file": str(NODE_EXPORTER),
        # Docker inside the container: its bridge must not overlap the test network.
        "ai_gateway_docker_daemon_config": {
            "bip": "192.168.224.1/24",
            "log-driver": "json-file",
            "log-opts": {"max-size": "10m", "max-file": "2"},
        },
    },
}


def molecule(stage: str, env_extra: dict[str, str] | None = None) -> None:
    env = dict(
        os.environ, PY_COLORS="0", NO_COLOR="1", ANSIBLE_FORCE_COLOR="0", **(env_extra or {})
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    print(f"\n----- molecule {stage} -s site -----", flush=True)
    subprocess.run(["molecule", stage, "-s", "site"], cwd=ANSIBLE_DIR, env=env, check=True)


def docker(*args: str, check: bool = True) -> None:
    subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def moto() -> Iterator[MotoEndpoint]:
    # Instances stay pending for a while, as EC2's do: the Ctrl-C below lands while Terraform
    # waits for one to boot, not in the middle of an API call whose answer would be lost.
    with moto_server(gpu_vcpu_quota=8, boot_seconds=BOOT_SECONDS) as endpoint:
        aws_ec2_extras.set_elastic_ip_range(endpoint, PUBLIC_RANGE)
        yield endpoint


@dataclass
class Deployment_:
    """The user's side: a folder with the SSH key pair and the deployment's folder."""

    tmp: Path
    double: GitLabDouble
    double_ca: Path
    moto: MotoEndpoint
    dns: dict[str, set[str]] = field(default_factory=dict)
    containers_env: dict[str, str] = field(default_factory=dict)
    serving: list[str] = field(default_factory=list)  # e.g. ["--serving", "vllm"]

    @property
    def folder(self) -> Path:
        return self.tmp / ".deploy" / "aws"

    @property
    def inventory(self) -> Path:
        return self.folder / "inventory.yml"

    @property
    def staging(self) -> Path:
        """Where the Ollama release is expected; empty until the site fault is repaired."""
        return self.tmp / "staging"

    def argv(self) -> list[str]:
        if self.serving:  # the serving's own default ports
            return [*self.base_argv(), *self.serving]
        ports = [f"--{k.replace('_', '-')}={v}" for k, v in PORTS.items()]
        return [*self.base_argv(), *ports]

    def base_argv(self) -> list[str]:
        return [
            "deploy", "aws", "--region", "us-east-1", "--ssh-key", str(self.tmp / "id.pub"),
            "--admin-cidr", "198.51.100.7/32", "--deploy-dir", str(self.tmp / ".deploy"),
        ]  # fmt: skip

    def run(self, steps: list[Attempts]) -> tuple[int, str]:
        args = cli.deployment_options_for(self.argv())
        out = io.StringIO()
        code = deploy.deploy_main(args, steps=list(steps), progress_stream=out)
        sys.stdout.write(out.getvalue())
        return code, out.getvalue()


@pytest.fixture
def deployment(
    tmp_path: Path, moto: MotoEndpoint, container_tooling: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment_]:
    if shutil.which("terraform") is None:
        pytest.fail("terraform is not on PATH: the deploy test needs it (make test installs it)")
    mirror = find_mirror()
    if mirror is None:
        pytest.fail("no Terraform provider mirror with hashicorp/aws on this machine")
    for name, value in {
        **AWS_CREDENTIALS,
        "AWS_ENDPOINT_URL": moto,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "TF_CLI_CONFIG_FILE": str(cli_config(mirror, tmp_path)),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    workdir = tmp_path / ".deploy" / "aws" / "terraform"
    workdir.mkdir(parents=True)
    override = MOTO_OVERRIDE.read_text(encoding="utf-8").replace("MOTO_ENDPOINT", moto)
    (workdir / "moto_endpoints_override.tf").write_text(override, encoding="utf-8")
    (workdir / "network_override.tf").write_text(NETWORK_OVERRIDE, encoding="utf-8")
    (tmp_path / "staging").mkdir()
    (tmp_path / "double-tls").mkdir()
    with gitlab_double("19.4.1-ee", tls_dir=tmp_path / "double-tls") as double:
        double.forward_to_gateway = True  # completions go GitLab → gateway → model
        d = Deployment_(tmp_path, double, tmp_path / "double-tls" / "ca.crt", moto)
        try:
            yield d
        finally:
            if d.containers_env:
                docker("unpause", "site-ollama", check=False)
                molecule("destroy", d.containers_env)


# --- the steps, pointed at the local targets ------------------------------------------------


@dataclass
class Attempts:
    """A production step, with what the test world does before it (`setup`: the VMs boot,
    the artifacts are placed), a fault's hook (`before`) and a count of the times it ran."""

    inner: Any
    setup: Callable[[Context], None] = lambda ctx: None
    before: Callable[[Context], None] = lambda ctx: None
    runs: int = 0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    def run(self, ctx: Context) -> None:
        self.runs += 1
        self.setup(ctx)
        self.before(ctx)
        self.inner.run(ctx)


def boot_the_vms(d: Deployment_) -> Callable[[Context], None]:
    """Once Terraform has made the VMs: the containers at their addresses, cloud-init played
    (the deploy's public key installed, the host keys on each instance's console)."""

    def before(ctx: Context) -> None:
        if d.containers_env:
            return
        vms: Deployment = deployment_of(ctx)
        d.containers_env = {
            "DUO_SITE_PRIVATE_SUBNET": PRIVATE_RANGE,
            "DUO_SITE_PUBLIC_SUBNET": PUBLIC_RANGE,
            "DUO_SITE_GITLAB_IP": vms.gitlab.private_ip,
            "DUO_SITE_GITLAB_PUBLIC_IP": str(vms.gitlab.public_ip),
            "DUO_SITE_GATEWAY_IP": vms.gateway.private_ip,
            "DUO_SITE_OLLAMA_IP": vms.model.private_ip,
        }
        molecule("create", d.containers_env)
        molecule("prepare", d.containers_env)
        public_key = (d.tmp / "id.pub").read_text().strip()
        for host in vms.hosts:
            console = cloud_init.provision(CONTAINERS[host.name], public_key, [host.address])
            aws_ec2_extras.set_console_output(d.moto, str(host.instance), console)

    return before


def artifacts_beside_the_inventory(d: Deployment_) -> None:
    """host_vars/ beside the generated inventory: where each host finds what it installs."""
    folder = d.inventory.parent / "host_vars"
    folder.mkdir(exist_ok=True)
    sources = {
        **HOST_SOURCES,
        "ollama-vm": {
            "ollama_archive_src": str(d.staging / OLLAMA_ARCHIVE),
            "ollama_archive_sha256": (ARTIFACTS / "sha256sum.txt").read_text().split()[0],
            "node_exporter_package_file": str(NODE_EXPORTER),
        },
    }
    vllm = ARTIFACTS / "vllm"
    build = ROOT / "tests" / "doubles" / "vllm_server" / "build.py"
    argv = [sys.executable, str(build), "--version", VLLM_VERSION, "--output-dir", str(vllm)]
    subprocess.run([*argv, "--model-dir", str(vllm / "model")], check=True)  # never a stale one
    sources["vllm-vm"] = {
        "vllm_wheelhouse_src": str(vllm / "vllm-wheelhouse.tar.gz"),
        "vllm_model_src": str(vllm / "model"),
        "node_exporter_package_file": str(NODE_EXPORTER),
    }
    for host, values in sources.items():
        # Docker owns a container's hostname.
        (folder / f"{host}.yml").write_text(yaml.safe_dump({**values, "common_hostname": ""}))


def answer_dns(d: Deployment_) -> None:
    """The A record of GitLab's name, as the user (or sslip.io) makes it answer."""
    vms = Deployment.from_inventory(d.inventory)
    d.dns[vms.domain] = {str(vms.gitlab.public_ip)}


def accept_the_admin_token(d: Deployment_) -> Callable[[Context], None]:
    def before(ctx: Context) -> None:
        token = ctx.paths.admin_token_file.read_text().strip()
        d.double.tokens[token] = True

    return before


def interrupt_when(marker: str, over: threading.Event) -> Callable[[Context], None]:
    """Ctrl-C, as a terminal sends it to duoctl, once the deploy log shows `marker` (at most
    once, and never after `over` is set)."""

    def before(ctx: Context) -> None:
        log = ctx.paths.log_file
        seen = len(log.read_text()) if log.exists() else 0

        def watch() -> None:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not over.is_set():
                if marker in log.read_text()[seen:]:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.1)

        threading.Thread(target=watch, daemon=True).start()

    return before


def site_vars_of(site: Any, ctx: Context) -> None:
    """The site step's extra vars as production passes them (the serving's role variables),
    with the TLS mode this machine allows (no ACME server)."""
    site.extra_vars = {**deploy_steps.site_vars(ctx.settings), "gitlab_tls_mode": "selfsigned"}


def steps_for(d: Deployment_) -> list[Attempts]:
    private_key = str(d.tmp / "id")

    def resolver(name: str) -> set[str]:
        return d.dns.get(name, set())

    site = deploy.PlaybookStep("site", "ansible/playbooks/site.yml", private_key=private_key)

    return [
        Attempts(deploy.PreflightStep(checks=aws_checks)),
        Attempts(deploy.TerraformStep()),
        Attempts(deploy.InventoryStep()),
        Attempts(
            deploy.WaitSshStep(
                key_file=private_key,
                host_keys=deploy.cloud_host_keys("aws", "us-east-1", None),
                timeout=20.0,
                interval=2.0,
                cloud_keys_grace=0.0,
            ),
            setup=boot_the_vms(d),
        ),
        Attempts(deploy.WaitDnsStep(resolver=resolver, timeout=0.5, interval=0.1)),
        Attempts(
            site,
            setup=lambda ctx: (site_vars_of(site, ctx), artifacts_beside_the_inventory(d)),
        ),
        Attempts(
            deploy.DuoStep(gitlab_url=d.double.url, ca_file=str(d.double_ca)),
            setup=accept_the_admin_token(d),
        ),
        Attempts(
            deploy.VerifyStep(
                private_key=private_key,
                gitlab_url=d.double.url,
                ca_file=str(d.double_ca),
                skip_rake=True,
            )
        ),
    ]


# --- the faults: (break before the run that reaches the step, what the failure says, repair) --


@dataclass
class Fault:
    step: str
    expected: tuple[str, ...]
    inject: Callable[[], None]
    repair: Callable[[], None]
    code: int = 1


def faults(d: Deployment_, steps: list[Attempts], monkeypatch: pytest.MonkeyPatch) -> list[Fault]:
    tmp = d.tmp
    empty_mirror = tmp / "empty-mirror"
    empty_mirror.mkdir()
    (tmp / "empty-mirror-rc").mkdir()
    broken_cli_config = cli_config(empty_mirror, tmp / "empty-mirror-rc")
    good_cli_config = os.environ["TF_CLI_CONFIG_FILE"]
    by_name = {s.name: s for s in steps}

    over = threading.Event()

    def arm(step: str, marker: str) -> Callable[[], None]:
        def inject() -> None:
            over.clear()
            by_name[step].before = interrupt_when(marker, over)

        return inject

    def disarm(step: str) -> Callable[[], None]:
        def repair() -> None:
            over.set()
            by_name[step].before = lambda ctx: None

        return repair

    return [
        Fault(
            "preflight",
            ("L-DB2E81BA", "request-service-quota-increase"),
            lambda: d.moto.set_gpu_vcpu_quota(0),
            lambda: d.moto.set_gpu_vcpu_quota(8),
        ),
        Fault(
            "terraform",
            ("terraform init failed", "Fix: the provider registry is unreachable"),
            lambda: monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(broken_cli_config)),
            lambda: monkeypatch.setenv("TF_CLI_CONFIG_FILE", good_cli_config),
        ),
        Fault(
            "terraform",
            ("Interrupted during terraform",),
            arm("terraform", 'aws_instance.vm["gitlab"]: Still creating...'),
            disarm("terraform"),
            code=130,
        ),
        Fault(
            "inventory",
            ("cannot write", "inventory.yml: something else than a file is there"),
            lambda: d.inventory.mkdir(parents=True),
            lambda: d.inventory.rmdir(),
        ),
        Fault(
            "wait_ssh",
            ("no SSH after", "ollama-vm"),
            lambda: None,  # paused once the containers exist (below)
            lambda: docker("unpause", "site-ollama"),
        ),
        Fault("wait_dns", ("does not resolve to", "IN A"), d.dns.clear, lambda: answer_dns(d)),
        Fault(
            "site",
            ("ansible-playbook exited with code 2", "ollama-vm failed at [ollama : "),
            lambda: None,  # the Ollama release is not in the staging folder yet
            lambda: shutil.copy(ARTIFACTS / OLLAMA_ARCHIVE, d.staging / OLLAMA_ARCHIVE),
        ),
        Fault(
            "site",
            ("Interrupted during site", "stopping ansible-playbook cleanly"),
            arm("site", "TASK [gitlab : "),
            disarm("site"),
            code=130,
        ),
        Fault(
            "duo",
            ("duoctl configure failed", "GitLab answered HTTP 502"),
            lambda: d.double.fail_next.extend([502] * 6),
            lambda: d.double.fail_next.clear(),
        ),
        Fault(
            "verify",
            ("verification failed", "Broken hop: gateway → model"),
            # Once the duo step has read the model's id from the running server.
            stop_ollama_before(by_name["verify"]),
            start_ollama_again(by_name["verify"]),
        ),
    ]


def stop_ollama_before(step: Attempts) -> Callable[[], None]:
    def inject() -> None:
        step.before = lambda ctx: docker("exec", "site-ollama", "systemctl", "stop", "ollama")

    return inject


def start_ollama_again(step: Attempts) -> Callable[[], None]:
    def repair() -> None:
        step.before = lambda ctx: None
        docker("exec", "site-ollama", "systemctl", "start", "ollama")

    return repair


def assert_the_model_wrote_the_completion(d: Deployment_, out: str) -> None:
    """verify's completion went GitLab → gateway → model server and came back with the text the
    model wrote, not the API double's canned answer."""
    [line] = [line for line in out.splitlines() if "✔ code completion through GitLab" in line]
    canned = d.double.completion_text.strip().splitlines()[0]
    assert "returned '" in line and repr(canned) not in line, line
    assert "canned answer" not in line, line  # a stand-in built without its model
    forwarded = [e for e in d.double.log if e.path == "/api/v4/code_suggestions/completions"]
    assert forwarded, "no completion reached the GitLab API double"


def test_deploy_aws_end_to_end_over_ssh_with_a_failure_at_every_step(
    deployment: Deployment_, moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployment
    steps = steps_for(d)
    plan = faults(d, steps, monkeypatch)
    assert list(dict.fromkeys(f.step for f in plan)) == [s.name for s in steps]

    def pause_on_the_first_run(ctx: Context) -> None:
        if steps[3].runs == 1:
            docker("pause", "site-ollama")

    steps[3].before = pause_on_the_first_run
    for fault in plan:
        fault.inject()
        code, out = d.run(steps)
        assert code == fault.code, out
        if fault.code == 130:
            assert f"Interrupted during {fault.step}" in out
        else:
            failed = [line for line in out.splitlines() if "FAILED after" in line]
            assert failed and f"] {fault.step}: FAILED" in failed[0], out
        for text in fault.expected:
            assert text in out, f"{fault.step}: {text!r} not in the output:\n{out}"
        assert f"it resumes at {fault.step}" in out
        fault.repair()

    code, out = d.run(steps)
    assert code == 0, out
    assert "Verified: GitLab → gateway → model answered a code completion" in out
    assert_the_model_wrote_the_completion(d, out)
    # Each step ran once per fault it met plus the run that finished it; none ran again.
    expected = {s.name: 1 + sum(f.step == s.name for f in plan) for s in steps}
    assert {s.name: s.runs for s in steps} == expected

    code, out = d.run(steps)
    assert code == 0, out
    assert out.count("done in an earlier run") == len(steps)
    assert {s.name: s.runs for s in steps} == expected

    # The interrupted apply left a sound state: one set of VMs, no lock.
    workdir = d.folder / "terraform"
    assert not (workdir / ".terraform.tfstate.lock.info").exists()
    # Host keys: pinned from the console output, the ones the hosts really have.
    vms = Deployment.from_inventory(d.inventory)
    known = (d.folder / "known_hosts").read_text()
    for host in vms.hosts:
        for line in cloud_init.host_keys(CONTAINERS[host.name]):
            key_type, blob = line.split()[:2]
            assert f"{host.address} {key_type} {blob}" in known
    ssh_config = (d.folder / "ssh_config").read_text()
    assert f"Host gateway-vm {vms.gateway.private_ip}" in ssh_config
    assert "ProxyJump gitlab-vm" in ssh_config
    # What the deploy left for the user.
    secrets = d.folder / "secrets"
    token = (secrets / "gitlab_admin_token").read_text().strip()
    assert token and oct((secrets / "gitlab_admin_token").stat().st_mode & 0o777) == "0o600"
    log = (d.folder / "deploy.log").read_text()
    assert token not in log and token not in out
    assert "running the infra suite on the hosts ..." in log
    assert "Hosts (testinfra suite tests/infra): " in log
    # The non-default ports reached the roles and GitLab.
    assert d.double.instance.duo["aiGatewayUrl"] == f"http://{vms.gateway.private_ip}:15052"

    upgrade_in_lockstep(d)


# --- the upgrade ---------------------------------------------------------------------------

UPGRADE_TO = "19.5.1"


def build_the_next_release() -> None:
    """The 19.5.1 stand-ins beside the 19.4.1 ones: the package and the gateway image."""
    doubles = ROOT / "tests" / "doubles"
    subprocess.run(
        [sys.executable, str(doubles / "gitlab_ee_package" / "build.py"), str(ARTIFACTS),
         f"{UPGRADE_TO}-ee.0"], check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, str(doubles / "ai_gateway_image" / "build.py"),
         "--image", f"localhost/ai-gateway-standin:self-hosted-v{UPGRADE_TO}-ee",
         "--output", str(ARTIFACTS / f"ai-gateway-standin-v{UPGRADE_TO}.tar.gz")],
        check=True,
    )  # fmt: skip


def installed_gitlab(container: str = "site-gitlab") -> str:
    """The gitlab-ee version installed in the GitLab container, as X.Y.Z-ee."""
    query = ["exec", container, "dpkg-query", "--show", "--showformat=${Version}", "gitlab-ee"]
    out = subprocess.run(["docker", *query], capture_output=True, text=True, check=True).stdout
    return out.strip().removesuffix(".0").replace("-ee.", "-ee")


@dataclass
class Upgraded:
    """The upgrade's gitlab step; afterwards the API double answers as the upgraded GitLab."""

    inner: Any
    double: GitLabDouble
    before: Callable[[Context], None] = lambda ctx: None
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    def run(self, ctx: Context) -> None:
        self.before(ctx)
        self.inner.run(ctx)
        version = installed_gitlab()
        if version != self.double.instance.version:
            self.double.upgrade(version)


def upgrade_in_lockstep(d: Deployment_) -> None:
    """`duoctl upgrade` 19.4.1 -> 19.5.1 on the deployed stack, interrupted once, then a later
    playbook run pinned to 19.5.1 and a downgrade refused."""
    from duoctl.deploy.playbooks import PlaybookStep
    from duoctl.folder import DeploymentFolder
    from duoctl.pipeline import Progress, StepFailed
    from duoctl.upgrade import UpgradeOptions
    from duoctl.upgrade import main as upgrade_main
    from duoctl.upgrade.steps import GitLabStep, MigrationsStep, hop_steps

    build_the_next_release()
    private_key = str(d.tmp / "id")
    folder = DeploymentFolder.of(d.tmp / ".deploy", "aws", ROOT)
    settings = deploy.load_settings(
        cli.deployment_options_for(d.argv()), folder, lambda: "192.0.2.1"
    )
    extra = {**deploy_steps.site_vars(settings), "gitlab_tls_mode": "selfsigned"}
    over = threading.Event()
    interrupt = interrupt_when("TASK [gitlab : ", over)

    def steps_for(hops: list[Any], api: Any) -> list[Any]:
        steps: list[Any] = []
        for index, hop in enumerate(hops, start=1):
            for step in hop_steps(index, hop, api, private_key, extra):
                if isinstance(step, MigrationsStep):
                    step.poll = 1.0
                if isinstance(step, deploy.VerifyStep):
                    step.skip_rake = True
                if isinstance(step, GitLabStep):
                    step = Upgraded(step, d.double, interrupt)
                steps.append(step)
        return steps

    options = UpgradeOptions(
        UPGRADE_TO, "aws", d.tmp / ".deploy", gitlab_url=d.double.url, ca_file=str(d.double_ca)
    )

    def upgrade() -> tuple[int, str]:
        out = io.StringIO()
        code = upgrade_main(options, lambda line: print(line, file=out), out, steps_for)
        sys.stdout.write(out.getvalue())
        return code, out.getvalue()

    gateway_url = d.double.instance.duo["aiGatewayUrl"]
    code, out = upgrade()  # Ctrl-C while the gitlab role runs
    assert code == 130, out
    assert "Interrupted during hop1-19.5.1-gitlab" in out, out
    over.set()
    interrupt = lambda ctx: None  # noqa: E731
    code, out = upgrade()
    assert code == 0, out
    assert "Resuming the recorded upgrade to 19.5.1" in out, out
    assert "hop1-19.5.1-backup: done in an earlier run" in out, out
    assert f"Upgrade complete: GitLab {UPGRADE_TO} (aws)." in out, out
    assert "Verified: GitLab → gateway → model answered a code completion" in out, out
    assert installed_gitlab() == d.double.instance.version == f"{UPGRADE_TO}-ee"
    # The gateway URL the upgrade dropped is back; the settle step waited for the migrations.
    assert d.double.instance.duo["aiGatewayUrl"] == gateway_url
    assert all(m["status"] == "finished" for m in d.double.migrations["main"])
    assert folder.gitlab_version_file.read_text() == f"{UPGRADE_TO}\n"
    report = status_report(d)
    assert report["versions"]["gitlab"] == f"{UPGRADE_TO}-ee", report["versions"]
    assert report["versions"]["gateway_image"].endswith(f":self-hosted-v{UPGRADE_TO}-ee")
    # The backup before the hop: GitLab's archive of 19.4.1 and the encrypted configuration.
    log = folder.log_file.read_text()
    assert "_19.4.1-ee done on gitlab-vm in " in log, log[-3000:]
    assert "configuration  " in log and "(encrypted; gitlab-secrets.json" in log

    # A later deploy's playbook run keeps GitLab at 19.5.1: nothing to install.
    ctx = Context("aws", folder, Progress(folder.log_file, io.StringIO()), settings)
    gitlab = PlaybookStep("site", "ansible/playbooks/gitlab.yml", extra_vars=extra,
                          private_key=private_key)  # fmt: skip
    gitlab.run(ctx)
    recap = [line for line in folder.log_file.read_text().splitlines() if "gitlab-vm" in line]
    assert "changed=0" in recap[-1], recap[-1]
    assert installed_gitlab() == f"{UPGRADE_TO}-ee"
    # An explicit pin back to 19.4.1 is refused before anything is installed.
    back = PlaybookStep("site", "ansible/playbooks/gitlab.yml", private_key=private_key,
                        extra_vars={**extra, "duo_gitlab_version": "19.4.1"})  # fmt: skip
    with pytest.raises(StepFailed, match="GitLab cannot be downgraded"):
        back.run(ctx)
    assert installed_gitlab() == f"{UPGRADE_TO}-ee"


def test_deploy_aws_serving_with_vllm(deployment: Deployment_) -> None:
    """`--serving vllm`: the default preset's GPU VM from Terraform, the vllm role on the GPU
    host (its air-gapped path: the stand-in vLLM's wheelhouse and a small model's folder),
    the preset's model registered in GitLab with its API key, and verify through vLLM."""
    from duoctl import serving

    d = deployment
    d.serving = ["--serving", "vllm"]
    steps = steps_for(d)
    steps[4].setup = lambda ctx: answer_dns(d)  # the record exists from the start
    code, out = d.run(steps)
    assert code == 0, out
    assert "Verified: GitLab → gateway → model answered a code completion" in out
    assert_the_model_wrote_the_completion(d, out)
    preset = serving.PRESETS[serving.DEFAULT_PRESET]
    vms = Deployment.from_inventory(d.inventory)
    assert (vms.serving, vms.model.name) == ("vllm", "vllm-vm")
    [model] = d.double.instance.models.values()
    assert model.identifier == f"custom_openai/{preset.served_model_name}"
    assert model.endpoint == f"http://{vms.model.private_ip}:8000/v1"
    key = (d.folder / "secrets" / "vllm_api_key").read_text().strip()
    assert model.api_token == key and key not in out
    outputs = json.loads((d.folder / "terraform" / "terraform.tfstate").read_text())["outputs"]
    assert outputs["gpu_vm"]["value"]["machine_type"] == preset.machine_types["aws"]
    # The identifier came from the server's /v1/models, read through the SSH tunnel.
    log = (d.folder / "deploy.log").read_text()
    assert f"the model server serves custom_openai/{preset.served_model_name}" in log

    bench_both_paths_on_the_real_small_model(d, vms)
    errors_are_counted_when_the_model_stops_and_warm_up_is_reported(d)
    status_sees_the_whole_deployment(d)


def bench_options(
    d: Deployment_, paths: tuple[str, ...], levels: tuple[int, ...], requests: int
) -> Any:
    from duoctl.bench import BenchOptions
    from duoctl.bench.load import Ramp

    return BenchOptions(
        name="aws",
        deploy_dir=d.tmp / ".deploy",
        paths=paths,  # type: ignore[arg-type]
        ramp=Ramp(levels, requests, level_seconds=90, timeout=60, first_timeout=120),
        # One CPU model behind a lock: seconds per completion; a GPU target would stop the ramp.
        target_p95=30.0,
        gitlab_url=d.double.url,
        ca_file=str(d.double_ca),
    )


def bench_both_paths_on_the_real_small_model(d: Deployment_, vms: Deployment) -> None:
    """`duoctl bench` through GitLab (the API double, the gateway container, the model) and to
    the model alone (the SSH tunnel through the GitLab container): every level reported, the
    chart a PNG, the JSON round-trips, and no connection to anything but the stack."""
    import socket as socket_module

    from duoctl.bench import bench_deployment, results
    from duoctl.folder import DeploymentFolder

    stack = {"127.0.0.1", *(h.address for h in vms.hosts), *(h.private_ip for h in vms.hosts)}
    reached: list[str] = []
    connect = socket_module.socket.connect

    def recording(sock: socket_module.socket, address: Any) -> Any:
        if sock.family in (socket_module.AF_INET, socket_module.AF_INET6):
            reached.append(str(address[0]))
        return connect(sock, address)

    folder = DeploymentFolder.of(d.tmp / ".deploy", "aws", ROOT)
    options = bench_options(d, ("gitlab", "model"), (1, 2, 4), requests=6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket_module.socket, "connect", recording)
        run, where = bench_deployment(folder, options)
    assert reached and set(reached) <= stack, set(reached) - stack
    assert [p.path for p in run.paths] == ["gitlab", "model"]
    for path in run.paths:
        assert [level.level for level in path.levels] == [1, 2, 4], path
        assert all(level.requests == 6 for level in path.levels), path
        assert all(level.ok > 0 and level.latency_p95 for level in path.levels), path
        assert path.first_request.latency is not None, path
    model_path = run.paths[1]
    assert model_path.streaming and model_path.levels[0].ttft_p50 is not None
    assert model_path.levels[0].tokens_per_s_total > 0
    assert (where / results.CHART).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert results.load(results.dump(run)) == run
    assert results.load_run(where) == run


def errors_are_counted_when_the_model_stops_and_warm_up_is_reported(d: Deployment_) -> None:
    """The model server stopped mid-run: the failed requests are counted, by kind. Then
    restarted: the first request after the restart is timed against the steady median."""
    from duoctl.bench import bench_deployment
    from duoctl.folder import DeploymentFolder

    folder = DeploymentFolder.of(d.tmp / ".deploy", "aws", ROOT)
    stop = ("exec", "site-ollama", "systemctl", "stop", "vllm")
    stopper = threading.Thread(target=docker, args=stop)

    def progress(p: Any) -> None:  # a few answers in: the model server goes away
        if p.done >= 5 and stopper.ident is None:
            stopper.start()

    try:
        options = bench_options(d, ("model",), (1,), requests=200)
        run, _ = bench_deployment(folder, options, progress=progress)
    finally:
        if stopper.ident is not None:
            stopper.join()
    [level] = run.paths[0].levels
    assert level.ok >= 5 and sum(level.errors.values()) > 0, level
    assert level.ok + sum(level.errors.values()) <= 200, level

    docker("exec", "site-ollama", "systemctl", "start", "vllm")
    model = Deployment.from_inventory(d.inventory).model
    deadline = time.monotonic() + 120
    while True:  # the server is up again (the first completion is what the check times)
        try:
            with urllib.request.urlopen(f"http://{model.private_ip}:8000/health", timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline, "vLLM did not come back"
            time.sleep(0.5)
    run, _ = bench_deployment(folder, bench_options(d, ("model",), (1,), requests=5))
    first = run.paths[0].first_request
    assert first.latency is not None and first.steady_p50 is not None, first
    assert first.ratio is not None
    print(
        f"first request after a restart: {first.latency:.2f} s, steady median "
        f"{first.steady_p50:.2f} s (x{first.ratio})"
    )


def status_report(d: Deployment_) -> dict[str, Any]:
    """`duoctl status --json` of the deployed stack; it exits 0 (everything up)."""
    from duoctl.cli import main

    argv = ["status", "--name", "aws", "--deploy-dir", str(d.tmp / ".deploy"),
            "--gitlab-url", d.double.url, "--ca-file", str(d.double_ca), "--json"]  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    report: dict[str, Any] = json.loads(out.getvalue())
    assert code == 0, json.dumps(report, indent=1)
    return report


def status_sees_the_whole_deployment(d: Deployment_) -> None:
    """`duoctl status` on the deployed stack: everything up, read through the same SSH."""
    report = status_report(d)
    assert report["ok"] and not report["down"], report["down"]
    assert [h["state"] for h in report["hosts"]] == ["up"] * 3, report["hosts"]
    assert str(report["versions"]["model_server"]).startswith("vllm"), report["versions"]
