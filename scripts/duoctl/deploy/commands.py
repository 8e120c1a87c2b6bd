"""`duoctl preflight`, `duoctl deploy` and `duoctl destroy`: the settings in, the pipeline run,
the exit code out."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duoctl.deploy.cloud import PROVISIONAL_DOMAIN, terraform_variables
from duoctl.deploy.steps import cloud_steps, hosts_steps
from duoctl.pipeline import Context, DeployPaths, Pipeline, Progress, Step, file_digest
from duoctl.settings import (
    Cloud,
    DeploySettings,
    SettingsError,
    detect_public_ip,
    load_saved,
    resolve,
    save,
    settings_file,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
SETTINGS_KEYS = (
    "region",
    "zone",
    "project",
    "ssh_public_key_file",
    "admin_cidr",
    "domain",
    "managed_zone",
    "letsencrypt",
    "license_file",
    "activation_code_file",
    "prefix",
)


def repo_root() -> Path:
    """The checkout holding ansible/ and terraform/: the current directory or the package's."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "ansible" / "playbooks").is_dir() or (candidate / "terraform").is_dir():
                return candidate
    return Path.cwd()


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key, None) for key in SETTINGS_KEYS}


def load_settings(
    args: argparse.Namespace, detect: Callable[[], str] = detect_public_ip
) -> tuple[DeploySettings, Path]:
    cloud: Cloud = args.cloud
    path = settings_file(Path(args.deploy_dir), cloud)
    saved = load_saved(path)
    settings = resolve(cloud, _overrides(args), saved, detect)
    if not saved.get("admin_cidr") and not args.admin_cidr:
        print(
            f"admin CIDR (SSH allowed from): {settings.admin_cidr} (detected; --admin-cidr)",
            file=sys.stderr,
        )
    return settings, path


def preflight_main(args: argparse.Namespace, detect: Callable[[], str] = detect_public_ip) -> int:
    from duoctl import preflight

    try:
        settings, _ = load_settings(args, detect)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = preflight.run_checks(settings)
    print(preflight.render(results, as_json=args.json))
    return EXIT_OK if preflight.all_ok(results) else EXIT_FAILED


def deploy_main(
    args: argparse.Namespace,
    detect: Callable[[], str] = detect_public_ip,
    steps: list[Step] | None = None,
    progress_stream: Any = None,
) -> int:
    """Run (or resume) a deploy. `steps` replaces the default step list (used to aim it)."""
    root = repo_root()
    deploy_dir = Path(args.deploy_dir)
    settings: DeploySettings | None = None
    try:
        if args.cloud == "hosts":
            if not args.inventory:
                raise SettingsError(
                    "deploy hosts needs --inventory, for example --inventory inventory/hosts.yml "
                    "(copy inventory/hosts.example.yml)"
                )
            inventory = Path(args.inventory)
            if not inventory.is_file():
                raise SettingsError(f"inventory {inventory} does not exist")
            inputs: dict[str, Any] = {"inventory": str(inventory), "digest": file_digest(inventory)}
        else:
            settings, path = load_settings(args, detect)
            save(settings, path)
            inventory = Path(args.inventory or root / "inventory" / f"{args.cloud}.yml")
            inputs = settings.fingerprint()
        chosen = (
            steps
            if steps is not None
            else (
                hosts_steps(getattr(args, "activation_code_file", None))
                if settings is None
                else cloud_steps(settings)
            )
        )
        paths = DeployPaths(root=root, target_dir=deploy_dir / args.cloud, inventory=inventory)
        ctx = Context(args.cloud, paths, Progress(paths.log_file, progress_stream), settings)
        command = f"duoctl deploy {args.cloud}"
        if args.cloud == "hosts":
            command += f" --inventory {args.inventory}"
        pipeline = Pipeline(chosen, ctx, command=command)
        ok = pipeline.run(inputs, from_step=args.from_step)
        if ok and settings is not None:
            ctx.progress.note(
                f"The GPU VM bills by the hour: `duoctl destroy {args.cloud}` removes everything."
            )
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK if ok else EXIT_FAILED


def destroy_main(
    args: argparse.Namespace,
    detect: Callable[[], str] = detect_public_ip,
    confirm: Callable[[str], str] = input,
    workdir: Path | None = None,
    progress_stream: Any = None,
) -> int:
    """terraform destroy of a cloud deployment, after confirmation unless --yes."""
    from duoctl import terraform

    try:
        settings, _ = load_settings(args, detect)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    target_dir = Path(args.deploy_dir) / args.cloud
    prompt = (
        f"This destroys the {args.cloud} deployment {settings.prefix!r} in {settings.region}: "
        "the three VMs, their disks (GitLab's data, the models) and the network.\n"
        f"Type {args.cloud!r} to confirm: "
    )
    if not args.yes:
        try:
            answer = confirm(prompt)
        except EOFError:
            answer = ""
        if answer.strip() != args.cloud:
            print("Not confirmed: nothing destroyed (pass --yes to skip this question).")
            return EXIT_BAD_INPUT
    state = target_dir / "state.json"
    data = json.loads(state.read_text(encoding="utf-8")).get("data", {}) if state.exists() else {}
    domain = settings.domain or data.get("wildcard_domain") or PROVISIONAL_DOMAIN
    variables = terraform_variables(settings, domain, data.get("zone"))
    progress = Progress(target_dir / "deploy.log", progress_stream)
    progress.start(f"terraform destroy ({args.cloud}, {settings.region})")
    try:
        terraform.destroy(
            workdir or terraform.terraform_dir(args.cloud), variables, sink=progress.output
        )
    except terraform.TerraformError as exc:
        progress.stop()
        progress.note(f"error: terraform destroy failed: {exc}")
        progress.note(f"Re-run `duoctl destroy {args.cloud}`: destroying again is safe.")
        return EXIT_FAILED
    progress.stop()
    state.unlink(missing_ok=True)
    # The token and password belonged to the GitLab that is gone; a new deploy makes new ones.
    shutil.rmtree(target_dir / "secrets", ignore_errors=True)
    progress.note(
        f"Destroyed. Removed {state} and {target_dir / 'secrets'}; "
        f"{target_dir / 'settings.yml'} is kept for a redeploy."
    )
    return EXIT_OK
