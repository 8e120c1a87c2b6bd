"""The last step: `duoctl verify` on the deployment, in-process."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

from duoctl import verify
from duoctl.pipeline import Context, StepFailed


@dataclass
class VerifyStep:
    """verify with the deployment's inventory, token, CA, SSH key and known_hosts.

    `gitlab_url` and `ca_file` send the completion to another address of GitLab's API than
    the inventory's (verify's --gitlab-url and --ca-file); `skip_rake` leaves out the rake
    check (for a GitLab that cannot run it).
    """

    private_key: str | None = None
    gitlab_url: str | None = None
    ca_file: str | None = None
    skip_rake: bool = False
    name: str = "verify"

    def options(self, ctx: Context, out: Callable[[str], None]) -> verify.VerifyOptions:
        paths = ctx.paths
        token = paths.admin_token_file if paths.admin_token_file.is_file() else None
        ca_file = self.ca_file or (str(paths.ca_file) if paths.ca_file.is_file() else None)
        return verify.VerifyOptions(
            inventory=paths.inventory,
            token_file=token,
            ca_file=ca_file,
            gitlab_url=self.gitlab_url,
            ssh_key=self.private_key,
            known_hosts=paths.known_hosts,
            rake=not self.skip_rake,
            out=out,
            progress=ctx.progress.output,
        )

    def run(self, ctx: Context) -> None:
        # What verify is doing goes to the progress tail as it happens; its report is shown
        # in full at the end, with any input error it printed.
        report: list[str] = []
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = verify.run(self.options(ctx, report.append))
        ctx.progress.note("\n".join([*report, errors.getvalue()]).strip())
        if code != 0:
            raise StepFailed(f"verification failed (exit code {code}); see the checks above")
