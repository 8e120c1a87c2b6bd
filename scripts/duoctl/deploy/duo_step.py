"""The duo step: GitLab Duo configured through GitLab's API, in-process.

The served model's identifier comes from the server: its `/v1/models` (vLLM's with the API key
as Bearer token) is read through an SSH tunnel (duoctl.tunnel: the model host is private,
reached through the GitLab host), and `custom_openai/<that id>` is registered; a vLLM server
that does not list the preset's served name stops the step, naming both. The deployment's
configuration (duoctl.duo_config, with the `--duo-models` models and feature mapping) is
written to `.deploy/<name>/duo.yml` for the record and applied by `duoctl configure` with the
automation token the gitlab role made.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from duoctl import configure, tunnel
from duoctl.deploy.state import deployment_of
from duoctl.deployment import Deployment
from duoctl.duo_config import config_text, duo_config, listed_models, ollama_model, vllm_model
from duoctl.errors import DuoctlError
from duoctl.inventory import write_text
from duoctl.pipeline import Context, StepFailed
from duoctl.serving import Preset
from duoctl.settings import DeploySettings, private_key_of

# (the step's context, the deployment, the model server's API key) -> the ids it lists
ListModels = Callable[[Context, Deployment, str | None], list[str]]


def list_through_tunnel(ctx: Context, deployment: Deployment, api_key: str | None) -> list[str]:
    """The model server's /v1/models ids, read through an SSH tunnel to the model host with
    the deployment's key (beside its SSH public key; own hosts: ssh-agent and ~/.ssh) and
    pinned host keys."""
    settings = ctx.settings
    key_file = private_key_of(settings.ssh_public_key_file) if settings is not None else None
    with tunnel.forward(
        deployment,
        deployment.model,
        deployment.ports.ollama_port,
        key_file=key_file,
        known_hosts=ctx.paths.known_hosts,
    ) as address:
        return listed_models(f"http://{address}", api_key)


@dataclass
class DuoStep:
    """`duoctl configure` with the deployment's own configuration.

    `gitlab_url` and `ca_file` reach GitLab's API at another address than the deployment's
    (configure's --gitlab-url and --ca-file).
    """

    activation_code_file: str | None = None  # absolute, checked before any step
    gitlab_url: str | None = None
    ca_file: str | None = None
    list_models: ListModels = list_through_tunnel  # how /v1/models is read
    preset: Preset | None = None  # own hosts serving with vLLM (cloud deploys: the settings')
    name: str = "duo"

    def run(self, ctx: Context) -> None:
        paths = ctx.paths
        if not paths.admin_token_file.is_file():
            raise StepFailed(
                f"{paths.admin_token_file} is missing: the gitlab role creates it in the site "
                "step; run again with --from site"
            )
        settings = ctx.settings
        try:
            deployment = deployment_of(ctx)
            preset = settings.preset() if settings is not None else self.preset
            if deployment.serving == "vllm" and preset is None:
                raise DuoctlError(
                    "the model server serves with vLLM but no preset says which model",
                    "run deploy hosts with --model-preset",
                )
            if preset is not None:
                key_file = paths.secrets_dir / "vllm_api_key"
                listed = self.list_models(ctx, deployment, _read_key(key_file))
                model = vllm_model(preset, key_file, listed)
            else:
                listed = self.list_models(ctx, deployment, None)
                model = ollama_model(paths.repo, paths.own_inventory, listed)
            ctx.progress.output(f"the model server serves {model.identifier}")
            config = duo_config(
                deployment,
                model,
                self.activation_code_file,
                settings.duo_models if settings is not None else None,
                _bedrock_region(deployment, settings),
            )
            write_text(paths.duo_config, config_text(config), 0o600)
        except DuoctlError as exc:
            raise StepFailed(str(exc)) from None
        ca_file = self.ca_file or (str(paths.ca_file) if paths.ca_file.is_file() else None)
        options = configure.ConfigureOptions(
            config=config,
            gitlab_url=self.gitlab_url,
            token_file=paths.admin_token_file,
            ca_file=ca_file,
            out=ctx.progress.output,
        )
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = configure.run(options)
        if code != 0:
            raise StepFailed(f"duoctl configure failed (exit {code}): {errors.getvalue().strip()}")


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DuoctlError(
            f"{path}: {exc.strerror}: the vllm role writes the model server's API key there",
            "run duoctl deploy again with --from site",
        ) from None
    if not key:
        raise DuoctlError(f"{path} is empty", "run duoctl deploy again with --from site")
    return key


def _bedrock_region(deployment: Deployment, settings: DeploySettings | None) -> str | None:
    """Where the AI gateway calls Bedrock: Terraform's bedrock_region, else the AWS region."""
    if deployment.bedrock is not None:
        return deployment.bedrock.region
    return settings.region if settings is not None and settings.cloud == "aws" else None
