"""What the upgrade asks GitLab's API: the running version and the batched background
migrations, with the deployment's automation token (duoctl.gitlab_api's client)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitlab import exceptions as gl_exceptions

from duoctl.errors import EXIT_FAILED, DuoctlError
from duoctl.gitlab_api import GitLabClient, GitLabError
from duoctl.upgrade.planner import Version

# GET /api/v4/admin/batched_background_migrations (doc/api/admin/batched_background_migrations.md):
# status is paused, active, finished, failed, finalizing or finalized.
DONE = frozenset({"finished", "finalized"})
FAILED = "failed"


@dataclass(frozen=True)
class Migration:
    id: int
    job_class_name: str
    table_name: str
    status: str
    progress: float | None

    def describe(self) -> str:
        progress = f", {self.progress:.0f}%" if self.progress is not None else ""
        return f"{self.job_class_name} on {self.table_name} ({self.status}{progress})"


def running_version(client: GitLabClient) -> Version:
    """GitLab's version from GET /api/v4/version (needs the admin token)."""
    try:
        data = client._rest_call(
            "reading GitLab's version", lambda: client._rest.http_get("/version")
        )
    except GitLabError as exc:
        raise DuoctlError(
            f"cannot read the running GitLab version: {exc}",
            "check that GitLab is up and the deployment's token is valid (duoctl verify)",
            EXIT_FAILED,
        ) from None
    text = str(data.get("version", "")) if isinstance(data, dict) else ""
    try:
        return Version.parse(text, "the running GitLab version")
    except DuoctlError as exc:
        raise DuoctlError(exc.message, "upgrade a GitLab release build only", EXIT_FAILED) from None


def migrations(
    client: GitLabClient, database: str = "main", optional: bool = False
) -> list[Migration]:
    """The last batched background migrations of a database (GitLab lists 20). `optional`: a
    database the instance does not have (400/404, e.g. `ci` without a decomposed database)
    has none."""
    path = "/admin/batched_background_migrations"

    def call() -> Any:
        try:
            return client._rest.http_get(path, query_data={"database": database})
        except gl_exceptions.GitlabHttpError as exc:
            if optional and exc.response_code in (400, 404):
                return []
            raise

    data: Any = client._rest_call(f"listing the batched background migrations ({database})", call)
    if not isinstance(data, list):
        raise GitLabError(f"GET {path} answered {type(data).__name__}, not a list")
    return [
        Migration(
            int(item.get("id", 0)),
            str(item.get("job_class_name", "?")),
            str(item.get("table_name", "?")),
            str(item.get("status", "?")),
            float(item["progress"]) if item.get("progress") is not None else None,
        )
        for item in data
        if isinstance(item, dict)
    ]


def all_migrations(client: GitLabClient) -> list[Migration]:
    """Those of the main database and, when GitLab has one, of the separate ci database."""
    return migrations(client) + migrations(client, "ci", optional=True)


def unfinished(found: list[Migration]) -> list[Migration]:
    return [m for m in found if m.status not in DONE]
