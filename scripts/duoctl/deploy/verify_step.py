"""The last step: `duoctl verify` on the deploy's inventory."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

from duoctl.pipeline import Context, StepFailed


@dataclass
class VerifyStep:
    """`duoctl verify --inventory FILE` when this version of duoctl has it.

    `gitlab_url` and `ca_file` send the completion to another address of GitLab's API than
    the inventory's (verify's --gitlab-url and --ca-file); `skip_rake` leaves out the rake
    check (for a GitLab that cannot run it).
    """

    module: str = "duoctl.verify"
    private_key: str | None = None
    gitlab_url: str | None = None
    ca_file: str | None = None
    skip_rake: bool = False
    name: str = "verify"

    def argv(self, ctx: Context) -> list[str]:
        argv = ["verify", "--inventory", str(ctx.paths.inventory)]
        secrets = ctx.paths.secrets_dir
        if ctx.paths.admin_token_file.is_file():
            argv += ["--token-file", str(ctx.paths.admin_token_file)]
        ca_file = self.ca_file or secrets / "gitlab_ca.crt"
        if Path(ca_file).is_file():
            argv += ["--ca-file", str(ca_file)]
        if self.gitlab_url:
            argv += ["--gitlab-url", self.gitlab_url]
        if self.skip_rake:
            argv.append("--skip-rake")
        if self.private_key:
            argv += ["--ssh-key", self.private_key]
        return argv

    def run(self, ctx: Context) -> None:
        if importlib.util.find_spec(self.module) is None:
            raise StepFailed(
                "verify is not available in this version of duoctl: every step before it "
                "finished, but nothing has proven that Duo answers. Check by hand: sign in to "
                f"{ctx.data.get('gitlab_url', 'GitLab')} and run "
                "`sudo gitlab-rake 'gitlab:duo:verify_self_hosted_setup[root]'` on the GitLab VM"
            )
        from duoctl import cli

        report = io.StringIO()
        try:
            with contextlib.redirect_stdout(report), contextlib.redirect_stderr(report):
                code = cli.main(self.argv(ctx))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        ctx.progress.note(report.getvalue().rstrip())
        if code != 0:
            raise StepFailed(f"verification failed (exit code {code}); see the checks above")
