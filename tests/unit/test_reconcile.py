"""The planner, without HTTP: desired config against a given GitLab state."""

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


def caps(**changes: Any) -> Capabilities:
    values: dict[str, Any] = {
        "version": "18.9.0-ee",
        "batch_feature_update": True,
        "duo_settings_inputs": frozenset(
            {"aiGatewayUrl", "aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"}
        ),
        "duo_settings_fields": frozenset(
            {"aiGatewayUrl", "aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"}
        ),
        "model_families": FAMILIES,
        "features": frozenset({"code_generations", "code_completions", "duo_chat"}),
        "add_on_purchases": (PURCHASE,),
    }
    values.update(changes)
    return Capabilities(**values)


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


def test_fresh_plan_order() -> None:
    plan = make_plan(config(), caps(), state())
    assert plan.problems == []
    assert kinds(plan) == [
        ("allowlist", "outbound_local_requests_allowlist_raw", "update"),
        ("settings", "disabled_direct_code_suggestions", "update"),
        ("gateway", "duo settings", "update"),
        ("model", "m", "create"),
        ("feature", "duo_chat", "update"),
        ("seat", "root", "assign"),
    ]


def test_matching_state_plans_nothing() -> None:
    remote = state(
        allowlist=["10.0.2.10", "10.0.3.10"],
        disabled_direct_code_suggestions=True,
        duo_settings={"aiGatewayUrl": "http://10.0.2.10:5052"},
        models=[
            RemoteModel(
                "gid://gitlab/Ai::SelfHostedModel/1",
                "m",
                "MISTRAL",
                "http://10.0.3.10:11434/v1",
                "custom_openai/mistral:instruct",
                None,
            )
        ],
        features={"duo_chat": feature("duo_chat", "self_hosted", "m")},
        users={"root": RemoteUser("root", "gid://gitlab/User/1", True)},
    )
    plan = make_plan(config(), caps(), remote)
    assert plan.changes == [] and plan.problems == [] and plan.warnings == []


def test_public_gateway_leaves_direct_connections_alone() -> None:
    plan = make_plan(config(gateway={"url": "https://aigw.example.com"}), caps(), state())
    assert "disabled_direct_code_suggestions" not in [c.target for c in plan.changes]


def test_hidden_direct_setting_is_a_warning() -> None:
    plan = make_plan(config(), caps(), state(disabled_direct_code_suggestions=None))
    assert any("disabled_direct_code_suggestions is not exposed" in w for w in plan.warnings)


def test_api_key_change_is_detected_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUO_KEY", "new-secret")
    cfg = config()
    cfg.models[0].api_key_env = "DUO_KEY"
    remote = state(
        models=[
            RemoteModel(
                "gid://gitlab/Ai::SelfHostedModel/1",
                "m",
                "MISTRAL",
                "http://10.0.3.10:11434/v1",
                "custom_openai/mistral:instruct",
                "old-secret",
            )
        ]
    )
    plan = make_plan(cfg, caps(), remote)
    [change] = [c for c in plan.changes if c.kind == "model"]
    assert change.details == {"apiToken": "changed"}
    assert change.payload["apiToken"] == "new-secret"
    assert "secret" not in repr(change) and "secret" not in str(change.public())


def test_instance_without_family_or_feature_is_a_problem() -> None:
    plan = make_plan(
        config(features={"duo_chat": "m", "code_completions": "m"}),
        caps(model_families=frozenset({"GPT"}), features=frozenset({"duo_chat"})),
        state(),
    )
    assert any("family mistral is not offered by GitLab 18.9.0-ee" in p for p in plan.problems)
    assert any(
        "features.code_completions: GitLab 18.9.0-ee has no such" in p for p in plan.problems
    )


def test_beta_feature_not_listed_asks_for_the_beta_toggle() -> None:
    plan = make_plan(
        config(features={"duo_chat": "m"}),
        caps(),
        state(features={}),
    )
    assert any("Use beta models and features" in p for p in plan.problems)


def test_incompatible_family_is_a_problem() -> None:
    remote = state(
        features={"duo_chat": RemoteFeature("duo_chat", "unassigned", None, frozenset({"GPT"}))}
    )
    plan = make_plan(config(), caps(), remote)
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


def test_activation_only_without_the_add_on() -> None:
    assert plan_activation(caps(), CODE) is None  # the add-on is active: nothing to do
    assert plan_activation(caps(add_on_purchases=()), None) is None  # no code: nothing to do
    offline = LicenseInfo("gid://gitlab/License/3", "offline_cloud", "ultimate", "2027-01-31")
    change = plan_activation(caps(add_on_purchases=(), license=offline), CODE)
    assert change is not None
    assert (change.kind, change.target, change.action) == ("license", "subscription", "activate")
    assert change.details == {
        "code_from": "license.activation_code_file code.txt",
        "current": "offline_cloud license, plan ultimate, expires 2027-01-31",
    }
    assert change.payload == {"activation_code": CODE.value}
    assert CODE.value not in repr(change) and CODE.value not in str(change.public())


def test_activation_problems_are_what_introspection_knows() -> None:
    cfg = config(features={"duo_chat": "m", "code_completions": "m"})
    assert activation_problems(cfg, caps()) == []
    found = activation_problems(
        cfg, caps(model_families=frozenset({"GPT"}), features=frozenset({"duo_chat"}))
    )
    assert found == [
        "models.m: family mistral is not offered by GitLab 18.9.0-ee; valid here: gpt",
        "features.code_completions: GitLab 18.9.0-ee has no such feature; valid here: duo_chat",
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
    license: LicenseInfo | None, hint: str
) -> None:
    plan = make_plan(config(), caps(add_on_purchases=(), license=license), state())
    assert plan.problems[0].startswith("The license lacks GitLab Duo Enterprise")
    assert "--activation-code-file" in plan.problems[0] and hint in plan.problems[0]
