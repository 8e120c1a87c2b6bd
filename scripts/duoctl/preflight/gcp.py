"""Google Cloud preflight: credentials and project, region and zone, machine types and the GPU
offered in the zone, GPU quotas (the accelerator's regional quota, NVIDIA_T4_GPUS for the
default T4, and global GPUS_ALL_REGIONS). The accelerator follows the model server's machine
type: built into A2 (A100) and G2 (L4), a T4 attached to N1."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as gauth_exc
from google.cloud import compute_v1

from duoctl.preflight.checks import (
    CheckResult,
    check_admin_cidr,
    check_license,
    check_ssh_key,
    domain_plan,
    failed,
    passed,
)
from duoctl.serving import GCP_GPU_QUOTAS, gcp_accelerator
from duoctl.settings import DeploySettings

REGIONAL_GPU_QUOTA = "NVIDIA_T4_GPUS"
GLOBAL_GPU_QUOTA = "GPUS_ALL_REGIONS"
GPUS_NEEDED = 1


def quota_id(metric: str) -> str:
    """The Cloud Quotas ID of a quota metric (gcloud beta quotas info list shows them):
    NVIDIA_L4_GPUS -> NVIDIA-L4-GPUS-per-project-region, GPUS_ALL_REGIONS -> ...-per-project."""
    scope = "per-project" if metric == GLOBAL_GPU_QUOTA else "per-project-region"
    return f"{metric.replace('_', '-')}-{scope}"


QUOTA_IDS = {metric: quota_id(metric) for metric in (*GCP_GPU_QUOTAS.values(), GLOBAL_GPU_QUOTA)}


def gpu_of(settings: DeploySettings) -> tuple[str, int, str]:
    """The model server VM's accelerator type, count, and regional quota metric."""
    accelerator, count = gcp_accelerator(settings.machine_types()["ollama"])
    return accelerator, count, GCP_GPU_QUOTAS.get(accelerator, REGIONAL_GPU_QUOTA)


@dataclass
class ComputeClients:
    """The Compute Engine REST clients preflight uses."""

    projects: Any
    regions: Any
    zones: Any
    machine_types: Any
    accelerator_types: Any

    @classmethod
    def connect(cls, credentials: Any = None, api_endpoint: str | None = None) -> ComputeClients:
        """Clients with the given credentials (default: Application Default Credentials) and
        endpoint (default: compute.googleapis.com; set for a private or restricted endpoint)."""
        options = {"api_endpoint": api_endpoint} if api_endpoint else None
        kwargs: dict[str, Any] = {"credentials": credentials, "client_options": options}
        kwargs["transport"] = "rest"
        return cls(
            projects=compute_v1.ProjectsClient(**kwargs),
            regions=compute_v1.RegionsClient(**kwargs),
            zones=compute_v1.ZonesClient(**kwargs),
            machine_types=compute_v1.MachineTypesClient(**kwargs),
            accelerator_types=compute_v1.AcceleratorTypesClient(**kwargs),
        )


