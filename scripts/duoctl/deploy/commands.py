"""`duoctl preflight`, `duoctl deploy` and `duoctl destroy`: the settings in, the pipeline run,
the exit code out."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from duoctl import process, serving, terraform_workdir
from duoctl.deploy.cloud import PROVISIONAL_DOMAIN, terraform_variables
from duoctl.deploy.steps import cloud_steps, hosts_steps
from duoctl.deployment import Deployment
from duoctl.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.inventory import write_text
from duoctl.pipeline import Context, Pipeline, Progress, RunResult, Step, file_digest
from duoctl.settings import (
    Cloud,
    DeploySettings,
    SettingsError,
    activation_code_path,
    detect_public_ip,
    load_saved,
    resolve,
    save,
)

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
    "gateway_port",
    "gateway_grpc_port",
    "model_port",
    "serving",
    "model_preset",
    "duo_models",
    "state_backend",
    "state_bucket",
    "state_key",
    "state_region",
    "gpu_schedule",
    "backup_retention_days",
)


def repo_root() -> Path:
    """The checkout holding ansible/ and terraform/: the current directory or the package's."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "ansible" / "playbooks").is_dir() or (candidate / "terraform").is_dir():
                return candidate
    return Path.cwd()


@dataclass(frozen=True)
class DeploymentOptions:
    """What preflight, deploy and destroy take: which deployment, the deploy inputs given on
    the command line (keys of SETTINGS_KEYS; None or absent: not given), and the command's own
    switches."""

    cloud: Literal["aws", "gcp", "hosts"]
    name: str | None = None  # None: the cloud
    deploy_dir: Path = Path(".deploy")
    inputs: Mapping[str, Any] = field(default_factory=dict)
    inventory: Path | None = None  # deploy hosts: the user's inventory
    from_step: str | None = None  # deploy: restart at this step
    json: bool = False  # preflight: machine-readable output
    yes: bool = False  # destroy: no confirmation question

    def input(self, key: str) -> Any:
        return self.inputs.get(key)


def hosts_preset(own_hosts: Deployment, name: str | None) -> serving.Preset | None:
    """Own hosts serving with vLLM: the preset that says the model, its engine arguments and
    GitLab's family (--model-preset); none for Ollama."""
    if own_hosts.serving != "vllm":
        if name:
            raise SettingsError(
                f"--model-preset {name} is for a model server in the inventory's vllm group; "
                f"this inventory's is in group {own_hosts.serving}",
                "leave --model-preset out, or move the model server to a vllm group",
            )
        return None
    if not name:
        raise SettingsError(
            "the inventory's model server is in group vllm: deploy hosts needs --model-preset "
            "(the model it serves, its engine arguments and GitLab's model family)",
            f"pass --model-preset {serving.DEFAULT_PRESET}, or another preset of the README's "
            "table that fits the host's GPU",
        )
    chosen = serving.preset(name)
    serving.check_fit(chosen)
    return chosen


def folder_of(options: DeploymentOptions, own_inventory: Path | None = None) -> DeploymentFolder:
    """The deployment's folder: <deploy_dir>/<name, default the cloud>."""
    name = options.name or options.cloud
    return DeploymentFolder.of(options.deploy_dir, name, repo_root(), own_inventory)


def load_settings(
    options: DeploymentOptions,
    folder: DeploymentFolder,
    detect: Callable[[], str] = detect_public_ip,
) -> DeploySettings:
    """The deployment's settings: options over saved over environment, validated."""
    if options.cloud == "hosts":
        raise SettingsError("own hosts have no cloud settings", "pass aws or gcp")
    cloud: Cloud = options.cloud
    saved = load_saved(folder.settings_file)
    overrides = {key: options.input(key) for key in SETTINGS_KEYS}
    if overrides.get("prefix") is None and "prefix" not in saved:
        overrides["prefix"] = default_prefix(folder.name, cloud)
    settings = resolve(cloud, overrides, saved, detect)
    if not saved.get("admin_cidr") and not options.input("admin_cidr"):
        print(
            f"admin CIDR (SSH allowed from): {settings.admin_cidr} (detected; --admin-cidr)",
            file=sys.stderr,
        )
    return settings


