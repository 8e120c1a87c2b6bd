"""The step lists: a cloud deploy's eight steps and own hosts' four."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from duoctl.deploy.cloud import InventoryStep, PreflightStep, TerraformStep
from duoctl.deploy.playbooks import PlaybookStep, tool_path
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
            extra_vars=_site_vars(settings),
            private_key=private,
        ),
        PlaybookStep(
            "duo",
            "ansible/playbooks/duo.yml",
            extra_vars=_duo_vars(settings.activation_code_file),
            private_key=private,
        ),
        VerifyStep(private_key=private),
    ]


def _site_vars(settings: DeploySettings) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "gitlab_tls_mode": "letsencrypt" if settings.letsencrypt else "selfsigned"
    }
    if settings.license_file:
        extra["gitlab_license_file"] = str(Path(settings.license_file).expanduser().resolve())
    return extra


def _duo_vars(activation_code_file: str | None = None) -> dict[str, Any]:
    """duo.yml runs `duoctl configure`: this environment's duoctl, whatever PATH holds; with
    the activation code file's absolute path when one is given (checked before any step)."""
    extra: dict[str, Any] = {"duo_duoctl_executable": tool_path("duoctl")}
    code_file = activation_code_path(activation_code_file)
    if code_file:
        extra["duo_activation_code_file"] = code_file
    return extra


def hosts_steps(activation_code_file: str | None = None) -> list[Step]:
    return [
        WaitSshStep(),
        PlaybookStep("site", "ansible/playbooks/site.yml"),
        PlaybookStep(
            "duo", "ansible/playbooks/duo.yml", extra_vars=_duo_vars(activation_code_file)
        ),
        VerifyStep(),
    ]
