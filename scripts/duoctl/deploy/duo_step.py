"""The duo step: GitLab Duo configured through GitLab's API, in-process.

The deployment's configuration (duoctl.duo_config) is written to `.deploy/<name>/duo.yml` for
the record and applied by `duoctl configure` with the automation token the gitlab role made.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from duoctl import configure
from duoctl.deploy.state import deployment_of
from duoctl.duo_config import config_text, duo_config, ollama_model, vllm_model
from duoctl.errors import DuoctlError
from duoctl.inventory import write_text
from duoctl.pipeline import Context, StepFailed


@dataclass
class DuoStep:
    """`duoctl configure` with the deployment's own configuration.

    `gitlab_url` and `ca_file` reach GitLab's API at another address than the deployment's
    (configure's --gitlab-url and --ca-file).
    """

    activation_code_file: str | None = None  # absolute, checked before any step
    gitlab_url: str | None = None
    ca_file: str | None = None
    name: str = "duo"

    def run(self, ctx: Context) -> None:
        paths = ctx.paths
        if not paths.admin_token_file.is_file():
            raise StepFailed(
                f"{paths.admin_token_file} is missing: the gitlab role creates it in the site "
                "step; run again with --from site"
            )
        try:
            deployment = deployment_of(ctx)
            preset = ctx.settings.preset() if ctx.settings is not None else None
            if deployment.serving == "vllm" and preset is None:
                raise DuoctlError(
                    "own hosts serving with vLLM are not registered by deploy hosts yet",
                    "register the model with duoctl configure (see examples/duo.yml)",
                )
            model = (
                vllm_model(preset, paths.secrets_dir / "vllm_api_key")
                if preset is not None
                else ollama_model(paths.repo, paths.own_inventory)
            )
            config = duo_config(deployment, model, self.activation_code_file)
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
