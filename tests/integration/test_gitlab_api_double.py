"""The GitLab API double holds documents to GitLab's schema of each version.

What `duoctl configure` relies on when it trusts the double: the vendored example
operations are valid GitLab documents, and from 19.x a self-hosted model mutation without
the required `provider` input is refused the way GitLab's schema validation refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from graphql import parse, validate

from tests.doubles.gitlab_api import ADMIN_TOKEN, GitLabDouble, gitlab_double
from tests.doubles.gitlab_api.schema import OPS, excerpt_for, schema_for

V17, V18, V19 = "17.9.3-ee", "18.9.0-ee", "19.4.1-ee"
OLLAMA = {
    "name": "mistral-7b-ollama",
    "model": "MISTRAL",
    "endpoint": "http://10.0.3.10:11434/v1",
    "identifier": "custom_openai/mistral:instruct",
}
CREATE = (OPS / "01_create_model.graphql").read_text(encoding="utf-8")
CHECK = (OPS / "04_connection_check.graphql").read_text(encoding="utf-8")


def post(double: GitLabDouble, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(
        f"{double.url}/api/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


@pytest.fixture(params=[V18, V19])
def double(request: pytest.FixtureRequest) -> Iterator[GitLabDouble]:
    with gitlab_double(request.param) as started:
        yield started


@pytest.mark.parametrize(
    ("version", "excerpt"),
    [
        (V17, "gitlab_duo_self_hosted_schema_excerpt_17_9_legacy.graphql"),
        ("18.0.0-ee", "gitlab_duo_self_hosted_schema_excerpt.graphql"),
        (V18, "gitlab_duo_self_hosted_schema_excerpt.graphql"),
        ("19.0.0-ee", "gitlab_duo_self_hosted_schema_excerpt_19_4.graphql"),
        (V19, "gitlab_duo_self_hosted_schema_excerpt_19_4.graphql"),
    ],
)
def test_versions_map_to_the_excerpts(version: str, excerpt: str) -> None:
    assert excerpt_for(version) == excerpt
    schema = schema_for(version)
    fields = schema.get_type("AiSelfHostedModelCreateInput").fields  # type: ignore[union-attr]
    assert ("provider" in fields) is version.startswith("19.")


@pytest.mark.parametrize("version", [V18, V19])
@pytest.mark.parametrize("path", sorted(OPS.glob("*.graphql")), ids=lambda p: p.name)
def test_example_operations_are_valid_documents(version: str, path: Any) -> None:
    errors = validate(schema_for(version), parse(path.read_text(encoding="utf-8")))
    assert errors == []


def test_model_without_provider_is_refused_from_19(double: GitLabDouble) -> None:
    answer = post(double, CREATE, {"input": OLLAMA})
    if double.instance.version == V18:  # 18.x has no provider: the same input is fine
        assert answer["data"]["aiSelfHostedModelCreate"]["errors"] == []
        assert double.invalid_documents == []
        return
    [error] = answer["errors"]
    # graphql-core 3.3 words it as GitLab does: "Expected value of type
    # 'AiSelfHostedModelCreateInput' to include required field 'provider'".
    assert "required" in error["message"] and "'provider'" in error["message"]
    assert answer.get("data") is None and not double.instance.models
    assert len(double.invalid_documents) == 1
    # Written inline, the same omission fails document validation instead.
    inline = """mutation { aiSelfHostedModelCreate(input: {name: "m", model: MISTRAL,
      endpoint: "http://10.0.3.10:11434/v1"}) { errors } }"""
    [error] = post(double, inline, {})["errors"]
    assert "required" in error["message"] and "provider" in error["message"]
    [error] = post(double, CHECK, {"input": OLLAMA})["errors"]
    assert "'provider'" in error["message"]
    assert not double.instance.models and len(double.invalid_documents) == 3


def test_provider_is_stored_and_read_back() -> None:
    with gitlab_double(V19) as double:
        answer = post(double, CREATE, {"input": OLLAMA | {"provider": "API"}})
        assert answer["data"]["aiSelfHostedModelCreate"]["errors"] == []
        bedrock = {
            "name": "claude-bedrock",
            "model": "CLAUDE_3",
            "identifier": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
            "provider": "BEDROCK",
        }
        assert post(double, CREATE, {"input": bedrock})["data"]["aiSelfHostedModelCreate"] == {
            "selfHostedModel": {
                "id": "gid://gitlab/Ai::SelfHostedModel/2",
                "name": "claude-bedrock",
                "model": "claude_3",
                "endpoint": None,
                "identifier": bedrock["identifier"],
                "hasApiToken": False,
                "releaseState": "GA",
            },
            "errors": [],
        }
        listed = post(double, "{ aiSelfHostedModels { nodes { name provider endpoint } } }", {})
        assert listed["data"]["aiSelfHostedModels"]["nodes"] == [
            {"name": OLLAMA["name"], "provider": "API", "endpoint": OLLAMA["endpoint"]},
            {"name": "claude-bedrock", "provider": "BEDROCK", "endpoint": None},
        ]
        # An API model needs its endpoint (a model validation: a payload error, not a schema one).
        no_endpoint = {"name": "vllm", "model": "MIXTRAL", "provider": "API"}
        created = post(double, CREATE, {"input": no_endpoint})["data"]["aiSelfHostedModelCreate"]
        assert created == {"selfHostedModel": None, "errors": ["Endpoint can't be blank"]}
        checked = post(double, CHECK, {"input": bedrock})["data"]
        assert checked["aiSelfHostedModelConnectionCheck"]["result"]["success"] is True
        assert double.invalid_documents == []


def test_agent_platform_tls_setting_is_stored() -> None:
    with gitlab_double(V19) as double:
        query = "{ duoSettings { selfHostedDuoAgentPlatformServiceSecure } }"
        read = post(double, query, {})["data"]["duoSettings"]
        assert read == {"selfHostedDuoAgentPlatformServiceSecure": True}  # GitLab's default
        update = """mutation($input: DuoSettingsUpdateInput!) {
          duoSettingsUpdate(input: $input) {
            duoSettings { selfHostedDuoAgentPlatformServiceSecure } errors } }"""
        variables = {"input": {"selfHostedDuoAgentPlatformServiceSecure": False}}
        answer = post(double, update, variables)["data"]["duoSettingsUpdate"]
        assert answer == {
            "duoSettings": {"selfHostedDuoAgentPlatformServiceSecure": False},
            "errors": [],
        }
        assert double.instance.duo["selfHostedDuoAgentPlatformServiceSecure"] is False
        assert double.invalid_documents == []
    with gitlab_double(V18) as double:
        [error] = post(double, query, {})["errors"]
        assert "Cannot query field 'selfHostedDuoAgentPlatformServiceSecure'" in error["message"]
