"""The cloud's view of the GPU VM, read-only: EC2 DescribeInstances, or Compute Engine
instances.get. A stopped VM whose office hours (settings gpu_schedule, `schedule_of`) have it
stopped now is "stopped by schedule", not down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from duoctl.schedule import GpuSchedule, off_hours
from duoctl.settings import DeploySettings
from duoctl.status.model import GpuVm, State

RUNNING = {"aws": "running", "gcp": "RUNNING"}
GCP_WORDS = {"TERMINATED": "stopped"}  # Compute Engine's word for a stopped VM
STOPPED = {"stopped", "stopping", "TERMINATED", "STOPPING", "SUSPENDED", "SUSPENDING"}


def schedule_of(settings: DeploySettings) -> GpuSchedule | None:
    """The settings' stop/start schedule of the GPU VM, when they have one."""
    return settings.gpu_schedule


def aws_client(region: str, timeout: float) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
    return boto3.client("ec2", region_name=region, config=config)


def gcp_client() -> Any:
    from google.cloud import compute_v1

    return compute_v1.InstancesClient(transport="rest")


def aws_state(ec2: Any, instance: str) -> tuple[str, str]:
    """(state, instance type) of an EC2 instance."""
    answer = ec2.describe_instances(InstanceIds=[instance])
    found = [i for r in answer.get("Reservations") or [] for i in r.get("Instances") or []]
    if not found:
        return "missing", ""
    return str(found[0]["State"]["Name"]), str(found[0].get("InstanceType") or "")


def gcp_state(
    client: Any, project: str, zone: str, instance: str, timeout: float
) -> tuple[str, str]:
    """(status, machine type) of a Compute Engine instance."""
    answer = client.get(project=project, zone=zone, instance=instance, timeout=timeout)
    return str(answer.status), str(answer.machine_type or "").rsplit("/", 1)[-1]


def gpu_vm_view(
    settings: DeploySettings | None,
    cloud: str,
    instance: str | None,
    zone: str | None,
    timeout: float,
    client: Callable[[], Any] | None = None,
) -> GpuVm:
    """The GPU VM's state as its cloud reports it; never raises (a failure is `unknown`)."""
    if settings is None or not instance:
        what = "no settings.yml" if settings is None else "no instance id in the deployment"
        return GpuVm(instance=instance, state="unknown", up="unknown", reason=what)
    try:
        if cloud == "aws":
            state, machine_type = aws_state(
                (client or (lambda: aws_client(settings.region, timeout)))(), instance
            )
        else:
            api = (client or gcp_client)()
            where = zone or settings.zone or ""
            state, machine_type = gcp_state(api, str(settings.project), where, instance, timeout)
    except Exception as exc:  # no credentials, no network, no such VM: shown, not raised
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return GpuVm(instance=instance, state="unknown", up="unknown", reason=reason[:300])
    up: State = "up" if state == RUNNING.get(cloud) else "down"
    state = GCP_WORDS.get(state, state.lower())
    scheduled = up == "down" and state in STOPPED and off_hours(schedule_of(settings))
    return GpuVm(
        instance=instance,
        machine_type=machine_type or None,
        state=state,
        up=up,
        reason="" if up == "up" else f"the VM is {state}",
        stopped_by_schedule=scheduled,
    )
