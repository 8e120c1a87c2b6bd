"""What verify reads: the inventory, the token and CA files, the suite's folder."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from duoctl.errors import DuoctlError
from duoctl.token import TokenFileError, read_token_file
from duoctl.verify.rake import SshRunner


class VerifyInputError(DuoctlError):
    """Bad input: the message names the problem and the fix (exit code 2)."""


@dataclass(frozen=True)
class Deployment:
    """What verify needs from the inventory."""

    all_vars: dict[str, Any]
    gitlab_host: dict[str, Any]  # merged variables of the first gitlab host

    @property
    def gitlab_url(self) -> str:
        url = self.all_vars.get("gitlab_url") or ""
        if not url and self.all_vars.get("gitlab_domain"):
            url = f"https://{self.all_vars['gitlab_domain']}"
        return str(url)

    @property
    def cloud(self) -> str:
        return str(self.all_vars.get("duo_cloud") or "")


def load_deployment(path: Path) -> Deployment:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VerifyInputError(
            f"cannot read the inventory {path}: {exc.strerror}. Pass --inventory FILE "
            "(written by `duoctl inventory aws|gcp`, or see inventory/hosts.example.yml)"
        ) from exc
    except yaml.YAMLError as exc:
        raise VerifyInputError(f"{path} is not valid YAML: {exc}") from exc
    top = data.get("all") if isinstance(data, dict) else None
    if not isinstance(top, dict):
        raise VerifyInputError(f"{path} is not an inventory: a top-level `all:` is expected")
    all_vars = dict(top.get("vars") or {})
    group = ((top.get("children") or {}).get("gitlab")) or {}
    hosts = group.get("hosts") or {}
    if not hosts:
        raise VerifyInputError(f"{path} has no host in the group gitlab (all: children: gitlab:)")
    name, host_vars = next(iter(hosts.items()))
    merged = {**all_vars, **(group.get("vars") or {}), **(host_vars or {})}
    merged.setdefault("ansible_host", name)
    return Deployment(all_vars, merged)


def ssh_runner_for(deployment: Deployment, key_file: str | None, known_hosts: Path) -> SshRunner:
    host = deployment.gitlab_host
    return SshRunner(
        host=str(host["ansible_host"]),
        user=str(host.get("ansible_user", "ubuntu")),
        known_hosts=known_hosts,
        port=int(host.get("ansible_port", 22)),
        key_file=key_file or host.get("ansible_ssh_private_key_file"),
    )


def secrets_dirs(inventory: Path, cloud: str) -> list[Path]:
    """Where the deploy keeps the token and CA files for this inventory, most specific first:
    beside it (a deployment folder holds inventory.yml and secrets/), then .deploy/<cloud>."""
    dirs = [inventory.absolute().parent / "secrets"]
    if cloud:
        dirs.append(Path.cwd() / ".deploy" / cloud / "secrets")
    return list(dict.fromkeys(dirs))


def find_file(candidates: Iterable[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def read_token(path: Path) -> str:
    try:
        return read_token_file(path)
    except TokenFileError as exc:
        raise VerifyInputError(str(exc)) from exc


def default_inventory() -> Path | None:
    """The inventory of the deployment named after its cloud, when there is one."""
    for name in ("aws", "gcp"):
        path = Path(".deploy") / name / "inventory.yml"
        if path.is_file():
            return path
    return None


def repo_suite() -> Path:
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "tests" / "infra" / "conftest.py").is_file():
                return candidate / "tests" / "infra"
    raise VerifyInputError(
        "the infra suite tests/infra was not found: run duoctl verify from the repository checkout"
    )
