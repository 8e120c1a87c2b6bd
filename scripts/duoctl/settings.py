"""Deploy settings: what `duoctl preflight` and `duoctl deploy` need, and where they come from.

Only credentials and a region (plus the project on Google Cloud) are required. The rest has a
default: the admin CIDR is the deployer's public address /32 (detected), the SSH key is
~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub, and without a domain GitLab gets a wildcard-DNS name
derived from its public IP (gitlab.<ip>.sslip.io). The first deploy writes the resolved values to
`.deploy/<cloud>/settings.yml`, so a re-run reuses them; options given on the command line win.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from duoctl.config import ActivationCodeError, read_activation_code_file

Cloud = Literal["aws", "gcp"]
CLOUDS: tuple[Cloud, ...] = ("aws", "gcp")
WILDCARD_DNS_SUFFIX = "sslip.io"
SSH_KEY_CANDIDATES = ("~/.ssh/id_ed25519.pub", "~/.ssh/id_rsa.pub")

# The instance sizes of the reference 3-VM layout; the Terraform variables carry the same defaults.
DEFAULT_TYPES: dict[str, dict[str, str]] = {
    "aws": {"gitlab": "c6i.xlarge", "ai_gateway": "t3.medium", "ollama": "g4dn.xlarge"},
    "gcp": {"gitlab": "c2-standard-4", "ai_gateway": "e2-medium", "ollama": "n1-standard-4"},
}
GCP_GPU_TYPE = "nvidia-tesla-t4"


class SettingsError(ValueError):
    """Bad or missing deploy input; the message names the setting and gives an example."""


class DeploySettings(BaseModel):
    """One deployment's inputs (the content of `.deploy/<cloud>/settings.yml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cloud: Cloud
    region: str
    zone: str | None = None  # AWS availability zone or Google Cloud zone; None: first that fits
    project: str | None = None  # Google Cloud project ID
    ssh_public_key_file: str
    admin_cidr: str
    domain: str | None = None  # None: gitlab.<public ip>.sslip.io
    managed_zone: str | None = None  # Route 53 hosted zone ID or Cloud DNS managed zone name
    letsencrypt: bool = True
    # A .gitlab-license file with GitLab Duo Enterprise, installed by the gitlab role. Without
    # it, the instance must already hold such a license when `duoctl configure` runs.
    license_file: str | None = None
    # A file holding the activation code of a subscription with GitLab Duo Enterprise. The duo
    # step activates it online, which provisions the add-on at once (a license file only gets
    # it at GitLab's daily subscription sync). Only the path is kept, never the code.
    activation_code_file: str | None = None
    prefix: str = "duo"
    gitlab_machine_type: str | None = None
    gateway_machine_type: str | None = None
    ollama_machine_type: str | None = None

    @field_validator("activation_code_file")
    @classmethod
    def _code_path(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be the path of a file holding the activation code")
        return v

    def activation_code_path(self) -> str | None:
        """The activation code file as an absolute path, checked; None when not set.

        Checked when the duo step is set up rather than on every load, so that `destroy`
        still works after the file is deleted.
        """
        return activation_code_path(self.activation_code_file)

    def machine_types(self) -> dict[str, str]:
        """Role -> instance/machine type, defaults filled in."""
        chosen = {
            "gitlab": self.gitlab_machine_type,
            "ai_gateway": self.gateway_machine_type,
            "ollama": self.ollama_machine_type,
        }
        return {
            role: chosen[role] or default for role, default in DEFAULT_TYPES[self.cloud].items()
        }

    def ssh_public_key(self) -> str:
        return Path(self.ssh_public_key_file).expanduser().read_text(encoding="utf-8").strip()

    def domain_plan(self) -> Literal["managed_zone", "user_record", "wildcard_dns"]:
        if self.managed_zone:
            return "managed_zone"
        return "user_record" if self.domain else "wildcard_dns"

    def fingerprint(self) -> dict[str, Any]:
        """The inputs whose change makes recorded deploy steps stale."""
        return self.model_dump(mode="json")


def check_activation_code_file(path: str) -> None:
    """SettingsError unless `path` holds an activation code (the message never shows it)."""
    try:
        read_activation_code_file(path)
    except ActivationCodeError as exc:
        raise SettingsError(
            f"--activation-code-file: {exc} (a saved value lives in .deploy/<cloud>/settings.yml)"
        ) from None


def activation_code_path(path: str | None) -> str | None:
    """An activation code file as an absolute path, after checking it; None when not given."""
    if not path:
        return None
    check_activation_code_file(path)
    return str(Path(path).expanduser().resolve())


def wildcard_domain(public_ip: str) -> str:
    return f"gitlab.{public_ip}.{WILDCARD_DNS_SUFFIX}"


def settings_file(deploy_dir: Path, cloud: str) -> Path:
    return deploy_dir / cloud / "settings.yml"


def load_saved(path: Path) -> dict[str, Any]:
    """The saved settings as a dict (empty when the file does not exist)."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path} is not valid YAML ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path} must hold a mapping of setting: value; fix or delete it")
    return data


def save(settings: DeploySettings, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True), sort_keys=False)
    header = "# Deploy settings reused by `duoctl deploy`; command-line options override them.\n"
    path.write_text(header + body, encoding="utf-8")


def default_ssh_key() -> str:
    for candidate in SSH_KEY_CANDIDATES:
        if Path(candidate).expanduser().is_file():
            return candidate
    raise SettingsError(
        "no SSH public key found (looked for "
        + " and ".join(SSH_KEY_CANDIDATES)
        + "). Create one with: ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519  "
        "or pass --ssh-key PATH_TO_PUBLIC_KEY"
    )


def _aws_configured_region() -> str | None:
    """The region of the AWS CLI configuration (~/.aws/config, AWS_PROFILE), if any."""
    import boto3  # type: ignore[import-untyped]

    region: str | None = boto3.session.Session().region_name
    return region


def _from_environment(cloud: str, env: Mapping[str, str]) -> dict[str, str]:
    """What the cloud CLIs' own environment variables already say."""
    if cloud == "aws":
        found = {"region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")}
    else:
        found = {
            "project": env.get("GOOGLE_CLOUD_PROJECT") or env.get("CLOUDSDK_CORE_PROJECT"),
            "region": env.get("CLOUDSDK_COMPUTE_REGION"),
            "zone": env.get("CLOUDSDK_COMPUTE_ZONE"),
        }
    return {k: v for k, v in found.items() if v}


