"""AWS preflight: credentials, region and zone, instance types offered, GPU quota, DNS zone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
)

from duoctl.preflight.checks import (
    CheckResult,
    check_admin_cidr,
    check_license,
    check_ssh_key,
    domain_plan,
    failed,
    passed,
)
from duoctl.settings import DeploySettings

GPU_QUOTA_CODE = "L-DB2E81BA"
GPU_QUOTA_NAME = "Running On-Demand G and VT instances"
P_QUOTA_CODE = "L-417A185B"
P_QUOTA_NAME = "Running On-Demand P instances"


def quota_of(instance_type: str) -> tuple[str, str, list[str]]:
    """The On-Demand vCPU quota an instance type counts against: code, name, and the instance
    type patterns that share it (g4dn, g5, g6, g6e: G and VT; p4d, p5: P)."""
    if instance_type.startswith("p"):
        return P_QUOTA_CODE, P_QUOTA_NAME, ["p*"]
    return GPU_QUOTA_CODE, GPU_QUOTA_NAME, ["g*", "vt*"]


SUGGESTED_GPU_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1")


def quota_request_command(desired: int, region: str, code: str = GPU_QUOTA_CODE) -> str:
    return (
        "aws service-quotas request-service-quota-increase --service-code ec2 "
        f"--quota-code {code} --desired-value {desired} --region {region}"
    )


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', exc)}"
    return str(exc)


def check_credentials(session: Any) -> CheckResult:
    name = "aws credentials"
    fix = (
        "configure credentials: aws configure (or set AWS_PROFILE / AWS_ACCESS_KEY_ID); "
        "for an SSO profile: aws sso login"
    )
    try:
        identity = session.client("sts").get_caller_identity()
    except NoCredentialsError:
        return failed(name, "no AWS credentials found", fix)
    except (ClientError, BotoCoreError) as exc:
        return failed(name, f"the credentials were refused ({_error(exc)})", fix)
    return passed(name, f"account {identity['Account']} as {identity['Arn']}")


def check_region(ec2: Any, region: str) -> CheckResult:
    name = "region"
    try:
        regions = ec2.describe_regions(AllRegions=True)["Regions"]
    except (ClientError, BotoCoreError) as exc:
        return failed(name, f"cannot list regions ({_error(exc)})", "check --region")
    status = {r["RegionName"]: r.get("OptInStatus", "opt-in-not-required") for r in regions}
    if region not in status:
        return failed(name, f"{region} is not an AWS region", "pass --region, e.g. us-east-1")
    if status[region] == "not-opted-in":
        return failed(
            name,
            f"{region} is not enabled for this account",
            f"enable it: aws account enable-region --region-name {region}, or pick another",
        )
    return passed(name, region)


def _offerings_by_zone(ec2: Any, types: list[str]) -> dict[str, set[str]]:
    zones: dict[str, set[str]] = {}
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": types}],
    )
    for page in pages:
        for offer in page["InstanceTypeOfferings"]:
            zones.setdefault(offer["Location"], set()).add(offer["InstanceType"])
    return zones


def check_instance_types(ec2: Any, settings: DeploySettings) -> tuple[CheckResult, str | None]:
    """Are the three instance types offered in one zone? Returns the result and the zone."""
    name = "instance types"
    types = sorted(set(settings.machine_types().values()))
    try:
        zone_names = sorted(
            z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]
        )
        by_zone = _offerings_by_zone(ec2, types)
    except (ClientError, BotoCoreError) as exc:
        return failed(name, f"cannot list offerings ({_error(exc)})", "check --region"), None
    fitting = [z for z in zone_names if by_zone.get(z, set()) >= set(types)]
    wanted = ", ".join(types)
    if settings.zone:
        if settings.zone not in zone_names:
            return failed(
                name,
                f"{settings.zone} is not a zone of {settings.region}",
                f"pass --zone with one of: {', '.join(zone_names)}",
            ), None
        missing = sorted(set(types) - by_zone.get(settings.zone, set()))
        if missing:
            fix = (
                f"use another zone: --zone {fitting[0]} (all offered in: {', '.join(fitting)})"
                if fitting
                else _other_region_fix(types, settings.region)
            )
            return failed(name, f"{', '.join(missing)} not offered in {settings.zone}", fix), None
        found = passed(name, f"{wanted} offered in {settings.zone}")
        return replace(found, value=settings.zone), settings.zone
    if not fitting:
        missing = sorted(t for t in types if not any(t in s for s in by_zone.values()))
        what = ", ".join(missing) if missing else "the three types together"
        detail = f"no zone of {settings.region} offers {what}"
        return failed(name, detail, _other_region_fix(types, settings.region)), None
    found = passed(name, f"{wanted} offered in {fitting[0]} (first fitting zone)")
    return replace(found, value=fitting[0]), fitting[0]


def _other_region_fix(types: list[str], region: str) -> str:
    others = ", ".join(r for r in SUGGESTED_GPU_REGIONS if r != region)
    return (
        f"use another region (--region), for example one of {others}; see where a type is "
        "offered: aws ec2 describe-instance-type-offerings --location-type availability-zone "
        f"--filters Name=instance-type,Values={','.join(types)} --region REGION"
    )


def _quota_value(quotas: Any, code: str = GPU_QUOTA_CODE) -> float:
    try:
        answer = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
        answer = quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)
    return float(answer["Quota"]["Value"])


def _gpu_vcpus_in_use(ec2: Any, patterns: list[str] | None = None) -> int:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
            {"Name": "instance-type", "Values": patterns or ["g*", "vt*"]},
        ]
    )
    used = 0
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                cpu = instance.get("CpuOptions", {})
                used += int(cpu.get("CoreCount", 0)) * int(cpu.get("ThreadsPerCore", 1))
    return used


def check_gpu_quota(session: Any, ec2: Any, settings: DeploySettings) -> CheckResult:
    """The vCPUs of the GPU instance type against its family's On-Demand quota (G and VT for
    g4dn/g5/g6/g6e, P for p4d/p5), minus what running instances of that family use."""
    gpu_type = settings.machine_types()["ollama"]
    code, quota_name, patterns = quota_of(gpu_type)
    name = f"gpu quota {code}"
    region = settings.region
    try:
        info = ec2.describe_instance_types(InstanceTypes=[gpu_type])["InstanceTypes"][0]
        needed = int(info["VCpuInfo"]["DefaultVCpus"])
        limit = _quota_value(session.client("service-quotas"), code)
        in_use = _gpu_vcpus_in_use(ec2, patterns)
    except (ClientError, BotoCoreError) as exc:
        return failed(
            name,
            f"cannot read the quota ({_error(exc)})",
            f"check it by hand: aws service-quotas get-service-quota --service-code ec2 "
            f"--quota-code {code} --region {region}",
        )
    free = limit - in_use
    detail = (
        f'"{quota_name}" in {region}: {limit:g} vCPUs, {in_use} in use; {gpu_type} needs {needed}'
    )
    if free < needed:
        desired = int(in_use + needed)
        return failed(
            name,
            detail,
            f"request an increase (approval can take hours on a new account):\n"
            f"{quota_request_command(desired, region, code)}",
        )
    return passed(name, detail)


def check_domain(session: Any, settings: DeploySettings) -> CheckResult:
    if settings.domain_plan() != "managed_zone":
        return domain_plan(settings)
    name = "domain"
    zone_id = str(settings.managed_zone)
    try:
        zone = session.client("route53").get_hosted_zone(Id=zone_id)["HostedZone"]
    except (ClientError, BotoCoreError) as exc:
        return failed(
            name,
            f"Route 53 hosted zone {zone_id} not found ({_error(exc)})",
            "list yours: aws route53 list-hosted-zones; or drop --managed-zone and create the "
            "record yourself",
        )
    zone_name = str(zone["Name"]).rstrip(".")
    if not settings.domain:
        return failed(
            name,
            f"a managed zone ({zone_name}) needs a host name in it",
            f"pass --domain, for example --domain gitlab.{zone_name}",
        )
    if not (settings.domain == zone_name or settings.domain.endswith("." + zone_name)):
        return failed(
            name,
            f"{settings.domain} is not inside zone {zone_name}",
            f"pass --domain gitlab.{zone_name} or the zone that holds {settings.domain}",
        )
    return domain_plan(settings, zone_detail=zone_name)


def run_checks(settings: DeploySettings, session: Any | None = None) -> list[CheckResult]:
    """Every AWS preflight check. boto3 honours AWS_PROFILE, AWS_ENDPOINT_URL and friends."""
    session = session or boto3.session.Session(region_name=settings.region)
    results = [
        check_ssh_key(settings.ssh_public_key_file),
        check_admin_cidr(settings.admin_cidr),
        check_license(settings.license_file, settings.activation_code_file),
    ]
    credentials = check_credentials(session)
    results.append(credentials)
    if not credentials.ok:
        return results
    ec2 = session.client("ec2")
    region = check_region(ec2, settings.region)
    results.append(region)
    if region.ok:
        offered, _zone = check_instance_types(ec2, settings)
        results += [offered, check_gpu_quota(session, ec2, settings)]
    results.append(check_domain(session, settings))
    return results
