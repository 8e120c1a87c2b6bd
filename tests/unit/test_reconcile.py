"""The planner, without HTTP: desired config against a given GitLab state.

The cases that do not concern one version run with the capabilities introspection finds
on GitLab 17.9, 18.9 and 19.4 (the `version` fixture).
"""

from __future__ import annotations

from typing import Any

import pytest
from duoctl.config import ActivationCode, parse_config
from duoctl.gitlab_api import (
    AddOnPurchase,
    Capabilities,
    LicenseInfo,
    RemoteFeature,
    RemoteModel,
    RemoteState,
    RemoteUser,
    split_allowlist,
)
from duoctl.reconcile import activation_problems, make_plan, plan_activation

FAMILIES = frozenset({"MISTRAL", "MIXTRAL", "CODESTRAL", "GPT", "CLAUDE_3"})
PURCHASE = AddOnPurchase(
    "gid://gitlab/GitlabSubscriptions::AddOnPurchase/1", "DUO_ENTERPRISE", 5, 0
)
MODEL_ID = "gid://gitlab/Ai::SelfHostedModel/1"
SECURE = "selfHostedDuoAgentPlatformServiceSecure"
V17, V18, V19 = "17.9.3-ee", "18.9.0-ee", "19.4.1-ee"
VERSIONS = [V17, V18, V19]
# What introspection finds on each version (DuoSettings fields, model input fields, ...).
SETTINGS = {
    V17: frozenset({"aiGatewayUrl"}),
    V18: frozenset({"aiGatewayUrl", "aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"}),
    V19: frozenset(
        {"aiGatewayUrl", "aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl", SECURE}
    ),
}
MODEL_INPUTS = frozenset(
    {"apiToken", "clientMutationId", "endpoint", "identifier", "model", "name"}
)
MODEL_FIELDS = frozenset({"apiToken", "endpoint", "hasApiToken", "id", "identifier", "model"})
PROFILES: dict[str, dict[str, Any]] = {
    V17: {"batch_feature_update": False},
    V18: {},
    V19: {
        "model_inputs": MODEL_INPUTS | {"provider"},
        "model_required_inputs": frozenset({"name", "model", "provider"}),
        "model_fields": MODEL_FIELDS | {"provider"},
        "model_providers": frozenset({"API", "BEDROCK", "VERTEX_AI"}),
    },
}


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def caps(version: str = V18, **changes: Any) -> Capabilities:
    """GitLab `version`'s capabilities (another version: 18.9's), with `changes`."""
    values: dict[str, Any] = {
        "version": version,
        "batch_feature_update": True,
        "duo_settings_inputs": SETTINGS.get(version, SETTINGS[V18]),
        "duo_settings_fields": SETTINGS.get(version, SETTINGS[V18]),
        "model_families": FAMILIES,
        "features": frozenset({"code_generations", "code_completions", "duo_chat"}),
        "add_on_purchases": (PURCHASE,),
        "model_inputs": MODEL_INPUTS,
        "model_required_inputs": frozenset({"name", "model", "endpoint"}),
        "model_fields": MODEL_FIELDS,
    }
    values.update(PROFILES.get(version, {}))
    values.update(changes)
    return Capabilities(**values)


def remote_model(version: str = V18, **changes: Any) -> RemoteModel:
    """Model "m" of `config()` as GitLab lists it (its provider only where GitLab has one)."""
    values: dict[str, Any] = {
        "id": MODEL_ID,
        "name": "m",
        "family": "MISTRAL",
        "endpoint": "http://10.0.3.10:11434/v1",
        "identifier": "custom_openai/mistral:instruct",
        "api_token": None,
        "provider": "API" if version == V19 else None,
    }
    values.update(changes)
    return RemoteModel(**values)


def feature(name: str, provider: str = "unassigned", model: str | None = None) -> RemoteFeature:
    return RemoteFeature(name, provider, model, FAMILIES)


def state(**changes: Any) -> RemoteState:
    values: dict[str, Any] = {
        "allowlist": [],
        "disabled_direct_code_suggestions": False,
        "duo_settings": {},
        "models": [],
        "features": {f: feature(f) for f in ("code_generations", "code_completions", "duo_chat")},
        "users": {"root": RemoteUser("root", "gid://gitlab/User/1", False)},
    }
    values.update(changes)
    return RemoteState(**values)


def config(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "gateway": {"url": "http://10.0.2.10:5052/"},
        "models": [
            {
                "name": "m",
                "family": "mistral",
                "endpoint": "http://10.0.3.10:11434/v1",
                "identifier": "custom_openai/mistral:instruct",
            }
        ],
        "features": {"duo_chat": "m"},
        "seats": ["root"],
    }
    data.update(changes)
    return parse_config(data)