@contextlib.contextmanager
def stop_signal_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a Python step the way Ctrl-C does (a tool that runs meanwhile gets its
    own clean stop from duoctl.process), so the step is recorded as interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def default_prefix(name: str, cloud: str) -> str:
    """The cloud resources' name prefix: `duo` for the deployment named after its cloud,
    `duo-<name>` (cut to the 16 characters Terraform allows) for the others, so two
    deployments in one account never share a resource name."""
    return "duo" if name == cloud else f"duo-{name}"[:16].rstrip("-")


def _fail(exc: DuoctlError) -> int:
    print(exc.render(), file=sys.stderr)
    return exc.exit_code


def preflight_main(options: DeploymentOptions, detect: Callable[[], str] = detect_public_ip) -> int:
    from duoctl import preflight

    try:
        settings = load_settings(options, folder_of(options), detect)
        settings.check_files()
    except DuoctlError as exc:
        return _fail(exc)
    results = preflight.run_checks(settings)
    print(preflight.render(results, as_json=options.json))
    return EXIT_OK if preflight.all_ok(results) else EXIT_FAILED


def deploy_main(
    options: DeploymentOptions,
    detect: Callable[[], str] = detect_public_ip,
    steps: list[Step] | None = None,
    progress_stream: Any = None,
) -> int:
    """Run (or resume) a deploy. `steps` replaces the default step list (used to aim it)."""
    settings: DeploySettings | None = None
    try:
        if options.cloud == "hosts":
            if not options.inventory:
                raise SettingsError(
                    "deploy hosts needs --inventory",
                    "copy inventory/hosts.example.yml, fill it in, pass --inventory FILE",
                )
            inventory = options.inventory.absolute()
            if not inventory.is_file():
                raise SettingsError(f"the inventory {inventory} does not exist", "pass its path")
            folder = folder_of(options, inventory)
            own_hosts = Deployment.from_inventory(inventory)  # checked before anything is written
            preset = hosts_preset(own_hosts, options.input("model_preset"))
            inputs: dict[str, Any] = {"inventory": str(inventory), "digest": file_digest(inventory)}
            if preset is not None:
                inputs["model_preset"] = preset.name
            activation = activation_code_path(options.input("activation_code_file"))
        else:
            if options.inventory:
                raise SettingsError(
                    f"--inventory is for deploy hosts; deploy {options.cloud} writes its own",
                    "leave it out: the inventory is <deploy-dir>/<name>/inventory.yml",
                )
            folder = folder_of(options)
            settings = load_settings(options, folder, detect)
            settings.check_files()
            terraform_workdir.check_local_state(folder.terraform_dir)
            inputs = settings.fingerprint()
        with folder.lock():
            if settings is not None:
                save(settings, folder.settings_file)
            else:  # own hosts: their own inventory, with the deployment's host keys
                write_text(folder.ssh_config, own_hosts.ssh_config_text(folder.known_hosts, None))
            chosen = (
                steps
                if steps is not None
                else (
                    hosts_steps(activation, preset) if settings is None else cloud_steps(settings)
                )
            )
            progress = Progress(folder.log_file, progress_stream)
            ctx = Context(options.cloud, folder, progress, settings)
            command = f"duoctl deploy {options.cloud}"
            if folder.name != options.cloud:
                command += f" --name {folder.name}"
            if options.cloud == "hosts":
                command += f" --inventory {options.inventory}"
            pipeline = Pipeline(chosen, ctx, command=command)
            with stop_signal_as_interrupt():
                result = pipeline.run(inputs, from_step=options.from_step)
            if result is RunResult.DONE and settings is not None:
                ctx.progress.note(
                    f"The GPU VM bills by the hour: `{command.replace('deploy', 'destroy', 1)}` "
                    "removes everything."
                )
    except DuoctlError as exc:
        return _fail(exc)
    except ValueError as exc:  # an unknown --from step
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result is RunResult.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_OK if result is RunResult.DONE else EXIT_FAILED


