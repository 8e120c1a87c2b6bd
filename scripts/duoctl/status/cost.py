"""What the deployment costs an hour and a month: the GPU VM's list price (duoctl.serving).

Only the GPU VM is priced (it is most of the bill); the GitLab and gateway VMs, disks, traffic
and addresses are not, which the note says. A month is 730 hours (8760 / 12).
"""

from __future__ import annotations

from duoctl import serving
from duoctl.settings import DeploySettings
from duoctl.status.model import Cost

HOURS_PER_MONTH = 730
NOTE = "GPU VM on demand only (list price); GitLab and gateway VMs, disks and traffic not included"


def gpu_machine_type(settings: DeploySettings) -> str:
    """The model server's instance/machine type: the vLLM preset's VM, else the Ollama type."""
    if settings.serving == "vllm":
        preset = serving.preset(settings.model_preset or serving.DEFAULT_PRESET)
        machine_type = preset.machine_types.get(settings.cloud)
        if machine_type:
            return machine_type
    return settings.machine_types()["ollama"]


def cost_of(cloud: str, machine_type: str) -> Cost:
    vm = serving.gpu_vm(cloud, machine_type)
    if vm is None or not vm.hourly_usd:
        return Cost(machine_type=machine_type, note=f"no price known for {machine_type}")
    hourly = round(vm.hourly_usd, 3)
    return Cost(
        machine_type=machine_type,
        hourly_usd=hourly,
        monthly_usd=round(vm.hourly_usd * HOURS_PER_MONTH, 2),
        note=NOTE,
    )