def resolve(
    cloud: Cloud,
    overrides: Mapping[str, Any],
    saved: Mapping[str, Any],
    detect_public_ip: Callable[[], str],
    env: Mapping[str, str] | None = None,
) -> DeploySettings:
    """Merge command-line options over saved settings over the environment, fill in defaults.

    `detect_public_ip` is only called when no admin CIDR is known; if it fails the user is
    asked for --admin-cidr by name.
    """
    merged: dict[str, Any] = dict(_from_environment(cloud, os.environ if env is None else env))
    merged.update(saved)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("activation_code_file"):
        # A new code file from the command line is checked before it is saved.
        check_activation_code_file(overrides["activation_code_file"])
    if cloud == "aws" and not merged.get("region") and env is None:
        merged["region"] = _aws_configured_region()
    if merged.setdefault("cloud", cloud) != cloud:
        raise SettingsError(f"the saved settings are for cloud {merged['cloud']!r}, not {cloud!r}")
    example = "us-east-1" if cloud == "aws" else "europe-west4"
    if not merged.get("region"):
        raise SettingsError(
            f"the region is required: pass --region, for example --region {example}"
        )
    if cloud == "gcp" and not merged.get("project"):
        raise SettingsError(
            "the Google Cloud project is required: pass --project, "
            "for example --project my-project-id"
        )
    if not merged.get("ssh_public_key_file"):
        merged["ssh_public_key_file"] = default_ssh_key()
    if not merged.get("admin_cidr"):
        try:
            merged["admin_cidr"] = f"{detect_public_ip()}/32"
        except Exception as exc:
            raise SettingsError(
                f"could not detect your public IP address ({exc}); pass the network allowed to "
                "reach SSH with --admin-cidr, for example --admin-cidr 198.51.100.7/32"
            ) from exc
    try:
        return DeploySettings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid deploy settings: {problems}") from exc


def detect_public_ip(timeout: float = 5.0) -> str:
    """The deployer's public IPv4 address, asked from a well-known "what is my IP" service."""
    import ipaddress

    import requests

    answer = requests.get("https://checkip.amazonaws.com", timeout=timeout)
    answer.raise_for_status()
    return str(ipaddress.IPv4Address(answer.text.strip()))
