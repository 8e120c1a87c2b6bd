"""What status reads from the deployment folder: which deployment, its hosts, settings, the
last verify (state.json) and the newest bench results. Bad input raises DuoctlError (exit 2)."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from duoctl.deployment import Deployment
from duoctl.errors import DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.settings import DeploySettings, SettingsError, load_saved, private_key_of
from duoctl.status.options import StatusOptions
from duoctl.token import TokenFileError, read_token_file

DEFAULT_NAMES = ("aws", "gcp")  # the deployments named after their cloud, as verify finds them


@dataclass(frozen=True)
class Inputs:
    folder: DeploymentFolder
    deployment: Deployment
    settings: DeploySettings | None
    state: dict[str, Any]  # state.json as saved ({} when there is none)


def _exists(folder: DeploymentFolder) -> bool:
    return folder.state_file.is_file() or folder.inventory.is_file()


def find_folder(options: StatusOptions) -> DeploymentFolder:
    cwd = Path.cwd()
    if options.inventory is not None and not options.inventory.is_file():
        raise DuoctlError(
            f"the inventory {options.inventory} does not exist",
            "pass --inventory with your hosts' inventory (see inventory/hosts.example.yml)",
        )
    if options.name:
        folder = DeploymentFolder.of(options.deploy_dir, options.name, cwd, options.inventory)
    elif options.inventory is not None:  # own hosts: secrets and known_hosts beside it
        inventory = options.inventory.absolute()
        folder = DeploymentFolder(root=inventory.parent, repo=cwd, own_inventory=inventory)
    else:
        candidates = [DeploymentFolder.of(options.deploy_dir, n, cwd) for n in DEFAULT_NAMES]
        folder = next((f for f in candidates if _exists(f)), candidates[0])
    if not _exists(folder):
        root = options.deploy_dir.expanduser()
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DuoctlError(
            f"no deployment {folder.name!r} in {root} (no state.json, no inventory.yml)",
            (f"pass --name with one of: {', '.join(names)}" if names else "deploy first")
            + ", or --inventory for your own hosts",
        )
    return folder


def read_state(folder: DeploymentFolder) -> dict[str, Any]:
    if not folder.state_file.is_file():
        return {}
    try:
        data = json.loads(folder.state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DuoctlError(
            f"the deploy state {folder.state_file} is damaged ({exc})",
            "run the deploy again to write it anew (duoctl deploy ... --name "
            f"{folder.name}), or pass --inventory",
        ) from None
    if not isinstance(data, dict):
        raise DuoctlError(f"the deploy state {folder.state_file} is damaged", "deploy again")
    return data


def read_deployment(folder: DeploymentFolder, state: dict[str, Any]) -> Deployment:
    saved = (state.get("data") or {}).get("deployment")
    if saved is not None and folder.own_inventory is None:
        try:
            return Deployment.model_validate(saved)
        except ValidationError:
            raise DuoctlError(
                f"the deployment recorded in {folder.state_file} is damaged",
                "run the deploy again with --from inventory",
            ) from None
    return Deployment.from_inventory(folder.inventory)  # DuoctlError when missing or bad


def read_settings(folder: DeploymentFolder) -> DeploySettings | None:
    if not folder.settings_file.is_file():
        return None
    try:
        return DeploySettings.model_validate(load_saved(folder.settings_file))
    except SettingsError:
        raise
    except ValidationError as exc:
        raise DuoctlError(
            f"the settings {folder.settings_file} are damaged "
            f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})",
            "fix the file, or run the deploy again with the options you want",
        ) from None


def load(options: StatusOptions) -> Inputs:
    folder = find_folder(options)
    state = read_state(folder)
    return Inputs(folder, read_deployment(folder, state), read_settings(folder), state)


def token_of(options: StatusOptions, folder: DeploymentFolder) -> str | None:
    path = options.token_file
    if path is None and folder.admin_token_file.is_file():
        path = folder.admin_token_file
    if path is None:
        return os.environ.get("GITLAB_TOKEN") or None
    try:
        return read_token_file(path)
    except TokenFileError as exc:
        raise DuoctlError(str(exc), "pass --token-file with a readable token file") from None


def ssh_key_of(options: StatusOptions, settings: DeploySettings | None) -> str | None:
    if options.ssh_key:
        return options.ssh_key
    return private_key_of(settings.ssh_public_key_file) if settings else None


def vllm_key_of(folder: DeploymentFolder) -> str | None:
    path = folder.secrets_dir / "vllm_api_key"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def newest_bench(folder: DeploymentFolder) -> tuple[str, datetime, Any] | None:
    """(run folder name, when it ran, knee) of the newest bench/*/results.json (`duoctl bench`,
    schema duoctl.bench/1: its top-level `knee`); None when there is none."""
    results = [p for p in (folder.root / "bench").glob("*/results.json") if p.is_file()]
    if not results:
        return None
    newest = max(results, key=lambda p: p.stat().st_mtime)
    when = datetime.fromtimestamp(newest.stat().st_mtime, UTC)
    try:
        data = json.loads(newest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return newest.parent.name, when, None
    if not isinstance(data, dict):
        return newest.parent.name, when, None
    with contextlib.suppress(KeyError, ValueError):  # else the file's time
        when = datetime.fromisoformat(str(data["started_at"]))
    return newest.parent.name, when, data.get("knee")
