"""The typed state the steps share: the deployment model, kept in the state file."""

from __future__ import annotations

from pydantic import ValidationError

from duoctl.deployment import Deployment
from duoctl.errors import DuoctlError
from duoctl.pipeline import Context, StepFailed


def remember(ctx: Context, deployment: Deployment) -> None:
    ctx.data["deployment"] = deployment.model_dump(mode="json")
    ctx.data["gitlab_url"] = deployment.gitlab_url  # for the summary and the messages


def deployment_of(ctx: Context) -> Deployment:
    """The deployment the earlier steps found; own hosts: the one their inventory describes."""
    saved = ctx.data.get("deployment")
    if saved is not None:
        try:
            return Deployment.model_validate(saved)
        except ValidationError:
            raise StepFailed(
                f"the deployment recorded in {ctx.paths.state_file} is damaged; run again with "
                "--from inventory (cloud) or --from wait_ssh (own hosts)"
            ) from None
    try:
        deployment = Deployment.from_inventory(ctx.paths.inventory)
    except DuoctlError as exc:
        raise StepFailed(str(exc)) from None
    remember(ctx, deployment)
    return deployment
