"""The deployment contract: one typed model of the three hosts and how they are reached.

Every fact about a deployed stack lives here once: the hosts with their private and public
addresses, the SSH user and jump host, the domain, the service ports, and the URLs derived
from them. It is built from Terraform's outputs (cloud deploys) or read from an inventory
(own hosts), and it writes the Ansible inventory and the SSH client configuration. Every
value is validated on the way in (addresses, host names, ports, user names), so what reaches
Ansible and a remote shell is data, never a template or a command.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from duoctl.errors import DuoctlError

Target = Literal["aws", "gcp", "hosts"]
Serving = Literal["ollama", "vllm"]
SERVINGS: tuple[Serving, ...] = ("ollama", "vllm")
Group = Literal["gitlab", "ai_gateway", "ollama", "vllm"]
HOST_NAMES: dict[Group, str] = {
    "gitlab": "gitlab-vm",
    "ai_gateway": "gateway-vm",
    "ollama": "ollama-vm",
    "vllm": "vllm-vm",
}
DEFAULT_PORTS = {"gateway_port": 5052, "gateway_grpc_port": 50052, "ollama_port": 11434}

_HOSTNAME = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_INVENTORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_HTTPS_ORIGIN = re.compile(r"^https://(?P<host>[^:/]+)(:[0-9]{1,5})?$")


def check_hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a host name such as gitlab.example.com")
    return value


def _user(value: str) -> str:
    if not _USER.match(value):
        raise ValueError(f"{value!r} is not a user name (lower-case letters, digits, - and _)")
    return value


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


def _ssh_host(value: str) -> str:
    try:
        return _ipv4(value)
    except ValueError:
        return check_hostname(value)


def _inventory_name(value: str) -> str:
    if not _INVENTORY_NAME.match(value):
        raise ValueError(f"{value!r} is not an inventory host name (letters, digits, . _ -)")
    return value


def _aws_region(value: str) -> str:
    if not _AWS_REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region such as us-east-1")
    return value


def _https_origin(value: str) -> str:
    match = _HTTPS_ORIGIN.match(value)
    if not match or not _HOSTNAME.match(match["host"]):
        raise ValueError(f"{value!r} is not an https:// URL of a host (no path)")
    return value


HostName = Annotated[str, AfterValidator(check_hostname)]
UserName = Annotated[str, AfterValidator(_user)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Port = Annotated[int, Field(gt=0, lt=65536)]
InventoryName = Annotated[str, AfterValidator(_inventory_name)]
SshHost = Annotated[str, AfterValidator(_ssh_host)]
AwsRegion = Annotated[str, AfterValidator(_aws_region)]
HttpsOrigin = Annotated[str, AfterValidator(_https_origin)]


def check_user(value: str) -> str:
    """A user name that may reach a remote shell (verify's rake check); DuoctlError if not."""
    try:
        return _user(value)
    except ValueError as exc:
        raise DuoctlError(str(exc), "pass a GitLab user name, for example --user root") from None


class Host(BaseModel):
    """One VM: its inventory name, addresses, SSH login and the cloud's handle on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: InventoryName
    group: Group
    private_ip: IPv4
    public_ip: IPv4 | None = None
    ssh_user: UserName = "ubuntu"
    ssh_port: Port = 22
    ssh_host: SshHost | None = None  # how SSH names it, when not by an address (own hosts)
    via_jump: bool = False  # SSH goes through the GitLab host (the private hosts)
    instance: str | None = None  # AWS instance ID or Google Cloud instance name (host keys)

    @property
    def address(self) -> str:
        """Where SSH reaches it: its SSH name, else the public address, else the private one."""
        return self.ssh_host or self.public_ip or self.private_ip


class Ports(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gateway_port: Port = DEFAULT_PORTS["gateway_port"]
    gateway_grpc_port: Port = DEFAULT_PORTS["gateway_grpc_port"]
    ollama_port: Port = DEFAULT_PORTS["ollama_port"]


class Bedrock(BaseModel):
    """Amazon Bedrock as the AI gateway calls it: the region, and the bedrock-runtime VPC
    endpoint when the deployment has one (else the public regional endpoint is used)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: AwsRegion
    runtime_endpoint: HttpsOrigin | None = None

    def gateway_vars(self) -> dict[str, str]:
        """The ai_gateway role's variables for the gateway host."""
        values = {"ai_gateway_aws_region": self.region}
        if self.runtime_endpoint:
            values["ai_gateway_bedrock_runtime_endpoint"] = self.runtime_endpoint
        return values


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def _bucket(value: str) -> str:
    if not _BUCKET.match(value):
        raise ValueError(f"{value!r} is not a bucket name (3-63 lower-case letters, digits, . -)")
    return value


class Backups(BaseModel):
    """Where GitLab uploads its backups: the deployment's bucket, reached with the GitLab VM's
    own identity (AWS instance role, Google service account)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["aws", "google"]
    bucket: Annotated[str, AfterValidator(_bucket)]
    region: AwsRegion | None = None  # aws
    project: Annotated[str, Field(pattern=_GCP_PROJECT.pattern)] | None = None  # google

    @model_validator(mode="after")
    def _where(self) -> Backups:
        if self.provider == "aws" and not self.region:
            raise ValueError("an S3 backup bucket needs its region")
        if self.provider == "google" and not self.project:
            raise ValueError("a Cloud Storage backup bucket needs its project")
        return self

    def gitlab_vars(self) -> dict[str, str]:
        """The gitlab role's variables for the GitLab host."""
        values = {"gitlab_backup_provider": self.provider, "gitlab_backup_bucket": self.bucket}
        if self.region:
            values["gitlab_backup_aws_region"] = self.region
        if self.project:
            values["gitlab_backup_google_project"] = self.project
        return values


class Deployment(BaseModel):
    """The three hosts, the domain and the ports; every URL is derived from them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Target
    domain: HostName
    hosts: tuple[Host, Host, Host]  # gitlab, ai_gateway, the model server, in that order
    ports: Ports = Ports()
    zone: str | None = None  # Google Cloud zone of the instances (host keys)
    bedrock: Bedrock | None = None  # AWS deployments with bedrock_models
    backups: Backups | None = None  # cloud deployments (Terraform's backup bucket)

    def host(self, group: Group) -> Host:
        return next(h for h in self.hosts if h.group == group)

    @property
    def gitlab(self) -> Host:
        return self.host("gitlab")

    @property
    def gateway(self) -> Host:
        return self.host("ai_gateway")

    @property
    def model(self) -> Host:
        """The GPU host serving the model (group ollama or vllm)."""
        return self.hosts[2]

    @property
    def serving(self) -> Serving:
        return "vllm" if self.model.group == "vllm" else "ollama"

    @property
    def gitlab_url(self) -> str:
        return f"https://{self.domain}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway.private_ip}:{self.ports.gateway_port}"

    @property
    def agent_platform_address(self) -> str:
        return f"{self.gateway.private_ip}:{self.ports.gateway_grpc_port}"

    @property
    def model_endpoint(self) -> str:
        return f"http://{self.model.private_ip}:{self.ports.ollama_port}/v1"

    def jump_host(self, host: Host) -> Host | None:
        """The host SSH goes through to reach `host`: GitLab for hosts without a public IP."""
        return self.gitlab if host.via_jump else None

    # --- the inventory ---------------------------------------------------------------------

    def inventory(self, ssh_config: Path | None) -> dict[str, Any]:
        """The Ansible inventory (plain data). With `ssh_config`, every SSH connection reads
        that file: the deployment's known_hosts and the jump host for the private hosts."""
        all_vars: dict[str, Any] = {
            "duo_cloud": self.target,
            "ansible_user": self.gitlab.ssh_user,
            "gitlab_domain": self.domain,
            "gitlab_url": self.gitlab_url,
            "gateway_url": self.gateway_url,
            "gateway_agent_platform_address": self.agent_platform_address,
            "model_endpoint": self.model_endpoint,
        }
        if ssh_config is not None:
            all_vars["ansible_ssh_common_args"] = f"-F {ssh_config}"
        children: dict[str, Any] = {}
        for host in self.hosts:
            entry: dict[str, Any] = {"ansible_host": host.address, "private_ip": host.private_ip}
            if host.public_ip:
                entry["public_ip"] = host.public_ip
            if host.ssh_user != self.gitlab.ssh_user:
                entry["ansible_user"] = host.ssh_user
            if host.ssh_port != 22:
                entry["ansible_port"] = host.ssh_port
            if host.via_jump:
                entry["duo_ssh_jump"] = self.gitlab.name  # set in ssh_config as ProxyJump
            if host.instance:
                entry["duo_instance"] = host.instance
            if host.group == "ai_gateway" and self.bedrock is not None:
                entry.update(self.bedrock.gateway_vars())
            if host.group == "gitlab" and self.backups is not None:
                entry.update(self.backups.gitlab_vars())
            children[host.group] = {"hosts": {host.name: entry}}
        if self.zone:
            all_vars["duo_zone"] = self.zone
        return {"all": {"vars": all_vars, "children": children}}

    def inventory_text(self, ssh_config: Path | None) -> str:
        header = (
            f"# Ansible inventory of the {self.target} deployment, written by duoctl from the\n"
            "# deployment's Terraform outputs. Re-run `duoctl inventory` instead of editing it.\n"
        )
        body = yaml.safe_dump(self.inventory(ssh_config), sort_keys=False, width=1000)
        return "---\n" + header + body

    def ssh_config_text(self, known_hosts: Path, identity_file: str | None) -> str:
        """OpenSSH client configuration: `ssh -F FILE gateway-vm` reaches a host as Ansible
        does. ssh passes -F on to the ProxyJump connection, so the jump uses it too."""
        lines = [
            f"# SSH to the {self.target} deployment's hosts: ssh -F THIS_FILE gitlab-vm",
            "# Written by duoctl; host keys are pinned in the known_hosts file named below.",
        ]
        for host in self.hosts:
            lines += [
                f"Host {host.name} {host.address}",
                f"  HostName {host.address}",
                f"  User {host.ssh_user}",
                f"  Port {host.ssh_port}",
            ]
            jump = self.jump_host(host)
            if jump is not None:
                lines.append(f"  ProxyJump {jump.name}")
        lines += [
            "Host *",
            f'  UserKnownHostsFile "{known_hosts}"',
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking accept-new",
            "  HashKnownHosts no",
            "  CheckHostIP no",
        ]
        if identity_file:
            lines.append(f'  IdentityFile "{identity_file}"')
        return "\n".join(lines) + "\n"

    # --- built from Terraform outputs --------------------------------------------------------

    @classmethod
    def from_outputs(
        cls, outputs: Mapping[str, Any], target: Target, serving: Serving = "ollama"
    ) -> Deployment:
        """The deployment Terraform describes; DuoctlError naming each bad output."""
        values = plain_values(outputs)
        fix = (
            f"apply the configuration again (duoctl deploy {target} --from terraform), or pass "
            f"the saved outputs of a {target} deployment"
        )
        if not values:
            raise DuoctlError("there are no Terraform outputs yet", fix)
        other = values.get("cloud")
        if other not in (None, target):
            raise DuoctlError(f"these Terraform outputs come from {other}, not {target}", fix)
        required = (
            "gitlab_public_ip",
            "gitlab_private_ip",
            "gateway_private_ip",
            "ollama_private_ip",
            "gitlab_domain",
            "ssh_user",
        )
        missing = [key for key in required if values.get(key) in (None, "")]
        if missing:
            raise DuoctlError(f"the Terraform outputs lack {', '.join(missing)}", fix)
        instances = values.get("instances") or {}
        user = values["ssh_user"]
        # Absent from older states and from Google Cloud; empty without bedrock_models.
        bedrock = None
        if values.get("bedrock_region"):
            bedrock = {
                "region": values["bedrock_region"],
                "runtime_endpoint": values.get("bedrock_runtime_endpoint") or None,
            }
        data = {
            "target": target,
            "domain": values["gitlab_domain"],
            "zone": values.get("zone") or None,
            "bedrock": bedrock,
            # Absent from older states.
            "backups": values.get("backup") or None,
            "ports": {k: values[k] for k in DEFAULT_PORTS if values.get(k) not in (None, "")},
            "hosts": [
                {
                    "name": HOST_NAMES["gitlab"],
                    "group": "gitlab",
                    "private_ip": values["gitlab_private_ip"],
                    "public_ip": values["gitlab_public_ip"],
                    "ssh_user": user,
                    "instance": instances.get("gitlab"),
                },
                {
                    "name": HOST_NAMES["ai_gateway"],
                    "group": "ai_gateway",
                    "private_ip": values["gateway_private_ip"],
                    "ssh_user": user,
                    "via_jump": True,
                    "instance": instances.get("ai_gateway"),
                },
                {
                    "name": HOST_NAMES[serving],
                    "group": serving,
                    "private_ip": values["ollama_private_ip"],
                    "ssh_user": user,
                    "via_jump": True,
                    "instance": instances.get("ollama"),
                },
            ],
        }
        return validated(data, "bad Terraform outputs", fix, OUTPUT_NAMES)

    # --- read from an inventory -----------------------------------------------------------

    @classmethod
    def from_inventory(cls, path: Path) -> Deployment:
        """The deployment an inventory of the bundle's shape describes (own hosts, verify)."""
        fix = "fix the inventory (see inventory/hosts.example.yml), or write it again"
        data = read_inventory(path)
        top = data["all"]
        all_vars = dict(top.get("vars") or {})
        children = top.get("children") or {}
        hosts = []
        bedrock = None
        backups = None
        servings = [g for g in SERVINGS if ((children.get(g) or {}).get("hosts"))]
        if len(servings) != 1:
            raise DuoctlError(
                f"{path} must have one model server host, in the group ollama or vllm "
                f"(it has {' and '.join(servings) or 'neither'})",
                fix,
            )
        for group in ("gitlab", "ai_gateway", servings[0]):
            entries = ((children.get(group) or {}).get("hosts")) or {}
            if not entries:
                raise DuoctlError(f"{path} has no host in the group {group}", fix)
            name, host_vars = next(iter(entries.items()))
            merged = {**all_vars, **((children.get(group) or {}).get("vars") or {})}
            merged.update(host_vars or {})
            if group == "gitlab" and merged.get("gitlab_backup_bucket"):
                backups = {
                    "provider": merged.get("gitlab_backup_provider"),
                    "bucket": merged["gitlab_backup_bucket"],
                    "region": merged.get("gitlab_backup_aws_region") or None,
                    "project": merged.get("gitlab_backup_google_project") or None,
                }
            if group == "ai_gateway" and merged.get("ai_gateway_aws_region"):
                bedrock = {
                    "region": merged["ai_gateway_aws_region"],
                    "runtime_endpoint": merged.get("ai_gateway_bedrock_runtime_endpoint") or None,
                }
            ssh_host = str(merged.get("ansible_host") or name)
            addresses = (merged.get("public_ip"), merged.get("private_ip"))
            jump = merged.get("duo_ssh_jump") or "ProxyJump" in str(
                merged.get("ansible_ssh_common_args", "")
            )
            hosts.append(
                {
                    "name": str(name),
                    "group": group,
                    "private_ip": merged.get("private_ip") or ssh_host,
                    "public_ip": merged.get("public_ip"),
                    "ssh_host": None if ssh_host in addresses else ssh_host,
                    "ssh_user": merged.get("ansible_user", "ubuntu"),
                    "ssh_port": merged.get("ansible_port", 22),
                    "via_jump": bool(jump),
                    "instance": merged.get("duo_instance"),
                }
            )
        ports = _ports_from_urls(all_vars, path)
        domain = all_vars.get("gitlab_domain")
        if not domain and isinstance(all_vars.get("gitlab_url"), str):
            domain = all_vars["gitlab_url"].removeprefix("https://").split("/")[0]
        target = all_vars.get("duo_cloud") if all_vars.get("duo_cloud") in ("aws", "gcp") else None
        data_model = {
            "target": target or "hosts",
            "domain": domain,
            "hosts": hosts,
            "ports": ports,
            "zone": all_vars.get("duo_zone"),
            "bedrock": bedrock,
            "backups": backups,
        }
        return validated(data_model, f"bad inventory {path}", fix)


def _ports_from_urls(all_vars: Mapping[str, Any], path: Path) -> dict[str, int]:
    """The service ports as the inventory's URLs give them (defaults where a URL is absent)."""
    from urllib.parse import urlsplit

    ports: dict[str, int] = {}
    try:
        if all_vars.get("gateway_url"):
            ports["gateway_port"] = urlsplit(str(all_vars["gateway_url"])).port or 80
        if all_vars.get("gateway_agent_platform_address"):
            address = str(all_vars["gateway_agent_platform_address"])
            ports["gateway_grpc_port"] = int(address.rpartition(":")[2])
        if all_vars.get("model_endpoint"):
            ports["ollama_port"] = urlsplit(str(all_vars["model_endpoint"])).port or 80
    except ValueError as exc:
        raise DuoctlError(
            f"{path}: a service URL has a bad port ({exc})",
            "fix gateway_url, gateway_agent_platform_address or model_endpoint",
        ) from None
    return ports


# A field of the model -> the Terraform output it comes from, for messages.
OUTPUT_NAMES = {
    "domain": "gitlab_domain",
    "hosts.0.public_ip": "gitlab_public_ip",
    "hosts.0.private_ip": "gitlab_private_ip",
    "hosts.1.private_ip": "gateway_private_ip",
    "hosts.2.private_ip": "ollama_private_ip",
    **{f"hosts.{i}.ssh_user": "ssh_user" for i in range(3)},
    **{f"hosts.{i}.instance": "instances" for i in range(3)},
    **{f"ports.{name}": name for name in DEFAULT_PORTS},
    "bedrock.region": "bedrock_region",
    "bedrock.runtime_endpoint": "bedrock_runtime_endpoint",
    "backups": "backup",
    **{f"backups.{key}": "backup" for key in ("provider", "bucket", "region", "project")},
}


def validated(
    data: Mapping[str, Any], what: str, fix: str, names: Mapping[str, str] | None = None
) -> Deployment:
    try:
        return Deployment.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            location = ".".join(str(p) for p in err["loc"])
            name = (names or {}).get(location, location)
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise DuoctlError(f"{what}: {'; '.join(dict.fromkeys(problems))}", fix) from None


def plain_values(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values, or the {"value": ..., "type": ...} items of `terraform output -json`."""
    return {
        name: item["value"] if isinstance(item, Mapping) and "value" in item else item
        for name, item in outputs.items()
    }


def read_inventory(path: Path) -> dict[str, Any]:
    """An inventory file as data; DuoctlError naming the file when it is missing or damaged."""
    fix = "write it again (duoctl inventory), or see inventory/hosts.example.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DuoctlError(f"cannot read the inventory {path}: {exc.strerror}", fix) from None
    except yaml.YAMLError as exc:
        raise DuoctlError(f"the inventory {path} is not valid YAML ({exc})", fix) from None
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise DuoctlError(f"{path} is not an inventory (a top-level `all:` is expected)", fix)
    return data