def kinds(plan: Any) -> list[tuple[str, str, str]]:
    return [(c.kind, c.target, c.action) for c in plan.changes]


def test_fresh_plan_order(version: str) -> None:
    plan = make_plan(config(), caps(version), state())
    assert plan.problems == []
    assert kinds(plan) == [
        ("allowlist", "outbound_local_requests_allowlist_raw", "update"),
        ("settings", "disabled_direct_code_suggestions", "update"),
        ("gateway", "duo settings", "update"),
        ("model", "m", "create"),
        ("feature", "duo_chat", "update"),
        ("seat", "root", "assign"),
    ]


def test_matching_state_plans_nothing(version: str) -> None:
    remote = state(
        allowlist=["10.0.2.10", "10.0.3.10"],
        disabled_direct_code_suggestions=True,
        duo_settings={"aiGatewayUrl": "http://10.0.2.10:5052"},
        models=[remote_model(version)],
        features={"duo_chat": feature("duo_chat", "self_hosted", "m")},
        users={"root": RemoteUser("root", "gid://gitlab/User/1", True)},
    )
    plan = make_plan(config(), caps(version), remote)
    assert plan.changes == [] and plan.problems == [] and plan.warnings == []


def test_public_gateway_leaves_direct_connections_alone(version: str) -> None:
    plan = make_plan(config(gateway={"url": "https://aigw.example.com"}), caps(version), state())
    assert "disabled_direct_code_suggestions" not in [c.target for c in plan.changes]


def test_hidden_direct_setting_is_a_warning(version: str) -> None:
    plan = make_plan(config(), caps(version), state(disabled_direct_code_suggestions=None))
    assert any("disabled_direct_code_suggestions is not exposed" in w for w in plan.warnings)


def test_api_key_change_is_detected_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setenv("DUO_KEY", "new-secret")
    cfg = config()
    cfg.models[0].api_key_env = "DUO_KEY"
    remote = state(models=[remote_model(version, api_token="old-secret")])
    plan = make_plan(cfg, caps(version), remote)
    [change] = [c for c in plan.changes if c.kind == "model"]
    assert change.details == {"apiToken": "changed"}
    assert change.payload["apiToken"] == "new-secret"
    assert "secret" not in repr(change) and "secret" not in str(change.public())


def test_instance_without_family_or_feature_is_a_problem(version: str) -> None:
    plan = make_plan(
        config(features={"duo_chat": "m", "code_completions": "m"}),
        caps(version, model_families=frozenset({"GPT"}), features=frozenset({"duo_chat"})),
        state(),
    )
    assert any(f"family mistral is not offered by GitLab {version}" in p for p in plan.problems)
    assert any(
        f"features.code_completions: GitLab {version} has no such" in p for p in plan.problems
    )


def test_beta_feature_not_listed_asks_for_the_beta_toggle(version: str) -> None:
    plan = make_plan(
        config(features={"duo_chat": "m"}),
        caps(version),
        state(features={}),
    )
    assert any("Use beta models and features" in p for p in plan.problems)


def test_incompatible_family_is_a_problem(version: str) -> None:
    remote = state(
        features={"duo_chat": RemoteFeature("duo_chat", "unassigned", None, frozenset({"GPT"}))}
    )
    plan = make_plan(config(), caps(version), remote)
    assert any(
        "model 'm' (mistral) is not compatible; compatible families: gpt" in p
        for p in plan.problems
    )


def test_settings_missing_on_old_versions_are_warnings() -> None:
    cfg = config(gateway={"url": "http://10.0.2.10:5052", "timeout_seconds": 120})
    plan = make_plan(
        cfg, caps(version="18.5.0-ee", duo_settings_inputs=frozenset({"aiGatewayUrl"})), state()
    )
    assert plan.warnings == [
        "gateway setting aiGatewayTimeoutSeconds skipped: it needs GitLab 18.7 or later "
        "(this instance runs 18.5.0-ee)"
    ]
    [gateway] = [c for c in plan.changes if c.kind == "gateway"]
    assert gateway.payload == {"aiGatewayUrl": "http://10.0.2.10:5052"}


@pytest.mark.parametrize(
    ("raw", "entries"),
    [
        ("", []),
        (None, []),
        ("a,b;c d\ne\r\nf\tg", ["a", "b", "c", "d", "e", "f", "g"]),
        ("10.0.0.1:5052,,  10.0.0.0/24", ["10.0.0.1:5052", "10.0.0.0/24"]),
    ],
)
def test_allowlist_split_like_gitlab(raw: str | None, entries: list[str]) -> None:
    assert split_allowlist(raw) == entries


# ---------------------------------------------------------------- subscription activation

