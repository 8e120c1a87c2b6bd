"""GitLab's GraphQL schema for the double, per GitLab version.

Built from the source-checked SDL excerpts kept beside this file in `schemas/` (see its
README): the 17.9 legacy excerpt for 17.x, the 18.9 excerpt for 18.x and the 19.4 excerpt
for 19.x and later, each with the addendum appended. Minor versions older than a field
lose it (`LATER_FIELDS`): duoAgentPlatformServiceUrl arrived in 18.4,
aiGatewayTimeoutSeconds in 18.7, the model allowlist experiments in 19.1.
In 19.x the self-hosted model mutations require `provider: AiSelfHostedModelProvider!`
and DuoSettings has `selfHostedDuoAgentPlatformServiceSecure`.
The license operations are the same in all: `currentLicense` and the mutation
`gitlabSubscriptionActivate(input: {activationCode})` returning `license` and `errors`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import (
    DefinitionNode,
    DocumentNode,
    GraphQLSchema,
    build_ast_schema,
    parse,
    print_ast,
)

SCHEMAS = Path(__file__).resolve().parent / "schemas"
OPS = SCHEMAS / "ops"
LEGACY = "gitlab_duo_self_hosted_schema_excerpt_17_9_legacy.graphql"
EXCERPT_18 = "gitlab_duo_self_hosted_schema_excerpt.graphql"
EXCERPT_19 = "gitlab_duo_self_hosted_schema_excerpt_19_4.graphql"
ADDENDUM = "gitlab_duo_self_hosted_schema_addendum.graphql"

# (type, field) -> first version that has it; older versions of the same excerpt lose it.
LATER_FIELDS: dict[tuple[str, str], tuple[int, int]] = {
    ("DuoSettings", "duoAgentPlatformServiceUrl"): (18, 4),
    ("DuoSettingsUpdateInput", "duoAgentPlatformServiceUrl"): (18, 4),
    ("DuoSettings", "aiGatewayTimeoutSeconds"): (18, 7),
    ("DuoSettingsUpdateInput", "aiGatewayTimeoutSeconds"): (18, 7),
    ("AiFeatureSetting", "allowList"): (19, 1),
    ("Mutation", "aiFeatureSettingModelAllowlistUpdate"): (19, 1),
}


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split("-")[0].split(".")[:2]
    return int(major), int(minor)


def excerpt_for(version: str) -> str:
    """The file name of the excerpt the double uses for `version`."""
    vt = version_tuple(version)
    if vt < (18, 0):
        return LEGACY
    return EXCERPT_18 if vt < (19, 0) else EXCERPT_19


def _document(version: str) -> DocumentNode:
    path = SCHEMAS / excerpt_for(version)
    if not path.is_file():
        raise FileNotFoundError(f"GitLab GraphQL schema excerpt not found at {path}")
    sdl = path.read_text(encoding="utf-8") + "\n" + (SCHEMAS / ADDENDUM).read_text("utf-8")
    document = parse(sdl)
    vt = version_tuple(version)
    missing = {key for key, since in LATER_FIELDS.items() if vt < since}
    return DocumentNode(
        loc=document.loc,
        definitions=tuple(_without(d, missing) for d in document.definitions),
    )


def _without(definition: DefinitionNode, missing: set[tuple[str, str]]) -> DefinitionNode:
    """The type definition without the fields in `missing` (AST nodes are not edited)."""
    fields = getattr(definition, "fields", None)
    name = getattr(getattr(definition, "name", None), "value", "")
    if not fields or not any((name, f.name.value) in missing for f in fields):
        return definition
    values = {key: getattr(definition, key) for key in definition.keys}
    values["fields"] = tuple(f for f in fields if (name, f.name.value) not in missing)
    return type(definition)(**values)


@cache
def sdl_for(version: str) -> str:
    return print_ast(_document(version))


@cache
def schema_for(version: str) -> GraphQLSchema:
    return build_ast_schema(_document(version))
