"""The one case verify does not verify: the GPU VM is stopped and its office hours say so.

A cloud deployment's folder holds the inventory and settings.yml side by side; when the
settings carry a GPU schedule that has the VM stopped now, the cloud is asked for the VM's state
(as `duoctl status` does). Stopped: verify says "GPU VM stopped by schedule" and passes, rather
than failing every check that needs the model. Anything else (no schedule, office hours, the VM
running, the cloud not answering) lets verify run as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from duoctl.deployment import Deployment
from duoctl.errors import DuoctlError
from duoctl.schedule import off_hours
from duoctl.settings import DeploySettings, load_saved
from duoctl.status.cloud import gpu_vm_view


def stopped_by_schedule(
    inventory: Path,
    client: Callable[[], Any] | None = None,
    now: datetime | None = None,
    timeout: float = 10.0,
) -> str | None:
    """The line to show when the GPU VM is stopped by its schedule; None otherwise."""
    settings_file = inventory.absolute().parent / "settings.yml"
    if not settings_file.is_file():
        return None
    try:
        settings = DeploySettings.model_validate(load_saved(settings_file))
        deployment = Deployment.from_inventory(inventory)
    except (DuoctlError, ValueError):
        return None  # verify reports what is wrong with them its own way
    schedule = settings.gpu_schedule
    if deployment.target == "hosts" or not off_hours(schedule, now):
        return None
    vm = gpu_vm_view(
        settings, deployment.target, deployment.model.instance, deployment.zone, timeout, client
    )
    if not vm.stopped_by_schedule or schedule is None:
        return None
    return (
        f"GPU VM stopped by schedule ({vm.instance}, {vm.state}; office hours: "
        f"{schedule.describe()}): nothing to verify until it starts again; "
        "`duoctl gpu start` starts it now"
    )
