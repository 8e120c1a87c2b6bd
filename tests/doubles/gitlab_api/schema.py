"""GitLab's GraphQL schema for the double, per GitLab version.

Built from the source-checked SDL in `shared/reference/gitlab-graphql/` (beside the
repository): the 18.x excerpt, or the 17.9 legacy one, each with the addendum appended.
Versions between 18.0 and 18.6 lose the duoSettings fields that arrived later
(duoAgentPlatformServiceUrl in 18.4, aiGatewayTimeoutSeconds in 18.7).
The license operations are the same in both: `currentLicense` and the mutation
`gitlabSubscriptionActivate(input: {activationCode})` returning `license` and `errors`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from graphql import GraphQLSchema, build_schema

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO.parent / "shared" / "reference" / "gitlab-graphql"
EXCERPT = "gitlab_duo_self_hosted_schema_excerpt.graphql"
LEGACY = "gitlab_duo_self_hosted_schema_excerpt_17_9_legacy.graphql"
ADDENDUM = "gitlab_duo_self_hosted_schema_addendum.graphql"

# Field -> first version that has it (on both DuoSettings and DuoSettingsUpdateInput).
LATER_FIELDS = {
    "duoAgentPlatformServiceUrl": (18, 4),
    "aiGatewayTimeoutSeconds": (18, 7),
}


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split("-")[0].split(".")[:2]
    return int(major), int(minor)


def _without_field(sdl: str, name: str) -> str:
    # The field line and the one-line description just above it, if any.
    return re.sub(rf'(?m)^(\s*""".*"""\n)?\s*{name}:.*\n', "", sdl)


@cache
def sdl_for(version: str) -> str:
    if not REFERENCE.is_dir():
        raise FileNotFoundError(f"GitLab GraphQL reference not found at {REFERENCE}")
    vt = version_tuple(version)
    base = LEGACY if vt < (18, 0) else EXCERPT
    sdl = (REFERENCE / base).read_text(encoding="utf-8")
    for name, since in LATER_FIELDS.items():
        if vt < since:
            sdl = _without_field(sdl, name)
    return sdl + "\n" + (REFERENCE / ADDENDUM).read_text(encoding="utf-8")


@cache
def schema_for(version: str) -> GraphQLSchema:
    return build_schema(sdl_for(version))
