"""`duoctl gpu stop|start` against moto (EC2 on loopback) and the Compute Engine double
(instances.get/stop/start as the REST API answers them), and the "stopped by schedule" of
`duoctl status` (the cloud's view) and `duoctl verify` on a deployment folder whose settings
carry office hours that have the GPU VM stopped now.

Office hours that have the VM stopped at any moment of the year but one minute: started on
1 January at 0:00, stopped at 0:01 (OFF_NOW); the other way round they have it running (ON_NOW).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
import yaml
from duoctl import gpu, verify
from duoctl.cli import main
from duoctl.deployment import Deployment
from duoctl.settings import DeploySettings
from duoctl.status import cloud
from duoctl.verify.schedule import stopped_by_schedule
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, UBUNTU_NOBLE_AMIS, moto_server
from tests.doubles.gcp_compute_api import ComputeWorld, Instance, gcp_compute_api

OFF_NOW = "0 0 1 1 *;1 0 1 1 *;UTC"
ON_NOW = "1 0 1 1 *;0 0 1 1 *;UTC"
ZONE = "europe-west4-a"


def write_folder(deploy_dir: Path, target: str, instance: str, schedule: str | None) -> Path:
    """A deployment folder as `duoctl deploy` leaves it: state.json with the deployment,
    settings.yml, inventory.yml."""
    folder = deploy_dir / "lab"
    folder.mkdir(parents=True)
    deployment = Deployment.model_validate(
        {
            "target": target,
            "domain": "gitlab.example.com",
            "zone": ZONE if target == "gcp" else None,
            "hosts": [
                {
                    "name": "gitlab-vm",
                    "group": "gitlab",
                    "private_ip": "10.0.1.10",
                    "public_ip": "203.0.113.10",
                    "instance": "gitlab-1",
                },
                {
                    "name": "gateway-vm",
                    "group": "ai_gateway",
                    "private_ip": "10.0.2.10",
                    "via_jump": True,
                    "instance": "gateway-1",
                },
                {
                    "name": "ollama-vm",
                    "group": "ollama",
                    "private_ip": "10.0.2.11",
                    "via_jump": True,
                    "instance": instance,
                },
            ],
        }
    )
    state = {
        "version": 1,
        "inputs": {},
        "steps": {},
        "data": {"deployment": deployment.model_dump(mode="json")},
    }
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "inventory.yml").write_text(deployment.inventory_text(folder / "ssh_config"))
    settings: dict[str, Any] = {
        "cloud": target,
        "region": "us-east-1" if target == "aws" else "europe-west4",
        "ssh_public_key_file": str(deploy_dir / "id.pub"),
        "admin_cidr": "198.51.100.7/32",
    }
    if target == "gcp":
        settings.update(project="duo-test", zone=ZONE)
    if schedule:
        settings["gpu_schedule"] = schedule
    DeploySettings.model_validate(settings)  # as the deploy would have saved them
    (folder / "settings.yml").write_text(yaml.safe_dump(settings))
    return folder


# ------------------------------------------------------------------ AWS (moto)


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", str(endpoint))
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for key, value in AWS_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        yield str(endpoint)


def gpu_instance(endpoint: str) -> tuple[Any, str]:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint)
    answer = ec2.run_instances(
        ImageId=UBUNTU_NOBLE_AMIS[-1]["ami_id"], InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1
    )
    return ec2, str(answer["Instances"][0]["InstanceId"])


def ec2_state(ec2: Any, instance: str) -> str:
    answer = ec2.describe_instances(InstanceIds=[instance])
    return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])


def test_gpu_stop_and_start_on_aws_are_idempotent(
    moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2, instance = gpu_instance(moto)
    write_folder(tmp_path, "aws", instance, None)
    args = ["--name", "lab", "--deploy-dir", str(tmp_path)]

    assert main(["gpu", "stop", *args]) == 0
    out = capsys.readouterr().out
    assert f"stopping the GPU VM {instance} (it was running)" in out
    assert f"  {instance}: stopped (" in out and f"GPU VM {instance} stopped" in out
    assert ec2_state(ec2, instance) == "stopped"

    assert main(["gpu", "stop", *args]) == 0
    assert f"GPU VM {instance} is already stopped: nothing to do" in capsys.readouterr().out

    assert main(["gpu", "start", *args]) == 0
    out = capsys.readouterr().out
    assert f"starting the GPU VM {instance}" in out and f"  {instance}: running (" in out
    assert ec2_state(ec2, instance) == "running"

    assert main(["gpu", "start", *args]) == 0
    assert f"GPU VM {instance} is already running: nothing to do" in capsys.readouterr().out


def test_gpu_on_a_missing_instance_fails_with_exit_1(
    moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_folder(tmp_path, "aws", "i-0123456789abcdef0", None)
    assert main(["gpu", "stop", "--name", "lab", "--deploy-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: the cloud refused to stop the GPU VM i-0123456789abcdef0" in err
    assert "InvalidInstanceID.NotFound" in err


def test_gpu_without_a_deployment_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gpu", "start", "--name", "nothing", "--deploy-dir", str(tmp_path)]) == 2
    assert "no deployment 'nothing'" in capsys.readouterr().err


def test_status_and_verify_say_stopped_by_schedule_on_aws(
    moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2, instance = gpu_instance(moto)
    ec2.stop_instances(InstanceIds=[instance])
    folder = write_folder(tmp_path / "off", "aws", instance, OFF_NOW)
    settings = DeploySettings.model_validate(yaml.safe_load((folder / "settings.yml").read_text()))
    view = cloud.gpu_vm_view(settings, "aws", instance, None, 5)
    assert (view.state, view.up, view.stopped_by_schedule) == ("stopped", "down", True)

    outputs: list[str] = []
    options = verify.VerifyOptions(inventory=folder / "inventory.yml", out=outputs.append)
    assert verify.run(options) == 0
    assert outputs[0].startswith(f"GPU VM stopped by schedule ({instance}, stopped;")
    assert "`duoctl gpu start` starts it now" in outputs[0]
    json_out: list[str] = []
    options = verify.VerifyOptions(
        inventory=folder / "inventory.yml", json=True, out=json_out.append
    )
    assert verify.run(options) == 0
    assert json.loads(json_out[0])["gpu_vm_stopped_by_schedule"] is True

    # During office hours a stopped VM is down: verify runs its checks (and fails on them).
    during = write_folder(tmp_path / "on", "aws", instance, ON_NOW)
    assert stopped_by_schedule(during / "inventory.yml") is None


# ------------------------------------------------------------------ Google Cloud (double)


@pytest.fixture
def compute() -> Iterator[tuple[ComputeWorld, compute_v1.InstancesClient]]:
    world = ComputeWorld.default()
    world.instances[(ZONE, "duo-ollama")] = Instance(status="RUNNING")
    with gcp_compute_api(world) as endpoint:
        client = compute_v1.InstancesClient(
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
            transport="rest",
        )
        yield world, client


def test_gpu_stop_and_start_on_google_cloud(
    compute: tuple[ComputeWorld, compute_v1.InstancesClient], tmp_path: Path
) -> None:
    world, client = compute
    write_folder(tmp_path, "gcp", "duo-ollama", OFF_NOW)
    lines: list[str] = []

    def options(action: gpu.Action) -> gpu.GpuOptions:
        return gpu.GpuOptions(
            action=action,
            name="lab",
            deploy_dir=tmp_path,
            poll=0.01,
            out=lines.append,
            client=lambda: client,
        )

    assert gpu.run(options("stop")) == 0
    assert lines[0] == "stopping the GPU VM duo-ollama (it was running)"
    assert [line.split(" (")[0] for line in lines[1:3]] == [
        "  duo-ollama: stopping",
        "  duo-ollama: stopped",
    ]
    assert "its office hours still apply: starts '0 0 1 1 *', stops '1 0 1 1 *' (UTC)" in lines
    vm = world.instances[(ZONE, "duo-ollama")]
    assert vm.status == "TERMINATED"
    path = f"/compute/v1/projects/duo-test/zones/{ZONE}/instances/duo-ollama"
    assert world.requests.count(f"POST {path}/stop") == 1

    lines.clear()
    assert gpu.run(options("stop")) == 0
    assert lines[0] == "GPU VM duo-ollama is already stopped: nothing to do"
    assert world.requests.count(f"POST {path}/stop") == 1, "nothing asked of the cloud"

    lines.clear()
    assert gpu.run(options("start")) == 0
    assert lines[0] == "starting the GPU VM duo-ollama"
    assert [line.split(" (")[0] for line in lines[1:3]] == [
        "  duo-ollama: pending",
        "  duo-ollama: running",
    ]
    assert vm.status == "RUNNING" and world.requests.count(f"POST {path}/start") == 1

    lines.clear()
    assert gpu.run(options("start")) == 0
    assert lines[0] == "GPU VM duo-ollama is already running: nothing to do"


def test_gpu_start_waits_for_a_stop_in_progress_on_google_cloud(
    compute: tuple[ComputeWorld, compute_v1.InstancesClient], tmp_path: Path
) -> None:
    world, client = compute
    vm = world.instances[(ZONE, "duo-ollama")]
    vm.status, vm.passing = "TERMINATED", ["STOPPING", "STOPPING"]
    write_folder(tmp_path, "gcp", "duo-ollama", None)
    lines: list[str] = []
    options = gpu.GpuOptions(
        action="start",
        name="lab",
        deploy_dir=tmp_path,
        poll=0.01,
        out=lines.append,
        client=lambda: client,
    )
    assert gpu.run(options) == 0
    assert lines[0] == "the GPU VM duo-ollama is stopping: waiting for that first"
    assert "starting the GPU VM duo-ollama" in lines
    assert vm.status == "RUNNING"


def test_status_and_verify_say_stopped_by_schedule_on_google_cloud(
    compute: tuple[ComputeWorld, compute_v1.InstancesClient], tmp_path: Path
) -> None:
    world, client = compute
    world.instances[(ZONE, "duo-ollama")].status = "TERMINATED"
    folder = write_folder(tmp_path, "gcp", "duo-ollama", OFF_NOW)
    settings = DeploySettings.model_validate(yaml.safe_load((folder / "settings.yml").read_text()))
    view = cloud.gpu_vm_view(settings, "gcp", "duo-ollama", ZONE, 5, lambda: client)
    assert (view.state, view.stopped_by_schedule) == ("stopped", True)
    outputs: list[str] = []
    options = verify.VerifyOptions(
        inventory=folder / "inventory.yml", out=outputs.append, cloud_client=lambda: client
    )
    assert verify.run(options) == 0
    assert outputs == [
        "GPU VM stopped by schedule (duo-ollama, stopped; office hours: starts '0 0 1 1 *', "
        "stops '1 0 1 1 *' (UTC)): nothing to verify until it starts again; "
        "`duoctl gpu start` starts it now"
    ]