CODE = ActivationCode("Abcdefghij0123456789WXYZ", "license.activation_code_file code.txt")


def test_activation_only_without_the_add_on(version: str) -> None:
    assert plan_activation(caps(version), CODE) is None  # the add-on is active: nothing to do
    assert plan_activation(caps(version, add_on_purchases=()), None) is None  # no code either
    offline = LicenseInfo("gid://gitlab/License/3", "offline_cloud", "ultimate", "2027-01-31")
    change = plan_activation(caps(version, add_on_purchases=(), license=offline), CODE)
    assert change is not None
    assert (change.kind, change.target, change.action) == ("license", "subscription", "activate")
    assert change.details == {
        "code_from": "license.activation_code_file code.txt",
        "current": "offline_cloud license, plan ultimate, expires 2027-01-31",
    }
    assert change.payload == {"activation_code": CODE.value}
    assert CODE.value not in repr(change) and CODE.value not in str(change.public())


def test_activation_problems_are_what_introspection_knows(version: str) -> None:
    cfg = config(features={"duo_chat": "m", "code_completions": "m"})
    assert activation_problems(cfg, caps(version)) == []
    found = activation_problems(
        cfg, caps(version, model_families=frozenset({"GPT"}), features=frozenset({"duo_chat"}))
    )
    assert found == [
        f"models.m: family mistral is not offered by GitLab {version}; valid here: gpt",
        f"features.code_completions: GitLab {version} has no such feature; valid here: duo_chat",
    ]


@pytest.mark.parametrize(
    ("license", "hint"),
    [
        (None, "(GitLab has no license now.)"),
        (
            LicenseInfo("1", "legacy_license", "ultimate"),
            "is a legacy license file: GitLab provisions add-ons from cloud licenses",
        ),
        (LicenseInfo("1", "offline_cloud", "ultimate"), "at GitLab's daily subscription sync"),
        (LicenseInfo("1", "online_cloud", "premium"), "has no GitLab Duo Enterprise add-on"),
    ],
)
def test_missing_add_on_names_the_activation_code_and_the_license(
    license: LicenseInfo | None, hint: str, version: str
) -> None:
    plan = make_plan(config(), caps(version, add_on_purchases=(), license=license), state())
    assert plan.problems[0].startswith("The license lacks GitLab Duo Enterprise")
    assert "--activation-code-file" in plan.problems[0] and hint in plan.problems[0]


# ---------------------------------------------------------------- model provider (GitLab 19.x)

BEDROCK = {
    "name": "b",
    "family": "claude_3",
    "identifier": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
}


def model_change(plan: Any, name: str = "m") -> Any:
    [change] = [c for c in plan.changes if c.kind == "model" and c.target == name]
    return change


def test_provider_is_sent_only_where_gitlab_takes_it(version: str) -> None:
    cfg = config(models=[*config().model_dump()["models"], BEDROCK | {"endpoint": None}])
    cfg.models[1].endpoint = "https://bedrock-runtime.us-east-1.amazonaws.com"
    plan = make_plan(cfg, caps(version), state())
    ollama, bedrock = model_change(plan), model_change(plan, "b")
    if version == V19:
        assert ollama.payload["provider"] == "API" and ollama.details["provider"] == "API"
        assert bedrock.payload["provider"] == "BEDROCK"
    else:
        assert "provider" not in ollama.payload and "provider" not in bedrock.payload


def test_changed_provider_is_an_update() -> None:
    remote = state(models=[remote_model(V19, provider="VERTEX_AI")])
    change = model_change(make_plan(config(), caps(V19), remote))
    assert (change.action, change.details) == (
        "update",
        {"provider": {"from": "VERTEX_AI", "to": "API"}},
    )
    assert change.payload["provider"] == "API"
    # A file that moves the model to Bedrock changes its provider and drops its endpoint.
    cfg = config(models=[BEDROCK | {"name": "m"}])
    change = model_change(make_plan(cfg, caps(V19), state(models=[remote_model(V19)])))
    assert change.details == {
        "endpoint": {"from": "http://10.0.3.10:11434/v1", "to": None},
        "identifier": {
            "from": "custom_openai/mistral:instruct",
            "to": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
        },
        "model": {"from": "MISTRAL", "to": "CLAUDE_3"},
        "provider": {"from": "API", "to": "BEDROCK"},
    }
    assert change.payload["endpoint"] is None  # sent as null: GitLab removes it


def test_provider_is_not_compared_where_gitlab_has_none() -> None:
    plan = make_plan(config(), caps(V18), state(models=[remote_model(V18)]))
    assert [c for c in plan.changes if c.kind == "model"] == []


