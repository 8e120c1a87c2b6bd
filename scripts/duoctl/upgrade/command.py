"""`duoctl upgrade`: the running version read, the plan printed, then (unless --dry-run) the
hops run as a resumable pipeline recorded in `<deploy-dir>/<name>/upgrade-state.json`.

The upgrade keeps its own record beside the deploy's state.json (same format), so the deploy's
record of its steps stays as it was. A re-run with the same target resumes the recorded plan
at its first step not done, whatever version GitLab reached meanwhile.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

import yaml

from duoctl.deploy.commands import stop_signal_as_interrupt
from duoctl.deployment import Deployment
from duoctl.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.gitlab_api import GitLabClient
from duoctl.pipeline import Context, Pipeline, Progress, RunResult, Step
from duoctl.token import read_token_file
from duoctl.upgrade import planner
from duoctl.upgrade.gateway_tags import TagReport, default_image, resolve_tags
from duoctl.upgrade.gitlab import running_version
from duoctl.upgrade.steps import ApiAccess, hop_steps

STATE_FILE = "upgrade-state.json"


@dataclass(frozen=True)
class UpgradeOptions:
    target: str  # --gitlab-version X.Y.Z
    name: str | None = None  # None: the only deployment in deploy_dir
    deploy_dir: Path = Path(".deploy")
    dry_run: bool = False
    stops_file: Path | None = None
    all_stops: bool = False
    from_step: str | None = None
    gitlab_url: str | None = None  # another address of GitLab's API than the inventory's
    ca_file: str | None = None
    allow_http: bool = False
    registry_url: str | None = None  # the gateway image registry's API (default: the role's)


@dataclass(frozen=True)
class UpgradeFolder(DeploymentFolder):
    """The deployment's folder, with the upgrade's own state file."""

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE


def _repo_root() -> Path:
    from duoctl.deploy.commands import repo_root

    return repo_root()


def deployment_folder(options: UpgradeOptions) -> UpgradeFolder:
    """The named deployment, or the only one in deploy_dir; own hosts keep their inventory."""
    deploy_dir = Path(options.deploy_dir).expanduser().absolute()
    name = options.name
    if name is None:
        found = sorted(
            p.name
            for p in (deploy_dir.iterdir() if deploy_dir.is_dir() else [])
            if (p / "state.json").is_file() or (p / "inventory.yml").is_file()
        )
        if len(found) != 1:
            raise DuoctlError(
                f"{'no deployment' if not found else 'several deployments'} in {deploy_dir}"
                + (f" ({', '.join(found)})" if found else ""),
                "name the deployment to upgrade with --name (a folder of the deploy dir), or "
                "pass --deploy-dir",
            )
        name = found[0]
    base = DeploymentFolder.of(deploy_dir, name, _repo_root())
    if not base.root.is_dir():
        raise DuoctlError(
            f"there is no deployment {name} in {deploy_dir}",
            "name it with --name (the folders of the deploy dir are the deployments)",
        )
    own = None
    if not base.inventory.is_file():  # own hosts: the inventory deploy hosts was given
        own = _own_inventory(base.state_file)
    return UpgradeFolder(base.root, base.repo, own)


def _own_inventory(state_file: Path) -> Path | None:
    try:
        saved = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    inventory = (saved.get("inputs") or {}).get("inventory") if isinstance(saved, dict) else None
    return Path(inventory) if isinstance(inventory, str) else None


def api_access(options: UpgradeOptions, folder: DeploymentFolder) -> ApiAccess:
    if not folder.inventory.is_file():
        raise DuoctlError(
            f"the deployment {folder.name} has no inventory ({folder.inventory})",
            "finish its deploy first (duoctl deploy), then upgrade it",
        )
    if not folder.admin_token_file.is_file():
        raise DuoctlError(
            f"{folder.admin_token_file} is missing: the deployment's automation token",
            "run the deploy's site step again (duoctl deploy ... --from site)",
        )
    url = options.gitlab_url or Deployment.from_inventory(folder.inventory).gitlab_url
    if urlsplit(url).scheme != "https" and not options.allow_http:
        raise DuoctlError(
            f"{url} is not https: the admin token would travel in the clear",
            "use GitLab's https:// URL, or pass --allow-http (labs only)",
        )
    ca_file = options.ca_file or (str(folder.ca_file) if folder.ca_file.is_file() else None)
    return ApiAccess(url, folder.admin_token_file, ca_file)


def read_version(api: ApiAccess) -> planner.Version:
    client = GitLabClient(api.url, read_token_file(api.token_file), api.ca_file)
    try:
        return running_version(client)
    finally:
        client.close()


def _recorded_plan(folder: UpgradeFolder, target: planner.Version) -> list[planner.Hop] | None:
    """The hops of an unfinished upgrade to the same target, to resume it as planned."""
    try:
        saved = json.loads(folder.state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    inputs = saved.get("inputs") if isinstance(saved, dict) else None
    if not isinstance(inputs, dict) or inputs.get("target") != str(target):
        return None
    steps = saved.get("steps") or {}
    names = inputs.get("steps") or []
    if names and all((steps.get(n) or {}).get("status") == "done" for n in names):
        return None  # finished: a new upgrade plans again
    try:
        return [planner.Hop.from_dict(h) for h in json.loads(str(inputs.get("hops", "[]")))]
    except (ValueError, KeyError, TypeError, DuoctlError):
        return None


def gateway_report(
    options: UpgradeOptions, folder: DeploymentFolder, hops: list[planner.Hop]
) -> TagReport:
    """Each hop's gateway tag, read from the registry the role reads (a mirror: --registry-url)."""
    try:
        inventory = yaml.safe_load(folder.inventory.read_text(encoding="utf-8")) or {}
        inventory_vars = dict((inventory.get("all") or {}).get("vars") or {})
    except (OSError, yaml.YAMLError, AttributeError):
        inventory_vars = {}
    image = default_image(folder.repo, inventory_vars)
    if options.registry_url:
        image = replace(image, registry_url=options.registry_url)
    return resolve_tags(hops, image, folder.repo)


