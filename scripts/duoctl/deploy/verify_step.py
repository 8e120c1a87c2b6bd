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
        if ctx.paths.admin_token_file.is_file():
            argv += ["--token-file", str(ctx.paths.admin_token_file)]
        ca_file = self.ca_file or ctx.paths.ca_file
        if Path(ca_file).is_file():
            argv += ["--ca-file", str(ca_file)]
        if self.gitlab_url:
            argv += ["--gitlab-url", self.gitlab_url]
        if self.skip_rake:
            argv.append("--skip-rake")
        if self.private_key:
            argv += ["--ssh-key", self.private_key]
        return [*argv, "--known-hosts", str(ctx.paths.known_hosts)]

    def run(self, ctx: Context) -> None:
        if importlib.util.find_spec(self.module) is None:
            raise StepFailed(
                "verify is not available in this version of duoctl: every step before it "
                "finished, but nothing has proven that Duo answers. Check by hand: sign in to "
                f"{ctx.data.get('gitlab_url', 'GitLab')} and run "
                "`sudo gitlab-rake 'gitlab:duo:verify_self_hosted_setup[root]'` on the GitLab VM"
            )
        from duoctl import cli, verify

        # What verify is doing goes to the progress tail as it happens; its report is shown
        # in full at the end, with any input error it printed.
        report: list[str] = []
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            args = cli.build_parser().parse_args(self.argv(ctx))
            code = verify.main(args, out=report.append, progress=ctx.progress.output)
        ctx.progress.note("\n".join([*report, errors.getvalue()]).strip())
        if code != 0:
            raise StepFailed(f"verification failed (exit code {code}); see the checks above")
