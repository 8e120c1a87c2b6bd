"""The step lists: a cloud deploy's eight steps and own hosts' four."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from duoctl import serving
from duoctl.deploy.cloud import InventoryStep, PreflightStep, TerraformStep
from duoctl.deploy.duo_step import DuoStep
from duoctl.deploy.playbooks import PlaybookStep
from duoctl.deploy.verify_step import VerifyStep
from duoctl.deploy.wait import WaitDnsStep, WaitSshStep, cloud_host_keys
from duoctl.pipeline import Step
from duoctl.settings import DeploySettings, activation_code_path, private_key_of

CLOUD_STEPS = (
    "preflight",
    "terraform",
    "inventory",
    "wait_ssh",
    "wait_dns",
    "site",
    "duo",
    "verify",
)
HOSTS_STEPS = ("wait_ssh", "site", "duo", "verify")


def cloud_steps(settings: DeploySettings) -> list[Step]:
    private = private_key_of(settings.ssh_public_key_file)
    return [
        PreflightStep(),
        TerraformStep(),
        InventoryStep(),
        WaitSshStep(
            key_file=private,
            host_keys=cloud_host_keys(settings.cloud, settings.region, settings.project),
        ),
        WaitDnsStep(),
        PlaybookStep(
            "site",
            "ansible/playbooks/site.yml",
            extra_vars=site_vars(settings),
            private_key=private,
        ),
        DuoStep(activation_code_file=activation_code_path(settings.activation_code_file)),
        VerifyStep(private_key=private),
    ]


def site_vars(settings: DeploySettings) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "gitlab_tls_mode": "letsencrypt" if settings.letsencrypt else "selfsigned"
    }
    if settings.license_file:
        extra["gitlab_license_file"] = str(Path(settings.license_file).expanduser().resolve())
    preset = settings.preset()
    if preset is not None:  # the model, its engine arguments and port, from the preset
        extra.update(serving.vllm_role_vars(preset))
    else:  # Ollama: as many parallel requests as the GPU's memory holds
        gpu_type = settings.machine_types()["ollama"]
        extra.update(serving.ollama_role_vars(settings.cloud, gpu_type))
    return extra


def hosts_steps(
    activation_code_file: str | None = None, preset: serving.Preset | None = None
) -> list[Step]:
    """Own hosts: the activation code file is checked here, before any step runs. With vLLM,
    the preset gives the role's model and engine arguments and GitLab's registration."""
    extra = serving.vllm_role_vars(preset) if preset is not None else {}
    return [
        WaitSshStep(),
        PlaybookStep("site", "ansible/playbooks/site.yml", extra_vars=extra),
        DuoStep(activation_code_file=activation_code_path(activation_code_file), preset=preset),
        VerifyStep(),
    ]
