"""`duoctl preflight {aws|gcp}`: check a deployment's inputs and the cloud account before spending.

Each check returns a CheckResult (name, ok, detail, fix); `render` prints them as text or JSON.
"""

from __future__ import annotations

from duoctl.preflight.checks import CheckResult, all_ok, render
from duoctl.settings import DeploySettings

__all__ = ["CheckResult", "all_ok", "render", "run_checks"]


def run_checks(settings: DeploySettings) -> list[CheckResult]:
    """The checks of the settings' cloud, with the cloud SDK's default credentials."""
    if settings.cloud == "aws":
        from duoctl.preflight.aws import run_checks as aws_checks

        return aws_checks(settings)
    from duoctl.preflight.gcp import run_checks as gcp_checks

    return gcp_checks(settings)