def destroy_main(
    options: DeploymentOptions,
    detect: Callable[[], str] = detect_public_ip,
    confirm: Callable[[str], str] = input,
    source: Path | None = None,
    progress_stream: Any = None,
) -> int:
    """terraform destroy of a cloud deployment, after confirmation unless --yes. Needs only
    what destroying needs: the saved settings and the deployment's Terraform state."""
    from duoctl import terraform

    try:
        folder = folder_of(options)
        if (
            not folder.settings_file.is_file()
            and not (folder.terraform_dir / "backend.tf").is_file()
        ):
            raise DuoctlError(
                f"there is no deployment {folder.name} in {folder.root.parent}",
                "name it with --name (the folders of .deploy/ are the deployments), or pass "
                "--deploy-dir",
            )
        settings = load_settings(options, folder, lambda: "192.0.2.1")
        terraform_workdir.check_local_state(folder.terraform_dir)
    except DuoctlError as exc:
        return _fail(exc)
    prompt = (
        f"This destroys the {options.cloud} deployment {folder.name} ({settings.prefix!r} in "
        f"{settings.region}): the three VMs, their disks (GitLab's data, the models) and the "
        f"network.\nType {folder.name!r} to confirm: "
    )
    if not options.yes:
        try:
            answer = confirm(prompt)
        except EOFError:
            answer = ""
        if answer.strip() != folder.name:
            print("Not confirmed: nothing destroyed (pass --yes to skip this question).")
            return EXIT_BAD_INPUT
    try:
        with folder.lock():
            state = folder.state_file
            data = _state_data(state)
            domain = settings.domain or data.get("wildcard_domain") or PROVISIONAL_DOMAIN
            variables = terraform_variables(settings, domain, data.get("zone"), for_destroy=True)
            source_dir = source or folder.repo / "terraform" / settings.cloud
            backend = settings.state().hcl(folder.name, settings.region)
            terraform_workdir.prepare(source_dir, folder.terraform_dir, backend)
            progress = Progress(folder.log_file, progress_stream)
            progress.start(f"terraform destroy ({folder.name}, {settings.region})")
            again = f"`duoctl destroy {options.cloud} --name {folder.name}`"
            try:
                terraform.init(folder.terraform_dir, sink=progress.output)
                terraform.destroy(folder.terraform_dir, variables, sink=progress.output)
            except process.Interrupted as exc:
                progress.stop()
                progress.note(f"Interrupted: {exc.tool} stopped cleanly. Run {again} again.")
                return EXIT_INTERRUPTED
            except terraform.TerraformError as exc:
                progress.stop()
                progress.note(f"error: terraform destroy failed: {exc}")
                progress.note(f"Re-run {again}: destroying again is safe.")
                return EXIT_FAILED
            progress.stop()
            state.unlink(missing_ok=True)
            # The token, password and host keys belonged to VMs that are gone.
            shutil.rmtree(folder.secrets_dir, ignore_errors=True)
            folder.known_hosts.unlink(missing_ok=True)
            progress.note(
                f"Destroyed. Removed {state}, {folder.secrets_dir} and {folder.known_hosts}; "
                f"{folder.settings_file} is kept for a redeploy."
            )
    except DuoctlError as exc:
        return _fail(exc)
    return EXIT_OK


def _state_data(path: Path) -> dict[str, Any]:
    """The data of the state file; a damaged one is named (destroy needs only its zone)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DuoctlError(
            f"the deploy state {path} is damaged ({exc})",
            "delete it: destroy works from the settings and the Terraform state alone",
        ) from None
    data = saved.get("data", {}) if isinstance(saved, dict) else {}
    return data if isinstance(data, dict) else {}
