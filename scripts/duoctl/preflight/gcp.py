"""Google Cloud preflight: credentials and project, region and zone, machine types and the T4
offered in the zone, GPU quotas (regional NVIDIA_T4_GPUS and global GPUS_ALL_REGIONS)."""

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
from duoctl.settings import GCP_GPU_TYPE, DeploySettings

REGIONAL_GPU_QUOTA = "NVIDIA_T4_GPUS"
GLOBAL_GPU_QUOTA = "GPUS_ALL_REGIONS"
GPUS_NEEDED = 1
QUOTA_IDS = {  # Cloud Quotas IDs of the two metrics (gcloud beta quotas info list shows them)
    REGIONAL_GPU_QUOTA: "NVIDIA-T4-GPUS-per-project-region",
    GLOBAL_GPU_QUOTA: "GPUS-ALL-REGIONS-per-project",
}


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
    dims = f" --dimensions=region={settings.region}" if metric == REGIONAL_GPU_QUOTA else ""
    where = f"region {settings.region}" if metric == REGIONAL_GPU_QUOTA else "global"
    return (
        f"request {metric} ({where}) >= {needed}: console https://console.cloud.google.com/"
        f"iam-admin/quotas?project={project} (filter {metric}, Edit quotas), or\n"
        f"gcloud beta quotas preferences create --service=compute.googleapis.com "
        f"--project={project} --quota-id={QUOTA_IDS[metric]}{dims} --preferred-value={needed}\n"
        "(a free-trial account must upgrade to a paid billing account first)"
    )


def _quota(quotas: Any, metric: str) -> tuple[float, float] | None:
    for quota in quotas:
        if quota.metric == metric:
            return float(quota.limit), float(quota.usage)
    return None


def check_quota(quotas: Any, metric: str, settings: DeploySettings) -> CheckResult:
    scope = settings.region if metric == REGIONAL_GPU_QUOTA else "all regions"
    name = f"gpu quota {metric}"
    found = _quota(quotas, metric)
    if found is None:
        return failed(
            name, f"no {metric} quota in {scope}", quota_fix(metric, settings, GPUS_NEEDED)
        )
    limit, usage = found
    detail = f"{scope}: limit {limit:g}, in use {usage:g}; the Ollama VM needs {GPUS_NEEDED} T4"
    if limit - usage < GPUS_NEEDED:
        return failed(name, detail, quota_fix(metric, settings, int(usage) + GPUS_NEEDED))
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


def _offers(clients: ComputeClients, project: str, zone: str, types: list[str]) -> list[str]:
    """What of the machine types and the T4 the zone does NOT offer."""
    missing = []
    for machine_type in types:
        try:
            clients.machine_types.get(project=project, zone=zone, machine_type=machine_type)
        except gexc.NotFound:
            missing.append(machine_type)
    accelerators = clients.accelerator_types.list(project=project, zone=zone)
    if GCP_GPU_TYPE not in {a.name for a in accelerators}:
        missing.append(GCP_GPU_TYPE)
    return missing


def check_zone(clients: ComputeClients, settings: DeploySettings) -> CheckResult:
    name = "machine types"
    project, region = str(settings.project), settings.region
    types = sorted(set(settings.machine_types().values()))
    wanted = ", ".join([*types, GCP_GPU_TYPE])
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
            missing_by_zone[zone] = _offers(clients, project, zone, types)
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
            else _other_region_fix(region)
        )
        return failed(name, f"{', '.join(missing)} not offered in {settings.zone}", fix)
    if not fitting:
        return failed(
            name, f"no zone of {region} offers all of {wanted}", _other_region_fix(region)
        )
    found = passed(name, f"{wanted} offered in {fitting[0]} (first fitting zone)")
    return replace(found, value=fitting[0])


def _other_region_fix(region: str) -> str:
    return (
        "use another region (--region); see where the T4 is offered: gcloud compute "
        f"accelerator-types list --filter=name={GCP_GPU_TYPE} (this region: {region}). A "
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
        results.append(check_quota(region_found.quotas, REGIONAL_GPU_QUOTA, settings))
    results.append(check_quota(found.quotas, GLOBAL_GPU_QUOTA, settings))
    results.append(domain_plan(settings))
    return results