def test_endpoint_less_model_needs_a_gitlab_with_providers(version: str) -> None:
    cfg = config(models=[BEDROCK], features={"duo_chat": "b"})
    plan = make_plan(cfg, caps(version), state())
    problem = (
        f"models.b: GitLab {version} needs an endpoint for every self-hosted model (a bedrock "
        f"model without one needs GitLab 19.x, where models have a provider); add the endpoint"
    )
    if version == V19:
        change = model_change(plan, "b")
        assert plan.problems == [] and change.action == "create"
        assert change.details == {
            "model": "CLAUDE_3",
            "identifier": BEDROCK["identifier"],
            "provider": "BEDROCK",
        }
    else:
        assert plan.problems == [problem]
        assert activation_problems(cfg, caps(version)) == [problem]  # known before activating


def test_provider_the_instance_lacks_is_a_problem() -> None:
    cfg = config(models=[BEDROCK], features={"duo_chat": "b"})
    plan = make_plan(cfg, caps(V19, model_providers=frozenset({"API"})), state())
    assert plan.problems == [
        "models.b: provider bedrock is not offered by GitLab 19.4.1-ee; valid here: api"
    ]


# ---------------------------------------------------------------- agent platform TLS


def gateway_change(plan: Any) -> Any:
    return next((c for c in plan.changes if c.kind == "gateway"), None)


def test_agent_platform_tls_follows_the_plain_url_where_gitlab_has_the_setting() -> None:
    cfg = config(gateway={"url": "http://10.0.2.10:5052", "agent_platform_url": "10.0.2.10:50052"})
    current = {"aiGatewayUrl": "http://10.0.2.10:5052", "duoAgentPlatformServiceUrl": None}
    plan = make_plan(cfg, caps(V19), state(duo_settings=current | {SECURE: True}))
    change = gateway_change(plan)
    assert change.payload == {"duoAgentPlatformServiceUrl": "10.0.2.10:50052", SECURE: False}
    assert change.details[SECURE] == {"from": True, "to": False}
    done = current | {"duoAgentPlatformServiceUrl": "10.0.2.10:50052", SECURE: False}
    assert gateway_change(make_plan(cfg, caps(V19), state(duo_settings=done))) is None
    assert plan.warnings == []


@pytest.mark.parametrize(
    ("gateway", "current", "wanted"),
    [
        ({"agent_platform_secure": True}, False, True),  # explicit, no agent platform URL
        ({"agent_platform_secure": False}, None, False),  # never set (None) is not False
        ({}, True, None),  # neither URL nor key: left alone
    ],
)
def test_agent_platform_tls_values(
    gateway: dict[str, Any], current: bool | None, wanted: bool | None
) -> None:
    cfg = config(gateway={"url": "http://10.0.2.10:5052", **gateway})
    remote = state(duo_settings={"aiGatewayUrl": "http://10.0.2.10:5052", SECURE: current})
    change = gateway_change(make_plan(cfg, caps(V19), remote))
    if wanted is None:
        assert change is None
    else:
        assert change.payload == {SECURE: wanted}


@pytest.mark.parametrize("version", [V17, V18])
def test_agent_platform_tls_is_reported_where_gitlab_lacks_the_setting(version: str) -> None:
    url = {"url": "http://10.0.2.10:5052", "agent_platform_url": "10.0.2.10:50052"}
    implicit = make_plan(config(gateway=url), caps(version), state())
    assert not any(SECURE in w for w in implicit.warnings)  # the file did not ask
    plan = make_plan(config(gateway=url | {"agent_platform_secure": False}), caps(version), state())
    [warning] = [w for w in plan.warnings if SECURE in w]
    assert warning.startswith(
        f"gateway setting {SECURE} (gateway.agent_platform_secure) skipped: GitLab {version} "
        f"has no API for it"
    )
    assert "DUO_AGENT_PLATFORM_SERVICE_SECURE" in warning
    assert SECURE not in gateway_change(plan).payload


# ---------------------------------------------------------------- agent platform features


def test_unavailable_agent_platform_feature_names_the_add_on_an_offline_license_needs() -> None:
    cfg = config(features={"duo_agent_platform": "m"})
    offered = frozenset({"duo_chat", "duo_agent_platform"})  # in the schema, not listed
    offline = LicenseInfo("gid://gitlab/License/3", "offline_cloud", "ultimate")
    remote = state(features={})
    [problem] = make_plan(cfg, caps(V19, license=offline, features=offered), remote).problems
    assert "offline cloud license only when it has the SELF_HOSTED_DAP add-on" in problem
    online = LicenseInfo("gid://gitlab/License/3", "online_cloud", "ultimate")
    [problem] = make_plan(cfg, caps(V19, license=online, features=offered), remote).problems
    assert "Use beta models and features" in problem and "SELF_HOSTED_DAP" in problem
