"""Ctrl-C (or SIGTERM) during `terraform apply` of terraform/aws against the moto server: the
real terraform binary, driven by duoctl's own Terraform call in a driver process.

While Terraform creates an instance, the driver's process group gets the signal, as from a
terminal. Terraform must stop the graceful way: a valid state file that tracks every instance
created, no lock left behind, and a `destroy` that then removes everything.

The signal comes while the instance boots (moto keeps it "pending"; Terraform prints "Still
creating..."), after EC2 accepted it: where a real Ctrl-C almost always lands, as an instance
boots for tens of seconds and RunInstances takes a fraction of one. A stop during RunInstances
itself can leave an instance whose ID Terraform never got (the provider cancels the call, EC2
carries on): no client can prevent that, so the test does not aim there. For the same reason
Terraform creates one resource at a time here (-parallelism=1): when the signal comes, the
booting instance is the only operation in flight.

The apply is limited (-target) to the VMs, the NAT gateway and GitLab's Elastic IP, with what
they need: the VPC, both subnets, the internet gateway, the three security groups, the key
pair, GitLab's role and instance profile, the NAT's Elastic IP. Every kind of resource the
leftover check looks for is among them (which of them come before the first VM is Terraform's
choice, as without -target). The rest (the backup bucket and its settings, the security group
rules, the route tables) plays no part in the stop, and the bucket's lifecycle configuration
alone kept the provider waiting 55 s (it reads the rules back ten times, 5 s apart, after a
10 s delay) ahead of the first VM, one resource at a time. The `destroy` is not limited: it
removes whatever the state holds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from duoctl import terraform as tf

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, MotoEndpoint, moto_server
from tests.terraform.tooling import Terraform, aws_config_on_moto, terraform_env

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).resolve().parent / "interrupt_driver.py"
REGION = "us-east-1"
AN_INSTANCE_BOOTING = re.compile(r"^aws_instance\.\S+: Still creating\.\.\.")
APPLY_ARGS = (
    "-parallelism=1 -target=aws_instance.vm -target=aws_nat_gateway.main -target=aws_eip.gitlab"
)
BOOT_SECONDS = 3600  # the instances stay "pending" for the whole test
TIMEOUT = 900  # seconds, for each wait: generous for a loaded 2-core machine


@pytest.fixture
def moto() -> Iterator[MotoEndpoint]:
    """A moto server of its own per test: whatever is left in it was left by that test."""
    with moto_server(boot_seconds=BOOT_SECONDS) as endpoint:
        yield endpoint


def _ec2(endpoint: str) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _variables() -> dict[str, object]:
    key = Ed25519PrivateKey.generate().public_key()
    public_key = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return {
        "gitlab_domain": "gitlab.example.com",
        "admin_cidrs": ["198.51.100.7/32"],
        "ssh_public_key": public_key + " duo-test",
        "region": REGION,
    }


class Driver:
    """interrupt_driver.py in a process group of its own, its output collected by a thread."""

    def __init__(self, workdir: Path, variables_file: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.booting = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), str(workdir), str(variables_file)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if AN_INSTANCE_BOOTING.match(line):
                self.booting.set()
        self.booting.set()  # the end of the output: stop waiting for it

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait(self) -> int:
        code = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)
        return code

    def kill(self) -> None:
        """Only when the test failed: nothing of it may outlive the test."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _instances_in_state(state: dict[str, Any]) -> set[str]:
    return {
        instance["attributes"]["id"]
        for resource in state.get("resources", [])
        if resource["type"] == "aws_instance" and resource["mode"] == "managed"
        for instance in resource["instances"]
    }


def _live_instances(ec2: Any) -> set[str]:
    reservations = ec2.describe_instances()["Reservations"]
    return {
        i["InstanceId"]
        for r in reservations
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    }


def _leftovers(ec2: Any) -> dict[str, list[str]]:
    """What Terraform creates, as far as it is still in moto (the defaults are not counted)."""
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]
    left = {
        "instances": sorted(_live_instances(ec2)),
        "vpcs": vpcs,
        "key pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "elastic IPs": [a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]],
        "NAT gateways": [
            g["NatGatewayId"]
            for g in ec2.describe_nat_gateways()["NatGateways"]
            if g["State"] not in ("deleted", "deleting")
        ],
        "security groups": [
            g["GroupName"]
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"].startswith("duo-")
        ],
    }
    return {kind: names for kind, names in left.items() if names}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_during_apply_leaves_a_state_that_destroys_everything(
    terraform: Terraform,
    moto: MotoEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
) -> None:
    found = aws_config_on_moto(moto, tmp_path / "terraform")
    assert found is not None  # the terraform fixture has found the provider mirror
    workdir, cli_config_file = found
    env = {**terraform_env(cli_config_file), **AWS_CREDENTIALS}
    env["TF_CLI_ARGS_apply"] = APPLY_ARGS
    terraform.run(workdir, "init", "-input=false", "-no-color")
    variables = _variables()
    variables_file = tmp_path / "variables.json"
    variables_file.write_text(json.dumps(variables), encoding="utf-8")

    driver = Driver(workdir, variables_file, env)
    try:
        assert driver.booting.wait(TIMEOUT), "no output within the timeout"
        assert driver.proc.poll() is None, f"the apply ended early:\n{driver.output()}"
        os.killpg(driver.proc.pid, signum)  # what a terminal's Ctrl-C does (or a `kill`)
        code = driver.wait()
    finally:
        driver.kill()
    output = driver.output()
    assert code == 130, output
    assert "stopping terraform cleanly (it finishes what it is doing); wait..." in output
    assert f"driver: interrupted: {signum.name} received" in output
    assert "Gracefully shutting down" in output, "Terraform's own graceful stop"

    state = json.loads((workdir / "terraform.tfstate").read_text(encoding="utf-8"))
    assert not (workdir / ".terraform.tfstate.lock.info").exists(), "the lock was left behind"
    ec2 = _ec2(moto)
    tracked = _instances_in_state(state)
    assert len(tracked) == 1, "the booting instance"
    assert tracked == _live_instances(ec2), "an instance no state tracks"

    for name, value in env.items():
        if name != "TF_CLI_ARGS_apply":
            monkeypatch.setenv(name, value)
    tf.destroy(workdir, variables)
    assert _leftovers(ec2) == {}
