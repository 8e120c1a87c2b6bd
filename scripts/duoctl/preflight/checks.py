"""Preflight result type, the checks that do not depend on a cloud, and the one renderer."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from duoctl.config import ActivationCodeError, read_activation_code_file
from duoctl.settings import WILDCARD_DNS_SUFFIX, DeploySettings, check_ipv4_cidr

# Narrowest prefix accepted for the SSH allow-list: a /16 is 65536 addresses; wider is an error.
WIDEST_ADMIN_PREFIX = 16
# Never a deployer's internet address: RFC 1918, CGNAT, loopback, link-local.
INTERNAL_NETWORKS = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
    )
)
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


@dataclass(frozen=True)
class CheckResult:
    """One preflight check: its name, whether it passed, what was found, and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    value: str | None = None  # what the check chose, for later steps (e.g. the zone)


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, detail)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, False, detail, fix)


def all_ok(results: Sequence[CheckResult]) -> bool:
    return all(r.ok for r in results)


def render(results: Sequence[CheckResult], as_json: bool = False) -> str:
    if as_json:
        body = {"ok": all_ok(results), "checks": [asdict(r) for r in results]}
        return json.dumps(body, indent=2)
    lines = []
    for r in results:
        lines.append(f"[{'ok' if r.ok else 'FAIL'}] {r.name}: {r.detail}")
        if not r.ok and r.fix:
            lines.extend(f"       fix: {line}" for line in r.fix.splitlines())
    failures = sum(not r.ok for r in results)
    lines.append(
        "preflight passed" if not failures else f"preflight failed: {failures} check(s) to fix"
    )
    return "\n".join(lines)


def check_ssh_key(path: str) -> CheckResult:
    name = "ssh key"
    file = Path(path).expanduser()
    create = (
        "create one with: ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519 "
        "(then --ssh-key ~/.ssh/id_ed25519.pub)"
    )
    if not file.is_file():
        return failed(name, f"{path} does not exist", create)
    try:
        fields = file.read_text(encoding="utf-8").strip().split()
    except (OSError, UnicodeDecodeError) as exc:
        return failed(name, f"{path} cannot be read ({exc})", create)
    if "PRIVATE KEY" in " ".join(fields):
        return failed(name, f"{path} is a private key", "pass the public key: the .pub file")
    if len(fields) < 2 or fields[0] not in SSH_KEY_TYPES:
        return failed(name, f"{path} is not an OpenSSH public key line", create)
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        return failed(name, f"{path}: the key data is not valid base64", create)
    # The blob starts with the key type again, as a length-prefixed string (RFC 4253).
    if blob[4 : 4 + int.from_bytes(blob[:4], "big")] != fields[0].encode():
        return failed(name, f"{path}: the key data does not match its type {fields[0]}", create)
    return passed(name, f"{path} ({fields[0]})")


def check_license(license_file: str | None, activation_code_file: str | None = None) -> CheckResult:
    name = "license"
    if activation_code_file:
        try:
            read_activation_code_file(activation_code_file)
        except ActivationCodeError as exc:
            fix = "put the activation code from the Customers Portal (24 characters) in the file"
            return failed(name, f"--activation-code-file: {exc}", fix)
    if license_file:
        file = Path(license_file).expanduser()
        fix = "pass the .gitlab-license file of a subscription with GitLab Duo Enterprise"
        try:
            text = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            return failed(name, f"{license_file} cannot be read ({exc})", fix)
        if not text:
            return failed(name, f"{license_file} is empty", fix)
    if activation_code_file:
        return passed(
            name,
            f"activation code in {activation_code_file}: the duo step activates it online, "
            "which provisions GitLab Duo Enterprise at once",
        )
    if license_file:
        return passed(name, f"{license_file} is installed on GitLab by the site step")
    return passed(
        name,
        "neither --activation-code-file nor --license-file: GitLab must already hold a license "
        "with GitLab Duo Enterprise (activate it in Admin > Subscription) before the duo step "
        "configures it",
    )


def check_admin_cidr(cidr: str) -> CheckResult:
    name = "admin cidr"
    example = "--admin-cidr 198.51.100.7/32 (your workstation's public address)"
    try:
        check_ipv4_cidr(cidr)  # the rule the settings and Terraform's validation apply too
    except ValueError as exc:
        return failed(name, str(exc), f"pass {example}")
    network = ipaddress.IPv4Network(cidr)
    if network.prefixlen < WIDEST_ADMIN_PREFIX:
        return failed(
            name,
            f"{cidr} allows {network.num_addresses} addresses to reach SSH (wider than "
            f"/{WIDEST_ADMIN_PREFIX})",
            f"narrow it: {example}",
        )
    if any(network.subnet_of(internal) for internal in INTERNAL_NETWORKS):
        return failed(
            name,
            f"{cidr} is a private, loopback or link-local range; SSH comes from your public "
            "address",
            f"pass {example}",
        )
    return passed(name, f"SSH allowed from {network} ({network.num_addresses} address(es))")


def domain_plan(settings: DeploySettings, zone_detail: str = "") -> CheckResult:
    """Informational: how GitLab's name will resolve. Cloud modules check a managed zone first."""
    name = "domain"
    plan = settings.domain_plan()
    if plan == "managed_zone":
        return passed(
            name,
            f"{settings.domain}: record created in zone {settings.managed_zone}"
            + (f" ({zone_detail})" if zone_detail else ""),
        )
    if plan == "user_record":
        tls = ", then waits for it before Let's Encrypt" if settings.letsencrypt else ""
        return passed(
            name,
            f"{settings.domain}: you create its A record; the deploy prints it{tls}",
        )
    return passed(
        name,
        f"no domain given: GitLab will be gitlab.<public ip>.{WILDCARD_DNS_SUFFIX} (wildcard DNS, "
        "no record to create; depends on that public service and on Let's Encrypt's rate limit "
        "for its domain; pass --domain for a lasting name)",
    )
