"""Terraform outputs -> the Ansible inventory (inventory/<cloud>.yml).

The outputs have the same names on every cloud. The GitLab VM is reached on its
public IP; the AI gateway and Ollama VMs on their private IPs, through the GitLab
VM (SSH ProxyJump). Rendering is deterministic: the same outputs give the same file.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

CLOUDS = ("aws", "gcp")
IP_OUTPUTS = ("gitlab_public_ip", "gitlab_private_ip", "gateway_private_ip", "ollama_private_ip")
REQUIRED_OUTPUTS = (*IP_OUTPUTS, "gitlab_domain", "gitlab_url", "ssh_user")
# Optional outputs (older outputs lack them): the service ports, with their defaults.
DEFAULT_PORTS = {"gateway_port": 5052, "gateway_grpc_port": 50052, "ollama_port": 11434}
_HOSTNAME = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class InventoryError(ValueError):
    """The outputs cannot make an inventory; the message names the problem and the fix."""


def _how_to_fix(cloud: str) -> str:
    return (
        f"apply the configuration first (terraform -chdir=terraform/{cloud} apply), "
        f"or pass saved outputs: duoctl inventory {cloud} --from-json FILE "
        f"(FILE from terraform -chdir=terraform/{cloud} output -json)"
    )


def plain_values(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Accept plain values or the {"value": ..., "type": ...} items of `terraform output -json`."""
    return {
        name: item["value"] if isinstance(item, Mapping) and "value" in item else item
        for name, item in outputs.items()
    }


def load_outputs_file(path: Path, cloud: str) -> dict[str, Any]:
    """Read a saved `terraform output -json` document."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InventoryError(f"{path} does not exist: {_how_to_fix(cloud)}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InventoryError(
            f"{path} is not a terraform output -json document ({exc}): {_how_to_fix(cloud)}"
        ) from exc
    if not isinstance(data, dict):
        raise InventoryError(f"{path} must hold a JSON object of outputs: {_how_to_fix(cloud)}")
    return plain_values(data)


def _validated(outputs: Mapping[str, Any], cloud: str) -> dict[str, str]:
    if cloud not in CLOUDS:
        raise InventoryError(f"unknown cloud {cloud!r}: choose one of {', '.join(CLOUDS)}")
    values = plain_values(outputs)
    if not values:
        raise InventoryError(f"there are no terraform outputs yet: {_how_to_fix(cloud)}")
    missing = [key for key in REQUIRED_OUTPUTS if values.get(key) in (None, "")]
    if missing:
        raise InventoryError(f"terraform outputs lack {', '.join(missing)}: {_how_to_fix(cloud)}")
    other_cloud = values.get("cloud")
    if other_cloud not in (None, cloud):
        raise InventoryError(
            f"these outputs come from {other_cloud}, not {cloud}: "
            f"run duoctl inventory {other_cloud}, or pass the {cloud} outputs"
        )
    problems = []
    for key in IP_OUTPUTS:
        try:
            ipaddress.IPv4Address(str(values[key]))
        except ValueError:
            problems.append(f"{key} is {values[key]!r}, not an IPv4 address")
    domain = str(values["gitlab_domain"])
    if not _HOSTNAME.match(domain):
        problems.append(f"gitlab_domain is {domain!r}, not a host name")
    if not str(values["gitlab_url"]).startswith("https://"):
        problems.append(f"gitlab_url is {values['gitlab_url']!r}, not an https:// URL")
    if not _USER.match(str(values["ssh_user"])):
        problems.append(f"ssh_user is {values['ssh_user']!r}, not a user name")
    if problems:
        raise InventoryError(f"bad terraform outputs: {'; '.join(problems)}: {_how_to_fix(cloud)}")
    return {key: str(values[key]) for key in REQUIRED_OUTPUTS}


def _ports(outputs: Mapping[str, Any]) -> dict[str, int]:
    values = plain_values(outputs)
    ports = {}
    for key, default in DEFAULT_PORTS.items():
        value = values.get(key)
        try:
            port = default if value in (None, "") else int(value)
        except (TypeError, ValueError):
            port = 0
        if not 0 < port < 65536 or (value not in (None, "") and str(port) != str(value)):
            raise InventoryError(f"bad terraform outputs: {key} is {value!r}, not a TCP port")
        ports[key] = port
    return ports


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("duoctl", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML; strings go through tojson
    )
    return env


def render_inventory(outputs: Mapping[str, Any], cloud: str) -> str:
    """The inventory YAML for these Terraform outputs (plain or `output -json` form)."""
    values = _validated(outputs, cloud)
    ports = _ports(outputs)
    jump = f"{values['ssh_user']}@{values['gitlab_public_ip']}"
    context = {
        **values,
        "cloud": cloud,
        "gateway_url": f"http://{values['gateway_private_ip']}:{ports['gateway_port']}",
        "gateway_agent_platform_address": (
            f"{values['gateway_private_ip']}:{ports['gateway_grpc_port']}"
        ),
        "ollama_endpoint": f"http://{values['ollama_private_ip']}:{ports['ollama_port']}/v1",
        "ssh_common_args": f"-o ProxyJump={jump} -o StrictHostKeyChecking=accept-new",
    }
    return _environment().get_template("inventory.yml.j2").render(context)


def write_inventory(outputs: Mapping[str, Any], cloud: str, path: Path) -> bool:
    """Write the inventory to path; True when the file changed (False: already up to date)."""
    text = render_inventory(outputs, cloud)
    if path.exists() and not path.is_file():
        raise InventoryError(
            f"cannot write the inventory {path}: something else than a file is there; "
            "move it away, or pass --inventory OTHER_FILE"
        )
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InventoryError(
            f"cannot write the inventory {path}: {exc.strerror}; pass --inventory OTHER_FILE"
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def default_path(cloud: str) -> Path:
    from duoctl.terraform import repo_root

    return repo_root() / "inventory" / f"{cloud}.yml"


def main(args: argparse.Namespace) -> int:
    """`duoctl inventory {aws|gcp} [--from-json FILE] [--output PATH]`."""
    from duoctl import terraform

    cloud: str = args.cloud
    path = Path(args.output) if args.output else default_path(cloud)
    try:
        if args.from_json:
            outputs = load_outputs_file(Path(args.from_json), cloud)
        else:
            outputs = terraform.outputs(terraform.terraform_dir(cloud))
        changed = write_inventory(outputs, cloud, path)
    except InventoryError as exc:
        print(f"duoctl inventory: {exc}", file=sys.stderr)
        return 2
    except terraform.TerraformError as exc:
        print(f"duoctl inventory: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {'written' if changed else 'unchanged'}")
    record = plain_values(outputs).get("dns_record_needed")
    if record:
        print(f"Create this DNS record before deploying GitLab: {record}")
    return 0
