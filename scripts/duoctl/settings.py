"""Deploy settings: what `duoctl preflight` and `duoctl deploy` need, and where they come from.

Only credentials and a region (plus the project on Google Cloud) are required. The rest has a
default: the admin CIDR is the deployer's public address /32 (detected), the SSH key is
~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub, and without a domain GitLab gets a wildcard-DNS name
derived from its public IP (gitlab.<ip>.sslip.io). The first deploy writes the resolved values to
`.deploy/<cloud>/settings.yml`, so a re-run reuses them; options given on the command line win.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from duoctl import duo_config, serving
from duoctl.config import ActivationCodeError, read_activation_code_file
from duoctl.deployment import DEFAULT_PORTS, Ports, check_hostname
from duoctl.duo_config import DuoModels
from duoctl.errors import DuoctlError
from duoctl.schedule import GpuSchedule
from duoctl.serving import Preset
from duoctl.terraform_workdir import StateBackend

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


class SettingsError(DuoctlError):
    """Bad or missing deploy input; the message names the setting and gives an example."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message, fix)


# The command-line option of each setting, for messages.
OPTIONS = {
    "ssh_public_key_file": "--ssh-key",
    "admin_cidr": "--admin-cidr",
    "managed_zone": "--managed-zone",
    "license_file": "--license-file",
    "activation_code_file": "--activation-code-file",
    "gateway_port": "--gateway-port",
    "gateway_grpc_port": "--gateway-grpc-port",
    "model_port": "--model-port",
    "serving": "--serving",
    "model_preset": "--model-preset",
    "duo_models": "--duo-models",
    "state_backend": "--state-backend",
    "state_bucket": "--state-bucket",
    "state_key": "--state-key",
    "state_region": "--state-region",
    "gpu_schedule": "--gpu-schedule",
    "backup_retention_days": "--backup-retention-days",
}
PATTERNS: dict[str, dict[str, tuple[str, str]]] = {
    # setting -> cloud -> (pattern, example); the Terraform variables validate the same way
    "region": {
        "aws": (r"^[a-z]{2}(-[a-z]+)+-[0-9]$", "us-east-1"),
        "gcp": (r"^[a-z]+-[a-z]+[0-9]+$", "europe-west4"),
    },
    "zone": {
        "aws": (r"^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", "us-east-1a"),
        "gcp": (r"^[a-z]+-[a-z]+[0-9]+-[a-z]$", "europe-west4-a"),
    },
    "managed_zone": {
        "aws": (r"^[A-Z0-9]{5,32}$", "Z0123456789ABCDEFGHIJ (the hosted zone ID)"),
        "gcp": (r"^[a-z][a-z0-9-]{0,62}$", "my-zone (the managed zone's name)"),
    },
}
PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
MACHINE_TYPE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,40}$")
PUBLIC_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|"
    r"sk-ecdsa-sha2-nistp256@openssh.com) [A-Za-z0-9+/=]+( .*)?$"
)


