"""`duoctl deploy aws` from nothing to a verified completion, as far as this machine allows,
with a failure injected at every step and a re-run that finishes the deploy.

Every step is the production step class; each is pointed at a local target:
- preflight: the real AWS checks against the moto server double (GPU quota 0 first);
- terraform: the real terraform/aws applied to moto (first with a provider mirror that is empty);
- inventory: the real duoctl.inventory from those outputs (first its path is taken by a folder);
- wait_ssh: the real step; its probe reaches the three containers of the Molecule `site`
  scenario through `docker exec`, as they run no SSH server (first the Ollama one is paused);
- wait_dns: the real step with Let's Encrypt on; its resolver is a table that first answers
  nothing, then GitLab's public IP;
- site: the real `ansible-playbook site.yml` on the written inventory. The containers stand in
  for the VMs through the files Ansible reads beside an inventory: host_vars/ (the docker
  connection, the container's address, the stand-in artifacts as air-gapped sources) and
  group_vars/all.yml (the inventory's service URLs with each VM address translated to its
  container's). No ACME server is reachable here, so the step passes gitlab_tls_mode=selfsigned.
  First the Ollama release is missing;
- duo: the real `ansible-playbook duo.yml` and `duoctl configure` against the GitLab API double,
  which accepts the admin token that the stand-in GitLab issued in the site step (the two stand
  in for one GitLab); first the API answers 502;
- verify: the real `duoctl verify`: the infra suite on the containers through the inventory,
  and a timed completion through the GitLab API double. The rake check is left out: the
  stand-in GitLab has no Rails (its output parsing is tested on recorded outputs). First the
  Ollama service is stopped.

Each run fails at the next step and names it; the next run resumes there; the last run finishes
and a further run repeats nothing.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl import cli, deploy
from duoctl.pipeline import Context
from duoctl.preflight.aws import run_checks as aws_checks

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, MotoEndpoint, moto_server
from tests.doubles.gitlab_api import GitLabDouble, gitlab_double
from tests.terraform.tooling import aws_config_on_moto, cli_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
ARTIFACTS = ROOT / "tests" / ".artifacts" / "site"
OLLAMA_ARCHIVE = "ollama-linux-amd64.tar.zst"
ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
)
# The inventory's hosts -> the `site` scenario's containers and their addresses.
CONTAINERS = {
    "gitlab-vm": ("site-gitlab", "10.213.77.10"),
    "gateway-vm": ("site-ai-gateway", "10.213.77.20"),
    "ollama-vm": ("site-ollama", "10.213.77.30"),
}
# What each host needs to install offline: the stand-in artifacts prepare.yml builds.
HOST_SOURCES: dict[str, dict[str, Any]] = {
    "gitlab-vm": {"gitlab_package_file": str(ARTIFACTS / "gitlab-ee_18.6.1-ee.0_amd64.deb")},
    "gateway-vm": {
        "ai_gateway_image_registry": "localhost",
        "ai_gateway_image_repository": "ai-gateway-standin",
        "ai_gateway_image_archive": str(ARTIFACTS / "ai-gateway-standin-v18.6.1.tar.gz"),
        # Docker inside the container: its bridge must not overlap the test network.
        "ai_gateway_docker_daemon_config": {
            "bip": "192.168.224.1/24",
            "log-driver": "json-file",
            "log-opts": {"max-size": "10m", "max-file": "2"},
        },
    },
}


def molecule(stage: str) -> None:
    env = dict(os.environ, PY_COLORS="0", NO_COLOR="1", ANSIBLE_FORCE_COLOR="0")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    print(f"\n----- molecule {stage} -s site -----", flush=True)
    subprocess.run(["molecule", stage, "-s", "site"], cwd=ANSIBLE_DIR, env=env, check=True)


def docker(*args: str, check: bool = True) -> None:
    subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def containers(container_tooling: str) -> Iterator[None]:
    """The three systemd containers of the `site` scenario, booted, stand-in artifacts built."""
    molecule("create")
    try:
        molecule("prepare")
        yield
    finally:
        docker("unpause", "site-ollama", check=False)
        molecule("destroy")


@pytest.fixture
def moto() -> Iterator[MotoEndpoint]:
    with moto_server(gpu_vcpu_quota=8) as endpoint:
        yield endpoint


@dataclass
class Deployment:
    """The user's side: a folder with the SSH key, the deploy's folder and the inventory."""

    tmp: Path
    terraform_dir: Path
    double: GitLabDouble
    double_ca: Path
    dns: dict[str, set[str]] = field(default_factory=dict)

    @property
    def inventory(self) -> Path:
        return self.tmp / "inventory" / "aws.yml"

    @property
    def staging(self) -> Path:
        """Where the Ollama release is expected; empty until the site fault is repaired."""
        return self.tmp / "staging"

    def argv(self) -> list[str]:
        return [
            "deploy", "aws", "--region", "us-east-1", "--ssh-key", str(self.tmp / "id.pub"),
            "--admin-cidr", "198.51.100.7/32", "--deploy-dir", str(self.tmp / ".deploy"),
            "--inventory", str(self.inventory),
        ]  # fmt: skip

    def run(self, steps: list[Attempts]) -> tuple[int, str]:
        args = cli.build_parser().parse_args(self.argv())
        out = io.StringIO()
        code = deploy.deploy_main(args, steps=list(steps), progress_stream=out)
        sys.stdout.write(out.getvalue())
        return code, out.getvalue()


@pytest.fixture
def deployment(
    tmp_path: Path, moto: MotoEndpoint, containers: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    if shutil.which("terraform") is None:
        pytest.fail("terraform is not on PATH: the deploy test needs it (make test installs it)")
    found = aws_config_on_moto(moto, tmp_path / "terraform")
    if found is None:
        pytest.fail("no Terraform provider mirror with hashicorp/aws on this machine")
    terraform_dir, cli_config_file = found
    for name, value in {
        **AWS_CREDENTIALS,
        "AWS_ENDPOINT_URL": moto,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "TF_CLI_CONFIG_FILE": str(cli_config_file),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "id.pub").write_text(ED25519_KEY + "\n")
    (tmp_path / "staging").mkdir()
    (tmp_path / "double-tls").mkdir()
    with gitlab_double("18.6.1-ee", tls_dir=tmp_path / "double-tls") as double:
        yield Deployment(tmp_path, terraform_dir, double, tmp_path / "double-tls" / "ca.crt")


# --- the steps, pointed at the local targets ------------------------------------------------


@dataclass
class Attempts:
    """A production step, with a hook run before it and a count of the times it ran."""

    inner: Any
    before: Callable[[Context], None] = lambda ctx: None
    runs: int = 0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    def run(self, ctx: Context) -> None:
        self.runs += 1
        self.before(ctx)
        self.inner.run(ctx)


def docker_probe(target: deploy.SshTarget, key_file: str | None, timeout: float) -> None:
    """The SSH probe's stand-in: the host's container answers and systemd has booted."""
    container = CONTAINERS[target.name][0]
    result = subprocess.run(
        ["docker", "exec", container, "systemctl", "is-system-running", "--wait"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.stdout.strip() not in ("running", "degraded"):
        raise ConnectionError(result.stderr.strip() or result.stdout.strip())


def translate(value: str, addresses: dict[str, str]) -> str:
    for vm_address, container_address in addresses.items():
        value = value.replace(vm_address, container_address)
    return value


def point_inventory_at_containers(deployment: Deployment) -> None:
    """host_vars/ and group_vars/all.yml beside the written inventory, for the containers."""
    inventory = yaml.safe_load(deployment.inventory.read_text())
    addresses: dict[str, str] = {}
    folder = deployment.inventory.parent
    (folder / "host_vars").mkdir(exist_ok=True)
    ollama_archive = deployment.staging / OLLAMA_ARCHIVE
    sources = {
        **HOST_SOURCES,
        "ollama-vm": {
            "ollama_archive_src": str(ollama_archive),
            "ollama_archive_sha256": (ARTIFACTS / "sha256sum.txt").read_text().split()[0],
        },
    }
    for group in inventory["all"]["children"].values():
        for host, host_vars in group["hosts"].items():
            container, address = CONTAINERS[host]
            addresses[host_vars["private_ip"]] = address
            overlay = {
                "ansible_connection": "community.docker.docker",
                "ansible_host": container,
                "ansible_user": "root",
                "private_ip": address,
                "common_hostname": "",  # Docker owns a container's hostname
                **({"public_ip": address} if "public_ip" in host_vars else {}),
                **sources[host],
            }
            (folder / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(overlay))
    all_vars = inventory["all"]["vars"]
    urls = ("gateway_url", "gateway_agent_platform_address", "ollama_endpoint")
    (folder / "group_vars").mkdir(exist_ok=True)
    (folder / "group_vars" / "all.yml").write_text(
        yaml.safe_dump({key: translate(all_vars[key], addresses) for key in urls})
    )


def accept_the_admin_token(deployment: Deployment) -> Callable[[Context], None]:
    def before(ctx: Context) -> None:
        token = ctx.paths.admin_token_file.read_text().strip()
        deployment.double.tokens[token] = True

    return before


def steps_for(deployment: Deployment) -> list[Attempts]:
    def resolver(name: str) -> set[str]:
        return deployment.dns.get(name, set())

    return [
        Attempts(deploy.PreflightStep(checks=aws_checks)),
        Attempts(deploy.TerraformStep(workdir=deployment.terraform_dir)),
        Attempts(deploy.InventoryStep(workdir=deployment.terraform_dir)),
        Attempts(deploy.WaitSshStep(probe=docker_probe, timeout=2.0, interval=1.0)),
        Attempts(deploy.WaitDnsStep(resolver=resolver, timeout=0.5, interval=0.1)),
        Attempts(
            deploy.PlaybookStep(
                "site", "ansible/playbooks/site.yml", extra_vars={"gitlab_tls_mode": "selfsigned"}
            ),
            before=lambda ctx: point_inventory_at_containers(deployment),
        ),
        Attempts(
            deploy.PlaybookStep(
                "duo",
                "ansible/playbooks/duo.yml",
                extra_vars={
                    "duo_duoctl_executable": deploy.tool_path("duoctl"),
                    "gitlab_url": deployment.double.url,
                    "duo_gitlab_ca_file": str(deployment.double_ca),
                    "duo_gitlab_private_ca": True,
                },
            ),
            before=accept_the_admin_token(deployment),
        ),
        Attempts(
            deploy.VerifyStep(
                gitlab_url=deployment.double.url,
                ca_file=str(deployment.double_ca),
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


def faults(
    deployment: Deployment, moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch
) -> list[Fault]:
    tmp = deployment.tmp
    empty_mirror = tmp / "empty-mirror"
    empty_mirror.mkdir()
    (tmp / "empty-mirror-rc").mkdir()
    broken_cli_config = cli_config(empty_mirror, tmp / "empty-mirror-rc")
    good_cli_config = os.environ["TF_CLI_CONFIG_FILE"]

    def public_ip() -> str:
        gitlab = yaml.safe_load(deployment.inventory.read_text())["all"]["children"]["gitlab"]
        return str(gitlab["hosts"]["gitlab-vm"]["public_ip"])

    def answer_dns() -> None:
        ip = public_ip()
        deployment.dns[f"gitlab.{ip}.sslip.io"] = {ip}

    return [
        Fault(
            "preflight",
            ("L-DB2E81BA", "request-service-quota-increase"),
            lambda: moto.set_gpu_vcpu_quota(0),
            lambda: moto.set_gpu_vcpu_quota(8),
        ),
        Fault(
            "terraform",
            ("terraform init failed", "Fix: the provider registry is unreachable"),
            lambda: monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(broken_cli_config)),
            lambda: monkeypatch.setenv("TF_CLI_CONFIG_FILE", good_cli_config),
        ),
        Fault(
            "inventory",
            ("cannot write the inventory", "aws.yml: something else than a file is there"),
            lambda: deployment.inventory.mkdir(parents=True),
            lambda: deployment.inventory.rmdir(),
        ),
        Fault(
            "wait_ssh",
            ("no SSH after", "ollama-vm"),
            lambda: docker("pause", "site-ollama"),
            lambda: docker("unpause", "site-ollama"),
        ),
        Fault(
            "wait_dns",
            ("does not resolve to", "IN A"),
            lambda: deployment.dns.clear(),
            answer_dns,
        ),
        Fault(
            "site",
            ("ansible-playbook exited with code 2", "ollama-vm failed at [ollama : "),
            lambda: None,  # the Ollama release is not in the staging folder yet
            lambda: shutil.copy(ARTIFACTS / OLLAMA_ARCHIVE, deployment.staging / OLLAMA_ARCHIVE),
        ),
        Fault(
            "duo",
            ("localhost failed at [Fail with duoctl's error]", "GitLab answered HTTP 502"),
            lambda: deployment.double.fail_next.extend([502] * 6),
            lambda: deployment.double.fail_next.clear(),
        ),
        Fault(
            "verify",
            ("verification failed", "Broken hop: gateway → model"),
            lambda: docker("exec", "site-ollama", "systemctl", "stop", "ollama"),
            lambda: docker("exec", "site-ollama", "systemctl", "start", "ollama"),
        ),
    ]


def test_deploy_aws_end_to_end_with_a_failure_at_every_step(
    deployment: Deployment, moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = steps_for(deployment)
    plan = faults(deployment, moto, monkeypatch)
    assert [f.step for f in plan] == [s.name for s in steps]
    for fault in plan:
        fault.inject()
        code, out = deployment.run(steps)
        assert code == 1, out
        failed = [line for line in out.splitlines() if "FAILED after" in line]
        assert failed and f"] {fault.step}: FAILED" in failed[0], out
        for text in fault.expected:
            assert text in out, f"{fault.step}: {text!r} not in the output:\n{out}"
        assert f"it resumes at {fault.step}" in out
        fault.repair()

    code, out = deployment.run(steps)
    assert code == 0, out
    assert "Verified: GitLab → gateway → model answered a code completion" in out
    # Each step failed once and succeeded once: no finished step ran again.
    assert {s.name: s.runs for s in steps} == {s.name: 2 for s in steps}
    assert out.count("done in an earlier run") == len(steps) - 1

    code, out = deployment.run(steps)
    assert code == 0, out
    assert out.count("done in an earlier run") == len(steps)
    assert {s.runs for s in steps} == {2}

    # What the deploy left for the user.
    secrets = deployment.tmp / ".deploy" / "aws" / "secrets"
    token = (secrets / "gitlab_admin_token").read_text().strip()
    assert token and oct((secrets / "gitlab_admin_token").stat().st_mode & 0o777) == "0o600"
    log = (deployment.tmp / ".deploy" / "aws" / "deploy.log").read_text()
    assert token not in log and token not in out
    # verify's progress went to the tail and the log as it happened, its report to the user
    assert "running the infra suite on the hosts ..." in log
    assert "Hosts (testinfra suite tests/infra): " in log
    instance = deployment.double.instance
    assert instance.duo["aiGatewayUrl"] == "http://10.213.77.20:5052"