def _site_vars(folder: DeploymentFolder) -> tuple[dict[str, Any], str | None, Any]:
    """The deploy's own extra vars, SSH key and settings (cloud deployments)."""
    if not folder.settings_file.is_file():
        return {}, None, None
    from duoctl.deploy.commands import DeploymentOptions, load_settings
    from duoctl.deploy.steps import site_vars
    from duoctl.settings import load_saved, private_key_of

    cloud: Literal["aws", "gcp"] = (
        "gcp" if load_saved(folder.settings_file).get("cloud") == "gcp" else "aws"
    )
    options = DeploymentOptions(cloud=cloud, name=folder.name, deploy_dir=folder.root.parent)
    settings = load_settings(options, folder, lambda: "192.0.2.1")
    return site_vars(settings), private_key_of(settings.ssh_public_key_file), settings


def main(
    options: UpgradeOptions,
    out: Callable[[str], None] = print,
    progress_stream: TextIO | None = None,
    steps_for: Callable[[list[planner.Hop], ApiAccess], list[Step]] | None = None,
) -> int:
    """Plan (and unless dry-run, run) the upgrade; the exit code."""
    try:
        target = planner.Version.parse(options.target, "--gitlab-version")
        stops = planner.load_stops(options.stops_file)
        folder = deployment_folder(options)
        api = api_access(options, folder)
        current = read_version(api)
        out(f"{folder.name}: GitLab {current} is running ({api.url})")
        recorded = _recorded_plan(folder, target)
        the_plan: planner.Plan | None = None
        if recorded is not None:
            hops = recorded
            verb = "A run resumes" if options.dry_run else "Resuming"
            out(f"{verb} the recorded upgrade to {target} ({folder.state_file}).")
            source = f"the record of the unfinished upgrade, {folder.state_file.name}"
            the_plan = planner.Plan(current, target, tuple(hops), (), source)
        else:
            try:
                the_plan = planner.plan(current, target, stops, options.all_stops)
            except planner.AlreadyCurrent as exc:
                out(exc.message)
                return EXIT_OK
            hops = list(the_plan.hops)
        report = gateway_report(options, folder, hops)
        if the_plan is not None:
            out(the_plan.render(report.by_minor()))
        if report.lines():
            out("\n".join(report.lines()))
        if options.dry_run:
            out("Dry run: nothing was changed.")
            return EXIT_OK
        if report.missing:
            raise DuoctlError(
                "no AI gateway release matches "
                + ", ".join(f"GitLab {x}.{y}" for x, y in sorted(report.missing))
                + " yet: that hop would leave GitLab Duo without a matching gateway",
                "choose a target whose gateway is published (the plan shows each hop's tag), "
                "or wait for the gateway release",
                EXIT_FAILED,
            )
        with folder.lock():
            site_vars, key, settings = _site_vars(folder)
            if steps_for is not None:
                steps = steps_for(hops, api)
            else:
                steps = [
                    step
                    for index, hop in enumerate(hops, start=1)
                    for step in hop_steps(index, hop, api, key, site_vars)
                ]
            progress = Progress(folder.log_file, progress_stream)
            target_name = "hosts" if settings is None else settings.cloud
            ctx = Context(target_name, folder, progress, settings)
            command = f"duoctl upgrade --gitlab-version {target} --name {folder.name}"
            pipeline = Pipeline(steps, ctx, command=command)
            inputs = {
                "target": str(target),
                "hops": json.dumps([h.as_dict() for h in hops], sort_keys=True),
                "steps": pipeline.names,
            }
            with stop_signal_as_interrupt():
                result = pipeline.run(inputs, from_step=options.from_step)
            if result is RunResult.DONE:
                progress.note(f"Upgrade complete: GitLab {target} ({folder.name}).")
    except DuoctlError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:  # an unknown --from step
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result is RunResult.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_OK if result is RunResult.DONE else EXIT_FAILED
