"""`duoctl preflight`, `duoctl deploy` and `duoctl destroy`.

Cloud deploy: preflight -> terraform -> inventory -> wait_ssh -> wait_dns -> site -> duo -> verify.
Own hosts (`deploy hosts --inventory FILE`): wait_ssh -> site -> duo -> verify.
Each step takes its targets (tool paths, working directories, resolvers) as arguments, so the
same classes run against a cloud or against local stand-ins.

Modules: cloud (preflight, terraform, inventory), wait (SSH, DNS), playbooks (site),
duo_step (configure, in-process), verify_step (verify, in-process), state (the typed
deployment the steps share), steps (the step lists), commands (the CLI entry points).
"""

from duoctl.deploy.cloud import (
    InventoryStep,
    PreflightStep,
    TerraformStep,
    output_value,
    terraform_variables,
)
from duoctl.deploy.commands import (
    DeploymentOptions,
    deploy_main,
    destroy_main,
    load_settings,
    preflight_main,
)
from duoctl.deploy.duo_step import DuoStep
from duoctl.deploy.playbooks import PlaybookStep, ansible_failures, tool_path
from duoctl.deploy.steps import CLOUD_STEPS, HOSTS_STEPS, cloud_steps, hosts_steps
from duoctl.deploy.verify_step import VerifyStep
from duoctl.deploy.wait import WaitDnsStep, WaitSshStep, cloud_host_keys, probe_ssh

__all__ = [
    "CLOUD_STEPS",
    "HOSTS_STEPS",
    "DeploymentOptions",
    "DuoStep",
    "InventoryStep",
    "PlaybookStep",
    "PreflightStep",
    "TerraformStep",
    "VerifyStep",
    "WaitDnsStep",
    "WaitSshStep",
    "ansible_failures",
    "cloud_host_keys",
    "cloud_steps",
    "deploy_main",
    "destroy_main",
    "hosts_steps",
    "load_settings",
    "output_value",
    "preflight_main",
    "probe_ssh",
    "terraform_variables",
    "tool_path",
]
