"""Reading the deploy's inventory file, and keeping what later steps need from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from duoctl.pipeline import Context, StepFailed


def read_inventory(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StepFailed(f"cannot read the inventory {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise StepFailed(f"{path} is not an inventory (top level `all:` expected)")
    return data


def remember_inventory(ctx: Context, inventory: dict[str, Any]) -> None:
    """Keep the GitLab URL, domain and public IP of the inventory for later steps."""
    all_vars = inventory["all"].get("vars") or {}
    for key in ("gitlab_url", "gitlab_domain"):
        if all_vars.get(key):
            ctx.data[key] = all_vars[key]
    gitlab_hosts = ((inventory["all"].get("children") or {}).get("gitlab") or {}).get("hosts")
    for host_vars in (gitlab_hosts or {}).values():
        host_vars = host_vars or {}
        ip = host_vars.get("public_ip") or host_vars.get("ansible_host")
        if ip:
            ctx.data["gitlab_public_ip"] = ip