def _error(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"


def quota_fix(metric: str, settings: DeploySettings, needed: int) -> str:
    project = settings.project
    regional = metric != GLOBAL_GPU_QUOTA
    dims = f" --dimensions=region={settings.region}" if regional else ""
    where = f"region {settings.region}" if regional else "global"
    return (
        f"request {metric} ({where}) >= {needed}: console https://console.cloud.google.com/"
        f"iam-admin/quotas?project={project} (filter {metric}, Edit quotas), or\n"
        f"gcloud beta quotas preferences create --service=compute.googleapis.com "
        f"--project={project} --quota-id={quota_id(metric)}{dims} --preferred-value={needed}\n"
        "(a free-trial account must upgrade to a paid billing account first)"
    )


def _quota(quotas: Any, metric: str) -> tuple[float, float] | None:
    for quota in quotas:
        if quota.metric == metric:
            return float(quota.limit), float(quota.usage)
    return None


def check_quota(quotas: Any, metric: str, settings: DeploySettings) -> CheckResult:
    """The model server VM's GPUs against a quota: its accelerator's regional metric, or the
    global GPUS_ALL_REGIONS."""
    scope = "all regions" if metric == GLOBAL_GPU_QUOTA else settings.region
    accelerator, needed, _metric = gpu_of(settings)
    name = f"gpu quota {metric}"
    found = _quota(quotas, metric)
    if found is None:
        return failed(name, f"no {metric} quota in {scope}", quota_fix(metric, settings, needed))
    limit, usage = found
    detail = (
        f"{scope}: limit {limit:g}, in use {usage:g}; the model server VM needs "
        f"{needed} {accelerator}"
    )
    if limit - usage < needed:
        return failed(name, detail, quota_fix(metric, settings, int(usage) + needed))
    return passed(name, detail)


def check_project(clients: ComputeClients, project: str) -> tuple[CheckResult, Any]:
    name = "gcp project"
    try:
        found = clients.projects.get(project=project)
    except gexc.Forbidden as exc:
        return failed(
            name,
            f"no access to Compute Engine in {project} ({_error(exc)})",
            f"enable the API: gcloud services enable compute.googleapis.com --project {project}; "
            "and grant your account roles/compute.admin",
        ), None
    except gexc.NotFound as exc:
        return failed(
            name,
            f"project {project} not found ({_error(exc)})",
            "pass --project with a project ID from: gcloud projects list",
        ), None
    except gexc.GoogleAPIError as exc:
        return failed(name, f"cannot read project {project} ({_error(exc)})", "retry"), None
    except gauth_exc.RefreshError as exc:
        return failed(
            "gcp credentials",
            f"the credentials were refused or expired ({exc})",
            "log in again: gcloud auth application-default login",
        ), None
    except (gauth_exc.TransportError, requests.RequestException) as exc:
        return failed(
            name, f"Compute Engine API unreachable ({_error(exc)})", "check the network/proxy"
        ), None
    return passed(name, f"project {found.name}"), found


def check_region(clients: ComputeClients, settings: DeploySettings) -> tuple[CheckResult, Any]:
    name = "region"
    try:
        region = clients.regions.get(project=settings.project, region=settings.region)
    except gexc.NotFound:
        return failed(
            name,
            f"{settings.region} is not a Compute Engine region",
            "pass --region, e.g. europe-west4 (list: gcloud compute regions list)",
        ), None
    except gexc.GoogleAPIError as exc:
        return failed(name, f"cannot read {settings.region} ({_error(exc)})", "retry"), None
    if region.status != "UP":
        return failed(name, f"{settings.region} is {region.status}", "pick another region"), None
    return passed(name, settings.region), region


def _offers(
    clients: ComputeClients, project: str, zone: str, types: list[str], accelerator: str
) -> list[str]:
    """What of the machine types and the accelerator the zone does NOT offer."""
    missing = []
    for machine_type in types:
        try:
            clients.machine_types.get(project=project, zone=zone, machine_type=machine_type)
        except gexc.NotFound:
            missing.append(machine_type)
    accelerators = clients.accelerator_types.list(project=project, zone=zone)
    if accelerator not in {a.name for a in accelerators}:
        missing.append(accelerator)
    return missing


def check_zone(clients: ComputeClients, settings: DeploySettings) -> CheckResult:
    name = "machine types"
    project, region = str(settings.project), settings.region
    types = sorted(set(settings.machine_types().values()))
    accelerator = gpu_of(settings)[0]
    wanted = ", ".join([*types, accelerator])
    try:
        zones = sorted(
            z.name
            for z in clients.zones.list(project=project)
            if z.region.rstrip("/").rsplit("/", 1)[-1] == region and z.status == "UP"
        )
        if settings.zone and settings.zone not in zones:
            return failed(
                name,
                f"{settings.zone} is not an available zone of {region}",
                f"pass --zone with one of: {', '.join(zones)}",
            )
        # The chosen zone first; the others only until one fits (each zone costs 4 calls).
        order = (
            [settings.zone, *(z for z in zones if z != settings.zone)] if settings.zone else zones
        )
        missing_by_zone: dict[str, list[str]] = {}
        for zone in order:
            missing_by_zone[zone] = _offers(clients, project, zone, types, accelerator)
            if not missing_by_zone[zone]:
                break
    except gexc.GoogleAPIError as exc:
        return failed(name, f"cannot list the zones of {region} ({_error(exc)})", "retry")
    fitting = [z for z in zones if z in missing_by_zone and not missing_by_zone[z]]
    if settings.zone:
        missing = missing_by_zone[settings.zone]
        if not missing:
            return replace(
                passed(name, f"{wanted} offered in {settings.zone}"), value=settings.zone
            )
        fix = (
            f"use another zone: --zone {fitting[0]} (all offered in: {', '.join(fitting)})"
            if fitting
            else _other_region_fix(region, accelerator)
        )
        return failed(name, f"{', '.join(missing)} not offered in {settings.zone}", fix)
    if not fitting:
        return failed(
            name,
            f"no zone of {region} offers all of {wanted}",
            _other_region_fix(region, accelerator),
        )
    found = passed(name, f"{wanted} offered in {fitting[0]} (first fitting zone)")
    return replace(found, value=fitting[0])


def _other_region_fix(region: str, accelerator: str) -> str:
    return (
        f"use another region (--region); see where {accelerator} is offered: gcloud compute "
        f"accelerator-types list --filter=name={accelerator} (this region: {region}). A "
        "ZONE_RESOURCE_POOL_EXHAUSTED error at apply time also means: try another zone"
    )


def _default_clients() -> tuple[ComputeClients | None, CheckResult]:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    name = "gcp credentials"
    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except DefaultCredentialsError as exc:
        return None, failed(
            name,
            f"no Application Default Credentials ({exc})",
            "gcloud auth application-default login (or set GOOGLE_APPLICATION_CREDENTIALS)",
        )
    return ComputeClients.connect(credentials), passed(name, "Application Default Credentials")


def run_checks(
    settings: DeploySettings, clients: ComputeClients | None = None
) -> list[CheckResult]:
    """Every Google Cloud preflight check; `clients` default to ADC and the public endpoint."""
    results = [
        check_ssh_key(settings.ssh_public_key_file),
        check_admin_cidr(settings.admin_cidr),
        check_license(settings.license_file, settings.activation_code_file),
    ]
    if clients is None:
        clients, credentials = _default_clients()
        results.append(credentials)
        if clients is None:
            return results
    project, found = check_project(clients, str(settings.project))
    results.append(project)
    if found is None:
        return results
    region, region_found = check_region(clients, settings)
    results.append(region)
    if region_found is not None:
        results.append(check_zone(clients, settings))
        results.append(check_quota(region_found.quotas, gpu_of(settings)[2], settings))
    results.append(check_quota(found.quotas, GLOBAL_GPU_QUOTA, settings))
    results.append(domain_plan(settings))
    return results