def check_ipv4_cidr(value: str) -> str:
    """The admin CIDR rule, shared by the settings, preflight and Terraform's validation:
    an IPv4 block with its prefix length, no host bits, and never the whole internet."""
    example = "198.51.100.7/32 (your workstation's public address)"
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR block; use for example {example}") from None
    if network.version != 4:
        raise ValueError(f"{value} is IPv6; the firewall rules take IPv4, e.g. {example}")
    if "/" not in value:
        raise ValueError(f"{value} has no prefix length; use {network} (one address)")
    if str(network) != value:
        raise ValueError(f"{value} has host bits set; use {network}")
    if network.prefixlen == 0:
        raise ValueError(f"{value} would open SSH to the whole internet; use e.g. {example}")
    return value


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
    # The service ports: the firewall, the roles and the URLs registered in GitLab follow them.
    gateway_port: int = Field(default=DEFAULT_PORTS["gateway_port"], ge=1024, le=65535)
    gateway_grpc_port: int = Field(default=DEFAULT_PORTS["gateway_grpc_port"], ge=1024, le=65535)
    # The model server's port; None: Ollama's 11434 or vLLM's 8000.
    model_port: int | None = Field(default=None, ge=1024, le=65535)
    # What serves the model: Ollama (the guide's evaluation setup) or vLLM with a preset (a
    # GitLab-supported model on a GPU it fits; duoctl.serving).
    serving: Literal["ollama", "vllm"] = "ollama"
    model_preset: str | None = None
    # Models on cloud platforms (Bedrock on AWS, Azure OpenAI) and the feature mapping, from the
    # `--duo-models` file (duoctl.duo_config.DuoModels); kept here, so a re-run reuses them.
    duo_models: DuoModels | None = None
    # Where Terraform keeps the state: local (the deployment folder), s3 or gcs (for teams).
    state_backend: Literal["local", "s3", "gcs"] = "local"
    state_bucket: str | None = None
    state_key: str | None = None
    state_region: str | None = None
    # The GPU VM's office hours (duoctl.schedule); None: it runs all the time.
    gpu_schedule: GpuSchedule | None = None
    # Days the backup bucket keeps GitLab's backups; None: the Terraform default (30).
    backup_retention_days: int | None = Field(default=None, ge=1, le=3650)

    @field_validator("gpu_schedule", mode="before")
    @classmethod
    def _gpu_schedule_option(cls, v: Any) -> Any:
        """`--gpu-schedule "START;STOP;TZ"` (or off) gives a string; settings.yml a mapping."""
        return GpuSchedule.parse_option(v) if isinstance(v, str) else v

    @field_validator("gpu_schedule")
    @classmethod
    def _gpu_schedule_cloud(cls, v: GpuSchedule | None, info: ValidationInfo) -> GpuSchedule | None:
        """What the cloud's scheduler can run (EventBridge Scheduler is the narrower)."""
        if v is not None and "cloud" in info.data:
            v.check_for(info.data["cloud"])
        return v

    @field_validator("activation_code_file")
    @classmethod
    def _code_path(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be the path of a file holding the activation code")
        return v

    @field_validator("admin_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        return check_ipv4_cidr(v)

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        return None if v is None else check_hostname(v)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not PREFIX.match(v):
            raise ValueError(
                f"{v!r}: start with a lower-case letter; at most 16 letters, digits or hyphens"
            )
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        if v is not None and not PROJECT.match(v):
            raise ValueError(f"{v!r} is not a Google Cloud project ID such as my-project-123")
        return v

    @field_validator("gitlab_machine_type", "gateway_machine_type", "ollama_machine_type")
    @classmethod
    def _machine_type(cls, v: str | None) -> str | None:
        if v is not None and not MACHINE_TYPE.match(v):
            raise ValueError(f"{v!r} is not an instance or machine type such as g5.xlarge")
        return v

    @field_validator("duo_models", mode="before")
    @classmethod
    def _duo_models_file(cls, v: Any) -> Any:
        """`--duo-models FILE` gives a path: its content is what is kept."""
        if isinstance(v, str | Path):
            return duo_config.load_duo_models(v)
        return v

    @field_validator("duo_models")
    @classmethod
    def _duo_models(cls, v: DuoModels | None, info: ValidationInfo) -> DuoModels | None:
        known = info.data
        if v is None or not {"cloud", "region", "serving"} <= set(known):
            return v
        served, features = served_model_of(known["serving"], known.get("model_preset"))
        problems = v.problems(known["cloud"], known["region"], served, features)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @model_validator(mode="after")
    def _per_cloud(self) -> DeploySettings:
        for name, rules in PATTERNS.items():
            value = getattr(self, name)
            pattern, example = rules[self.cloud]
            if value is not None and not re.match(pattern, value):
                raise ValueError(f"{name} {value!r} is not valid on {self.cloud}: e.g. {example}")
        if self.gateway_port == self.gateway_grpc_port:
            raise ValueError("gateway_port and gateway_grpc_port must differ")
        if self.model_preset is not None and self.serving != "vllm":
            raise ValueError("model_preset needs serving vllm (--serving vllm)")
        self.state()  # the backend settings are consistent
        return self

    def state(self) -> StateBackend:
        """Where Terraform keeps this deployment's state."""
        return StateBackend(
            kind=self.state_backend,
            bucket=self.state_bucket,
            key=self.state_key,
            region=self.state_region,
        )

    def ports(self) -> Ports:
        return Ports(
            gateway_port=self.gateway_port,
            gateway_grpc_port=self.gateway_grpc_port,
            ollama_port=self.model_port_in_effect(),
        )

    def model_port_in_effect(self) -> int:
        if self.model_port is not None:
            return self.model_port
        return serving.VLLM_PORT if self.serving == "vllm" else DEFAULT_PORTS["ollama_port"]

    def preset(self) -> Preset | None:
        """The vLLM preset, checked to fit its GPU (None with Ollama)."""
        if self.serving != "vllm":
            return None
        chosen = serving.preset(self.model_preset or serving.DEFAULT_PRESET)
        serving.vm_of(chosen, self.cloud)  # a VM type on this cloud carries its GPUs
        serving.check_fit(chosen, self.cloud)
        return chosen

    def check_files(self) -> None:
        """What a deploy needs and destroying does not: the files it reads exist and hold what
        they should, and a vLLM preset fits its GPU."""
        self.preset()
        key = Path(self.ssh_public_key_file).expanduser()
        try:
            text = key.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
            raise SettingsError(
                f"--ssh-key: cannot read {key}: {reason}",
                "pass the public key file (.pub), e.g. --ssh-key ~/.ssh/id_ed25519.pub",
            ) from None
        if "PRIVATE KEY" in text or not PUBLIC_KEY.match(text.splitlines()[0] if text else ""):
            raise SettingsError(
                f"--ssh-key: {key} is not an OpenSSH public key line",
                "pass the .pub file (ssh-ed25519 AAAA... comment), never the private key",
            )
        if self.license_file:
            path = Path(self.license_file).expanduser()
            if not path.is_file():
                raise SettingsError(
                    f"--license-file: {path} does not exist",
                    "pass the .gitlab-license file of a subscription with GitLab Duo Enterprise",
                )
        if self.activation_code_file:
            check_activation_code_file(self.activation_code_file)
        if self.duo_models is not None:
            problems = duo_config.check_api_key_files(self.duo_models)
            if problems:
                raise SettingsError(
                    f"--duo-models: {'; '.join(problems)}",
                    "write the Azure OpenAI resource's API key to that file (chmod 600), or "
                    "fix api_key_file in the --duo-models file and pass it again",
                )

    def bedrock_model_ids(self) -> list[str]:
        """The Bedrock model and inference profile IDs the AI gateway may invoke."""
        if self.duo_models is None:
            return []
        return list(dict.fromkeys(m.model_id for m in self.duo_models.bedrock_models))

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


def served_model_of(
    serving_kind: str, model_preset: str | None
) -> tuple[str, tuple[str, ...] | None]:
    """The served model's name in GitLab, and the features GitLab lists its model for (a vLLM
    preset's; None when not known)."""
    if serving_kind != "vllm":
        return duo_config.MODEL_NAME, None
    name = model_preset or serving.DEFAULT_PRESET
    preset = serving.PRESETS.get(name)
    return name, (tuple(preset.model.features) if preset else None)


def check_activation_code_file(path: str) -> None:
    """SettingsError unless `path` holds an activation code (the message never shows it)."""
    try:
        read_activation_code_file(path)
    except ActivationCodeError as exc:
        raise SettingsError(
            f"--activation-code-file: {exc}",
            "pass a file holding the code (a saved value lives in the deployment's settings.yml)",
        ) from None


def activation_code_path(path: str | None) -> str | None:
    """An activation code file as an absolute path, after checking it; None when not given."""
    if not path:
        return None
    check_activation_code_file(path)
    return str(Path(path).expanduser().resolve())


def private_key_of(public_key_file: str) -> str | None:
    """The private key beside a .pub file, when it is there."""
    key = Path(public_key_file).expanduser()
    private = key.with_suffix("") if key.suffix == ".pub" else None
    return str(private.absolute()) if private and private.is_file() else None


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
    empty = [OPTIONS.get(k, f"--{k.replace('_', '-')}") for k, v in overrides.items() if v == ""]
    if empty:
        raise SettingsError(
            f"{', '.join(empty)} given empty", "give a value, or leave the option out"
        )
    merged.update({k: v for k, v in overrides.items() if v is not None})
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
            f"{_option(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise SettingsError(
            f"invalid deploy settings: {problems}",
            "correct these options (a saved value lives in the deployment's settings.yml)",
        ) from None


def _option(location: tuple[int | str, ...]) -> str:
    """The option of a setting; a key inside one (the --duo-models file's) after it."""
    if not location:
        return "settings"
    head, rest = str(location[0]), location[1:]
    option = OPTIONS.get(head, f"--{head.replace('_', '-')}")
    inner = ""
    for part in rest:
        if isinstance(part, int):
            inner += f"[{part}]"
        elif part not in ("bedrock", "azure"):  # the union's branch, named by `platform`
            inner += f".{part}" if inner else part
    return f"{option}: {inner}" if inner else option


def detect_public_ip(timeout: float = 5.0) -> str:
    """The deployer's public IPv4 address, asked from a well-known "what is my IP" service."""
    import ipaddress

    import requests

    answer = requests.get("https://checkip.amazonaws.com", timeout=timeout)
    answer.raise_for_status()
    return str(ipaddress.IPv4Address(answer.text.strip()))
