"""`duoctl gpu stop|start`: stop or start a deployment's GPU VM now, through the cloud's API
(EC2 StopInstances/StartInstances, Compute Engine instances.stop/start), and wait until it is
stopped or running, showing each state it passes. Idempotent: a VM already in the wanted state
is left alone and said so. The GPU VM's office hours (--gpu-schedule) do the same on a
schedule; this is for the hours in between.

Exit codes: 0 done (or nothing to do), 1 the cloud refused or the VM did not get there in time,
2 bad input (no such deployment, own hosts, no instance recorded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from duoctl.deployment import Deployment
from duoctl.errors import EXIT_FAILED, EXIT_OK, DuoctlError
from duoctl.settings import DeploySettings
from duoctl.status import inputs
from duoctl.status.options import StatusOptions

Action = Literal["stop", "start"]
TARGET = {"stop": "stopped", "start": "running"}
GONE = {"terminated", "shutting-down", "missing"}
# Compute Engine's statuses in EC2's words (the words duoctl shows).
GCP_STATES = {
    "PROVISIONING": "pending",
    "STAGING": "pending",
    "RUNNING": "running",
    "STOPPING": "stopping",
    "TERMINATED": "stopped",
    "SUSPENDING": "suspending",
    "SUSPENDED": "suspended",
    "REPAIRING": "repairing",
}


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class GpuOptions:
    action: Action
    name: str | None = None  # None: the deployment named after its cloud (aws, else gcp)
    deploy_dir: Path = Path(".deploy")
    timeout: float = 900.0  # seconds to wait for the wanted state
    poll: float = 5.0  # seconds between two looks at the VM
    out: Callable[[str], None] = field(default=_print)
    # Tests: the cloud client (boto3 EC2 client or compute_v1.InstancesClient), the clock.
    client: Callable[[], Any] | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


class Vm(Protocol):
    name: str

    def state(self) -> str: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Ec2Vm:
    ec2: Any
    name: str  # the instance ID

    def state(self) -> str:
        answer = self.ec2.describe_instances(InstanceIds=[self.name])
        found = [i for r in answer.get("Reservations") or [] for i in r.get("Instances") or []]
        return str(found[0]["State"]["Name"]) if found else "missing"

    def start(self) -> None:
        self.ec2.start_instances(InstanceIds=[self.name])

    def stop(self) -> None:
        self.ec2.stop_instances(InstanceIds=[self.name])


@dataclass
class ComputeVm:
    client: Any  # compute_v1.InstancesClient
    project: str
    zone: str
    name: str  # the instance name

    def _where(self) -> dict[str, str]:
        return {"project": self.project, "zone": self.zone, "instance": self.name}

    def state(self) -> str:
        status = str(self.client.get(**self._where()).status)
        return GCP_STATES.get(status, status.lower())

    # The operation is not waited on here: its polling client would not share this client's
    # endpoint. The instance's own status, polled by `wait_for`, tells when it is done.
    def start(self) -> None:
        self.client.start(**self._where())

    def stop(self) -> None:
        self.client.stop(**self._where())


def _failed(message: str, fix: str) -> DuoctlError:
    return DuoctlError(message, fix, exit_code=EXIT_FAILED)


def wait_for(vm: Vm, wanted: str, options: GpuOptions, started: float) -> str:
    """Poll the VM until it is `wanted`, showing every state it passes; its last state."""
    seen = ""
    while True:
        state = vm.state()
        elapsed = options.clock() - started
        if state != seen:
            options.out(f"  {vm.name}: {state} ({elapsed:.0f} s)")
            seen = state
        if state == wanted:
            return state
        if state in GONE:
            raise _failed(f"the GPU VM {vm.name} is {state}", "deploy again to rebuild it")
        if elapsed >= options.timeout:
            raise _failed(
                f"the GPU VM {vm.name} is still {state} after {options.timeout:.0f} s",
                f"see it in the cloud console; run `duoctl gpu {options.action}` again to wait on",
            )
        options.sleep(options.poll)


def stop(vm: Vm, options: GpuOptions) -> None:
    started = options.clock()
    state = vm.state()
    if state == "stopped":
        options.out(f"GPU VM {vm.name} is already stopped: nothing to do")
        return
    if state in GONE:
        raise _failed(f"the GPU VM {vm.name} is {state}", "deploy again to rebuild it")
    if state == "pending":  # EC2 refuses to stop an instance that is still starting
        options.out(f"the GPU VM {vm.name} is starting: waiting for that first")
        state = wait_for(vm, "running", options, started)
    if state != "stopping":
        options.out(f"stopping the GPU VM {vm.name} (it was {state})")
        vm.stop()
    wait_for(vm, "stopped", options, started)
    options.out(f"GPU VM {vm.name} stopped: it bills no compute time until started again")


def start(vm: Vm, options: GpuOptions) -> None:
    started = options.clock()
    state = vm.state()
    if state == "running":
        options.out(f"GPU VM {vm.name} is already running: nothing to do")
        return
    if state in GONE:
        raise _failed(f"the GPU VM {vm.name} is {state}", "deploy again to rebuild it")
    if state in ("suspended", "suspending"):
        raise _failed(
            f"the GPU VM {vm.name} is {state}",
            "resume it in the cloud console (gcloud compute instances resume)",
        )
    if state == "stopping":  # the cloud refuses a start until the stop is done
        options.out(f"the GPU VM {vm.name} is stopping: waiting for that first")
        wait_for(vm, "stopped", options, started)
        state = "stopped"
    if state == "stopped":
        options.out(f"starting the GPU VM {vm.name}")
        vm.start()
    wait_for(vm, "running", options, started)
    options.out(
        f"GPU VM {vm.name} running; the model server needs a minute or two to load the model "
        "(`duoctl status` shows when it answers)"
    )


def aws_client(region: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client("ec2", region_name=region)


def gcp_client() -> Any:
    from google.cloud import compute_v1

    return compute_v1.InstancesClient(transport="rest")


def vm_of(deployment: Deployment, settings: DeploySettings, client: Callable[[], Any] | None) -> Vm:
    instance = deployment.model.instance
    if not instance:
        raise DuoctlError(
            "the deployment records no instance for the GPU VM",
            "run the deploy again from the inventory step (--from inventory)",
        )
    if deployment.target == "aws":
        return Ec2Vm((client or (lambda: aws_client(settings.region)))(), instance)
    zone = deployment.zone or settings.zone
    if not zone or not settings.project:
        raise DuoctlError(
            "the deployment records no zone or project for the GPU VM",
            "run the deploy again from the inventory step (--from inventory)",
        )
    return ComputeVm((client or gcp_client)(), settings.project, zone, instance)


def run(options: GpuOptions) -> int:
    """`duoctl gpu stop|start`."""
    if options.timeout <= 0:
        raise DuoctlError(f"--timeout {options.timeout} is not positive", "pass e.g. --timeout 900")
    try:
        found = inputs.load(StatusOptions(name=options.name, deploy_dir=options.deploy_dir))
    except DuoctlError as exc:
        if exc.message.startswith("no deployment"):  # the fix names status's --inventory
            raise DuoctlError(exc.message, exc.fix.split(", or --inventory")[0]) from None
        raise
    if found.deployment.target == "hosts":
        raise DuoctlError(
            f"{found.folder.name} runs on your own hosts: duoctl does not stop or start them",
            "stop the model server's host the way you manage it",
        )
    if found.settings is None:
        raise DuoctlError(
            f"{found.folder.settings_file} is missing: the cloud and region are unknown",
            "run the deploy again (it writes settings.yml)",
        )
    vm = vm_of(found.deployment, found.settings, options.client)
    try:
        (stop if options.action == "stop" else start)(vm, options)
    except DuoctlError:
        raise
    except Exception as exc:  # the cloud's refusal: no credentials, no permission, throttled
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise _failed(
            f"the cloud refused to {options.action} the GPU VM {vm.name}: "
            f"{type(exc).__name__}: {first}",
            "check the cloud credentials (aws sts get-caller-identity / gcloud auth list)",
        ) from None
    schedule = found.settings.gpu_schedule
    if schedule is not None:
        options.out(f"its office hours still apply: {schedule.describe()}")
    return EXIT_OK
