"""`duoctl configure` end to end against the GitLab API double.

Every case runs on GitLab 17.9 (the legacy schema), 18.9 and 19.4 (the `version` fixture);
the cases about one version's schema say which.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl.cli import main

from tests.doubles.gitlab_api import ADMIN_TOKEN, USER_TOKEN, GitLabDouble, gitlab_double
from tests.doubles.gitlab_api.instance import (
    ACTIVATION_CODE,
    ACTIVATION_CODE_WITHOUT_DUO,
    INVALID_CODE_ERROR,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "duo.yml"
MODEL = "mistral-7b-ollama"
GATEWAY = "http://10.0.2.10:5052"
AGENT_PLATFORM = "10.0.2.10:50052"
WRONG_CODE = "Wrong0Activation0Code000"  # well formed, unknown to the Customers Portal
SECRETS = (ADMIN_TOKEN, USER_TOKEN, ACTIVATION_CODE, ACTIVATION_CODE_WITHOUT_DUO, WRONG_CODE)

V17, V18, V19 = "17.9.3-ee", "18.9.0-ee", "19.4.1-ee"
VERSIONS = [V17, V18, V19]
TIMEOUT, AGENT_URL = "aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"
SECURE = "selfHostedDuoAgentPlatformServiceSecure"
# Schema items -> the first version of the double that has them.
SINCE = {TIMEOUT: (18, 7), AGENT_URL: (18, 4), SECURE: (19, 0), "provider": (19, 0)}
BEDROCK_MODEL = {
    "name": "claude-bedrock",
    "family": "claude_3",
    "identifier": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
}


def model_fields_read(document: str) -> set[str]:
    """The fields a query reads of each `aiSelfHostedModels` node."""
    found = re.search(r"aiSelfHostedModels\([^)]*\)\s*\{\s*nodes\s*\{([^}]*)\}", document)
    assert found, document
    return set(found.group(1).split())


def has(version: str, item: str) -> bool:
    major, minor = version.split(".")[:2]
    return (int(major), int(minor)) >= SINCE[item]


def expected_duo(version: str) -> dict[str, Any]:
    """The Duo settings after configuring a fresh instance with the example file."""
    return {
        "aiGatewayUrl": GATEWAY,
        TIMEOUT: 120 if has(version, TIMEOUT) else 60,
        AGENT_URL: AGENT_PLATFORM if has(version, AGENT_URL) else None,
        SECURE: not has(version, SECURE),  # GitLab's default (TLS) where it cannot be set
    }


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gitlab(version: str) -> Iterator[GitLabDouble]:
    with gitlab_double(version) as double:
        yield double
        assert double.invalid_documents == [], "a request GitLab would reject was sent"


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry pauses, recorded instead of slept (keeps the retry tests fast)."""
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    return pauses


def example(double: GitLabDouble, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["gitlab"]["url"] = double.url
    data.update(changes)
    return data


class Runner:
    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp_path = tmp_path
        self.capsys = capsys
        self.token_file = tmp_path / "token"
        self.token_file.write_text(ADMIN_TOKEN + "\n")
        self.outputs: list[str] = []

    def __call__(self, config: dict[str, Any], *extra: str, token: bool = True) -> tuple[int, str]:
        path = self.tmp_path / "duo.yml"
        path.write_text(yaml.safe_dump(config))
        args = ["configure", "--config", str(path), *extra]
        urls = (
            str(config.get("gitlab", {}).get("url", "")),
            str(extra),
            os.environ.get("GITLAB_URL"),
        )
        if any("http://" in str(url) for url in urls):
            args.append("--allow-http")  # the double speaks plain HTTP unless given a CA
        if token:
            args += ["--token-file", str(self.token_file)]
        code = main(args)
        out = self.capsys.readouterr()
        text = out.out + out.err
        self.outputs.append(text)
        return code, text


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Runner]:
    runner = Runner(tmp_path, capsys)
    yield runner
    for text in runner.outputs:
        for secret in SECRETS:
            assert secret not in text, "a token or an activation code leaked into output"


def test_fresh_instance_is_configured_fully(
    gitlab: GitLabDouble, run: Runner, version: str
) -> None:
    code, out = run(example(gitlab))
    assert code == 0, out
    gl = gitlab.instance
    assert gl.allowlist() == ["10.0.2.10", "10.0.3.10"]
    assert gl.settings["disabled_direct_code_suggestions"] is True
    assert gl.duo == expected_duo(version)
    [model] = gl.models.values()
    assert (model.name, model.model, model.endpoint, model.identifier, model.provider) == (
        MODEL,
        "mistral",
        "http://10.0.3.10:11434/v1",
        "custom_openai/mistral:instruct",
        "API",
    )
    for feature in ("code_generations", "code_completions", "duo_chat"):
        assert gl.features[feature] == {"provider": "self_hosted", "model_id": model.id}
    assert gl.seats == {1}
    assert "create" in out and "change(s) applied" in out


def test_second_run_changes_nothing(gitlab: GitLabDouble, run: Runner) -> None:
    assert run(example(gitlab))[0] == 0
    gitlab.reset_log()
    code, out = run(example(gitlab))
    assert code == 0
    assert "no changes" in out
    assert gitlab.writes == 0
    assert gitlab.requests <= 6
    assert all(entry.operation != "mutation" for entry in gitlab.log)


def test_dry_run_prints_the_plan_and_changes_nothing(gitlab: GitLabDouble, run: Runner) -> None:
    code, out = run(example(gitlab), "--dry-run")
    assert code == 0
    assert gitlab.writes == 0
    assert not gitlab.instance.models
    assert f"would create    model {MODEL}" in out
    assert "would update    feature duo_chat: unassigned -> mistral-7b-ollama" in out
    assert "would assign" in out
    assert "nothing changed" in out


def test_json_output(gitlab: GitLabDouble, run: Runner) -> None:
    code, out = run(example(gitlab), "--json")
    report = json.loads(out)
    assert code == 0 and report["changed"] is True and report["dry_run"] is False
    kinds = [c["kind"] for c in report["changes"]]
    assert kinds == [
        "allowlist",
        "settings",
        "gateway",
        "model",
        "feature",
        "feature",
        "feature",
        "seat",
    ]
    code, out = run(example(gitlab), "--json")
    assert json.loads(out)["changes"] == []


def test_drift_is_repaired(gitlab: GitLabDouble, run: Runner, version: str) -> None:
    assert run(example(gitlab))[0] == 0
    gl = gitlab.instance
    [model] = gl.models.values()
    model.endpoint = "http://10.9.9.9:11434/v1"
    gl.features["duo_chat"] = {"provider": "vendored", "model_id": None}
    gl.duo["aiGatewayTimeoutSeconds"] = 60
    gitlab.reset_log()
    code, out = run(example(gitlab))
    assert code == 0, out
    assert model.endpoint == "http://10.0.3.10:11434/v1"
    assert gl.features["duo_chat"] == {"provider": "self_hosted", "model_id": model.id}
    assert "endpoint 'http://10.9.9.9:11434/v1' -> 'http://10.0.3.10:11434/v1'" in out
    assert "feature duo_chat: vendored -> mistral-7b-ollama" in out
    if has(version, TIMEOUT):
        assert gl.duo["aiGatewayTimeoutSeconds"] == 120
        assert gitlab.writes == 3
    else:  # the timeout is not GitLab's to set here: left alone
        assert gl.duo["aiGatewayTimeoutSeconds"] == 60
        assert gitlab.writes == 2


def test_allowlist_is_merged_never_clobbered(gitlab: GitLabDouble, run: Runner) -> None:
    gitlab.instance.settings["outbound_local_requests_allowlist_raw"] = "192.168.5.5,hooks.internal"
    code, _ = run(example(gitlab, outbound_allowlist=["10.0.4.0/24"]))
    assert code == 0
    assert gitlab.instance.allowlist() == [
        "192.168.5.5",
        "hooks.internal",
        "10.0.2.10",
        "10.0.3.10",
        "10.0.4.0/24",
    ]


def test_unlisted_models_are_kept_unless_pruned(gitlab: GitLabDouble, run: Runner) -> None:
    cfg = example(gitlab)
    cfg["models"].append(
        {"name": "old-vllm", "family": "mixtral", "endpoint": "http://10.0.5.5:8000/v1"}
    )
    assert run(cfg)[0] == 0
    assert {m.name for m in gitlab.instance.models.values()} == {MODEL, "old-vllm"}
    assert run(example(gitlab))[0] == 0
    assert len(gitlab.instance.models) == 2
    code, out = run(example(gitlab, prune_models=True))
    assert code == 0
    assert {m.name for m in gitlab.instance.models.values()} == {MODEL}
    assert "delete" in out and "old-vllm" in out


def test_feature_can_be_vendored_or_disabled(gitlab: GitLabDouble, run: Runner) -> None:
    cfg = example(gitlab)
    cfg["features"] = {"code_completions": "disabled", "duo_chat": "vendored"}
    assert run(cfg)[0] == 0
    assert gitlab.instance.features["code_completions"]["provider"] == "disabled"
    assert gitlab.instance.features["duo_chat"]["provider"] == "vendored"


@pytest.mark.parametrize(
    ("version", "skipped", "kept"),
    [
        ("17.9.3-ee", ["aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"], []),
        ("18.2.0-ee", ["aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"], []),
        ("18.5.1-ee", ["aiGatewayTimeoutSeconds"], ["duoAgentPlatformServiceUrl"]),
        ("18.7.0-ee", [], ["aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"]),
        ("19.0.0-ee", [], ["aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"]),
        ("19.4.1-ee", [], ["aiGatewayTimeoutSeconds", "duoAgentPlatformServiceUrl"]),
    ],
)
def test_settings_follow_the_instance_schema(
    run: Runner, version: str, skipped: list[str], kept: list[str]
) -> None:
    with gitlab_double(version) as double:
        code, out = run(example(double))
        assert code == 0, out
        assert double.invalid_documents == []
        since = {"aiGatewayTimeoutSeconds": "18.7", "duoAgentPlatformServiceUrl": "18.4"}
        for name in skipped:
            assert f"{name} skipped: it needs GitLab {since[name]} or later" in out
            assert name not in double.instance.duo or double.instance.duo[name] in (None, 60)
        for name in kept:
            assert double.instance.duo[name] in (120, "10.0.2.10:50052")
        # The agent platform URL is plain host:port: TLS off where GitLab has the setting.
        assert double.instance.duo[SECURE] is not has(version, SECURE)
        assert "agent_platform_secure) skipped" not in out  # not asked for: no warning
        features = double.instance.features
        assert {f for f, v in features.items() if v["provider"] == "self_hosted"} == {
            "code_generations",
            "code_completions",
            "duo_chat",
        }
        mutations = [e.name for e in double.log if e.operation == "mutation"]
        expected = "MapFeatureToModel" if version.startswith("17.") else "MapFeaturesToModel"
        assert mutations.count(expected) == (3 if version.startswith("17.") else 1)
        double.reset_log()
        code, out = run(example(double))
        assert code == 0 and "no changes" in out and double.writes == 0


# ---------------------------------------------------------------- provider, agent platform TLS


def test_registration_sends_the_provider_where_the_schema_has_it(
    gitlab: GitLabDouble, run: Runner, version: str
) -> None:
    code, out = run(example(gitlab))
    assert code == 0, out
    [create] = gitlab.received("CreateSelfHostedModel")
    sent = create.variables["input"]
    [read] = gitlab.received("DuoState")
    if has(version, "provider"):
        assert sent["provider"] == "API"  # an OpenAI-compatible endpoint (Ollama)
        assert "provider=API" in out
        assert "provider" in model_fields_read(read.document)  # read back to compare
    else:  # GitLab before 19 has no provider input: sending one would be refused
        assert "provider" not in sent and "provider" not in model_fields_read(read.document)
    assert sent["endpoint"] == "http://10.0.3.10:11434/v1"


def test_changed_provider_is_an_update(run: Runner) -> None:
    with gitlab_double(V19) as double:
        assert run(example(double))[0] == 0
        [model] = double.instance.models.values()
        model.provider = "VERTEX_AI"  # changed outside the file
        double.reset_log()
        code, out = run(example(double))
        assert code == 0, out
        assert f"update          model {MODEL}: provider 'VERTEX_AI' -> 'API'" in out
        assert [e.name for e in double.log if e.operation == "mutation"] == [
            "UpdateSelfHostedModel"
        ]
        [update] = double.received("UpdateSelfHostedModel")
        assert update.variables["input"]["provider"] == "API"
        assert model.provider == "API"
        # The file's own change of platform: custom_openai -> bedrock means API -> BEDROCK.
        cfg = example(double)
        cfg["models"][0].update(identifier="bedrock/mistral.mistral-7b-instruct-v0:2")
        del cfg["models"][0]["endpoint"]
        code, out = run(cfg)
        assert code == 0, out
        assert "provider 'API' -> 'BEDROCK'" in out
        assert "endpoint 'http://10.0.3.10:11434/v1' -> None" in out
        assert (model.provider, model.endpoint) == ("BEDROCK", None)
        assert run(cfg)[1].count("no changes") == 1
        assert double.invalid_documents == []


def test_bedrock_identifier_registers_a_bedrock_model(
    gitlab: GitLabDouble, run: Runner, version: str
) -> None:
    cfg = example(gitlab)
    cfg["models"].append(dict(BEDROCK_MODEL))  # no endpoint: Bedrock is reached by its SDK
    cfg["features"]["duo_chat"] = BEDROCK_MODEL["name"]
    code, out = run(cfg)
    if not has(version, "provider"):
        # GitLab before 19 requires an endpoint for every model: refused before any change.
        assert code == 1
        assert (
            f"models.claude-bedrock: GitLab {version} needs an endpoint for every self-hosted "
            f"model (a bedrock model without one needs GitLab 19.x"
        ) in out
        assert gitlab.writes == 0
        return
    assert code == 0, out
    creates = {e.variables["input"]["name"]: e for e in gitlab.received("CreateSelfHostedModel")}
    sent = creates["claude-bedrock"].variables["input"]
    assert sent["provider"] == "BEDROCK" and "endpoint" not in sent
    assert creates[MODEL].variables["input"]["provider"] == "API"
    bedrock = next(m for m in gitlab.instance.models.values() if m.name == "claude-bedrock")
    assert (bedrock.provider, bedrock.endpoint, bedrock.model) == ("BEDROCK", None, "claude_3")
    assert gitlab.instance.features["duo_chat"]["model_id"] == bedrock.id
    assert gitlab.instance.allowlist() == ["10.0.2.10", "10.0.3.10"]  # no endpoint, no host
    code, out = run(cfg)
    assert code == 0 and "no changes" in out


# vLLM, Bedrock and Azure OpenAI models with a mixed feature mapping, as `duoctl deploy
# --duo-models` writes them (duoctl.duo_config): Bedrock with its region and no endpoint.
VLLM_KEY, AZURE_KEY = "vllm-key-0123456789", "azure-key-0123456789"
BEDROCK_PROFILE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MIXED_FEATURES = {
    "code_completions": "codestral-vllm",
    "code_generations": "disabled",
    "duo_chat": "claude-sonnet-4",
    "duo_chat_explain_code": "gpt-4o",
    "duo_chat_write_tests": "vendored",
}


def mixed(double: GitLabDouble, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "vllm.key").write_text(VLLM_KEY + "\n")
    (tmp_path / "azure.key").write_text(AZURE_KEY + "\n")
    return example(
        double,
        models=[
            {
                "name": "codestral-vllm",
                "family": "codestral",
                "endpoint": "http://10.0.3.10:8000/v1",
                "identifier": "custom_openai/codestral-22b",
                "api_key_file": str(tmp_path / "vllm.key"),
            },
            {
                "name": "claude-sonnet-4",
                "family": "claude_3",
                "identifier": f"bedrock/{BEDROCK_PROFILE}",
                "region": "us-east-1",
            },
            {
                "name": "gpt-4o",
                "family": "gpt",
                "endpoint": "https://example-resource.openai.azure.com",
                "identifier": "azure/gpt-4o",
                "api_key_file": str(tmp_path / "azure.key"),
            },
        ],
        features=dict(MIXED_FEATURES),
    )


@pytest.mark.parametrize("version", [V18, V19])
def test_vllm_bedrock_and_azure_models_with_a_mixed_feature_mapping(
    gitlab: GitLabDouble, run: Runner, version: str, tmp_path: Path
) -> None:
    cfg = mixed(gitlab, tmp_path)
    code, out = run(cfg)
    assert code == 0, out
    assert VLLM_KEY not in out and AZURE_KEY not in out
    sent = {
        e.variables["input"]["name"]: e.variables["input"]
        for e in gitlab.received("CreateSelfHostedModel")
    }
    models = {m.name: m for m in gitlab.instance.models.values()}
    bedrock, azure, vllm = models["claude-sonnet-4"], models["gpt-4o"], models["codestral-vllm"]
    if has(version, "provider"):  # 19.x: Bedrock by its provider, without an endpoint
        assert sent["claude-sonnet-4"]["provider"] == "BEDROCK"
        assert "endpoint" not in sent["claude-sonnet-4"]
        assert (bedrock.provider, bedrock.endpoint) == ("BEDROCK", None)
        assert sent["gpt-4o"]["provider"] == sent["codestral-vllm"]["provider"] == "API"
    else:  # 18.x: no provider; every model has an endpoint, Bedrock its region's runtime
        assert all("provider" not in values for values in sent.values())
        assert bedrock.endpoint == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert (bedrock.identifier, bedrock.model, bedrock.api_token) == (
        f"bedrock/{BEDROCK_PROFILE}",
        "claude_3",
        None,
    )
    assert (azure.identifier, azure.endpoint, azure.api_token) == (
        "azure/gpt-4o",
        "https://example-resource.openai.azure.com",
        AZURE_KEY,
    )
    assert (vllm.identifier, vllm.api_token) == ("custom_openai/codestral-22b", VLLM_KEY)
    features = gitlab.instance.features
    assert features["code_completions"] == {"provider": "self_hosted", "model_id": vllm.id}
    assert features["duo_chat"] == {"provider": "self_hosted", "model_id": bedrock.id}
    assert features["duo_chat_explain_code"] == {"provider": "self_hosted", "model_id": azure.id}
    assert features["code_generations"]["provider"] == "disabled"
    assert features["duo_chat_write_tests"]["provider"] == "vendored"
    # Only private hosts need GitLab's local-requests allowlist: not the cloud endpoints.
    allowed = gitlab.instance.allowlist()
    assert "example-resource.openai.azure.com" not in allowed
    assert not any("amazonaws.com" in entry for entry in allowed)
    code, out = run(cfg)
    assert code == 0 and "no changes" in out, out


def test_explicit_provider_is_sent(run: Runner) -> None:
    with gitlab_double(V19) as double:
        cfg = example(double)
        cfg["models"].append(
            {
                "name": "gemini-vertex",
                "family": "gemini",
                "identifier": "vertex_ai/gemini-2.5-pro",
                "provider": "vertex_ai",
            }
        )
        code, out = run(cfg)
        assert code == 0, out
        vertex = next(m for m in double.instance.models.values() if m.name == "gemini-vertex")
        assert (vertex.provider, vertex.endpoint) == ("VERTEX_AI", None)
        assert double.invalid_documents == []


def test_agent_platform_tls_is_set_where_gitlab_has_the_setting(run: Runner) -> None:
    with gitlab_double(V19) as double:
        duo = double.instance.duo
        assert duo[SECURE] is True  # GitLab's default
        code, out = run(example(double))  # agent_platform_url set, agent_platform_secure not
        assert code == 0, out
        assert duo[SECURE] is False
        assert f"{SECURE} True -> False" in out
        [update] = double.received("UpdateDuoSettings")
        assert update.variables["input"][SECURE] is False
        cfg = example(double)
        cfg["gateway"]["agent_platform_secure"] = True  # a gateway behind TLS
        code, out = run(cfg)
        assert code == 0, out
        assert duo[SECURE] is True and f"{SECURE} False -> True" in out
        double.reset_log()
        code, out = run(cfg)
        assert code == 0 and "no changes" in out and double.writes == 0
        # Without an agent platform URL and without the key, the setting is left alone.
        cfg = example(double)
        del cfg["gateway"]["agent_platform_url"]
        code, out = run(cfg)
        assert code == 0 and "no changes" in out and duo[SECURE] is True
        assert double.invalid_documents == []


@pytest.mark.parametrize("version", [V17, V18])
def test_agent_platform_tls_is_reported_where_gitlab_lacks_the_setting(
    run: Runner, version: str
) -> None:
    with gitlab_double(version) as double:
        cfg = example(double)
        cfg["gateway"]["agent_platform_secure"] = False
        code, out = run(cfg)
        assert code == 0, out
        warning = (
            f"warning: gateway setting {SECURE} (gateway.agent_platform_secure) skipped: "
            f"GitLab {version} has no API for it"
        )
        assert warning in out and "DUO_AGENT_PLATFORM_SERVICE_SECURE" in out
        for entry in double.log:
            assert SECURE not in entry.document  # neither read nor sent
        assert double.instance.duo[SECURE] is True  # untouched
        double.reset_log()
        code, out = run(cfg)
        assert code == 0 and "no changes" in out and warning in out and double.writes == 0
        assert double.invalid_documents == []


def test_gitlab_older_than_17_9_is_refused(run: Runner) -> None:
    with gitlab_double("17.8.2-ee") as double:
        code, out = run(example(double))
        assert code == 1
        assert "GitLab 17.8.2-ee is too old" in out and "17.9 or later" in out
        assert double.writes == 0


def test_license_without_duo_enterprise_changes_nothing(gitlab: GitLabDouble, run: Runner) -> None:
    gitlab.instance.duo_enterprise_seats = None
    code, out = run(example(gitlab))
    assert code == 1
    assert "lacks GitLab Duo Enterprise" in out and "Admin > Subscription" in out
    assert gitlab.writes == 0


def test_missing_user_and_full_seats_are_reported_before_changes(
    gitlab: GitLabDouble, run: Runner
) -> None:
    gitlab.instance.duo_enterprise_seats = 1
    code, out = run(example(gitlab, seats=["root", "alice", "nobody"]))
    assert code == 1
    assert "user 'nobody' does not exist" in out
    assert "2 new GitLab Duo Enterprise seat(s) needed but only 1" in out
    assert gitlab.writes == 0


def test_seat_lookup_matches_exact_usernames(gitlab: GitLabDouble, run: Runner) -> None:
    assert run(example(gitlab, seats=["alice2"]))[0] == 0
    assert gitlab.instance.seats == {3}
    code, out = run(example(gitlab, seats=["alice", "alice2"]))
    assert code == 0 and gitlab.instance.seats == {2, 3}
    assert out.count("seat for") == 1


# ---------------------------------------------------------------- invalid input


def _mutate(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target: Any = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return cfg


INVALID = [
    ("gateway.typo", "x", "gateway.typo: unknown key"),
    ("gateway.url", "10.0.2.10:5052", "gateway.url: must be a full http:// or https://"),
    ("gateway.timeout_seconds", 30, "between 60 and 600"),
    ("gateway.agent_platform_url", "grpc://10.0.2.10:50052", "without a scheme"),
    ("models.0.family", "mistralai", "valid values: claude_3, codegemma"),
    ("models.0.endpoint", "http://10.0.3.10:11434", "must end in /v1 for a custom_openai"),
    (
        "models.0.identifier",
        "openai/mistral",
        "platform one of custom_openai, bedrock, vertex_ai, azure",
    ),
    ("models.0.provider", "ollama", "unknown provider 'ollama'; valid values: api, bedrock"),
    ("models.0.provider", "bedrock", "provider bedrock does not match identifier"),
    ("models.0.endpoint", KeyError, "endpoint is required for provider api"),
    ("gateway.agent_platform_secure", "maybe", "Input should be a valid boolean"),
    ("models.0.api_key", "secret", "models[0].api_key: unknown key"),
    ("models.0.name", KeyError, "models[0].name: required key is missing"),
    ("features.duo_chat", "no-such-model", "'no-such-model' is not a model name"),
    ("features.code_review", "vendored", "unknown feature(s) code_review"),
    ("seats", ["root", "root"], "duplicate username(s) in seats: root"),
    ("prune_models", "sometimes", "prune_models: Input should be a valid boolean"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_input_sends_no_request(
    gitlab: GitLabDouble, run: Runner, path: str, value: Any, message: str
) -> None:
    code, out = run(_mutate(example(gitlab), path, value))
    assert code == 2
    assert message in out
    assert "Nothing was sent to GitLab" in out
    assert gitlab.requests == 0


def test_every_problem_is_listed_at_once(gitlab: GitLabDouble, run: Runner) -> None:
    cfg = example(gitlab)
    cfg["gateway"]["url"] = "ftp://x"
    cfg["models"].append(dict(cfg["models"][0]))
    cfg["models"][0]["family"] = "nope"
    cfg["extra"] = 1
    code, out = run(cfg)
    assert code == 2
    for expected in ("gateway.url", "models[0].family", "extra: unknown key"):
        assert expected in out
    assert gitlab.requests == 0


def test_missing_token_and_url_are_bad_input(
    gitlab: GitLabDouble, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITLAB_TOKEN", raising=False)
    code, out = run(example(gitlab), token=False)
    assert code == 2 and "no GitLab token" in out
    cfg = example(gitlab)
    del cfg["gitlab"]
    monkeypatch.delenv("GITLAB_URL", raising=False)
    code, out = run(cfg)
    assert code == 2 and "no GitLab URL" in out
    assert gitlab.requests == 0


def test_url_and_token_from_the_environment(
    gitlab: GitLabDouble, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("GITLAB_URL", gitlab.url)
    cfg = example(gitlab)
    cfg["gitlab"]["url"] = "http://127.0.0.1:1"  # the command line wins over the file
    code, out = run(cfg, "--gitlab-url", gitlab.url, token=False)
    assert code == 0, out
    del cfg["gitlab"]
    code, out = run(cfg, token=False)
    assert code == 0 and "no changes" in out


# ---------------------------------------------------------------- failures


def test_invalid_token_names_the_token(gitlab: GitLabDouble, run: Runner) -> None:
    run.token_file.write_text("glpat-wrong-token")
    code, out = run(example(gitlab))
    assert code == 1
    assert "rejected the token (HTTP 401)" in out and "`api` scope" in out
    assert "glpat-wrong-token" not in out
    assert gitlab.writes == 0


def test_non_admin_token_asks_for_an_administrator(gitlab: GitLabDouble, run: Runner) -> None:
    run.token_file.write_text(USER_TOKEN)
    code, out = run(example(gitlab))
    assert code == 1
    assert "HTTP 403" in out and "administrator" in out and "admin_mode" in out
    assert gitlab.writes == 0


def test_graphql_payload_errors_name_the_object_and_stop(gitlab: GitLabDouble, run: Runner) -> None:
    gitlab.instance.mutation_errors["aiSelfHostedModelCreate"] = ["Endpoint is blocked"]
    code, out = run(example(gitlab))
    assert code == 1
    assert f"self-hosted model '{MODEL}': GitLab refused the change: Endpoint is blocked" in out
    assert not gitlab.instance.features and not gitlab.instance.seats
    code, out = run(example(gitlab))  # a re-run finishes the job
    assert code == 0 and gitlab.instance.seats == {1}


def test_transient_errors_are_retried(
    gitlab: GitLabDouble, run: Runner, backoff: list[float]
) -> None:
    gitlab.fail_next = [502, 503, 500]
    code, out = run(example(gitlab))
    assert code == 0, out
    assert gitlab.instance.seats == {1}
    assert len(backoff) >= 3


def test_persistent_server_errors_are_reported(
    gitlab: GitLabDouble, run: Runner, backoff: list[float]
) -> None:
    gitlab.fail_next = [502] * 50
    code, out = run(example(gitlab))
    assert code == 1
    assert "HTTP 502" in out and "Traceback" not in out
    assert backoff == sorted(backoff) and len(backoff) >= 5  # growing pauses, then it gives up


def test_unreachable_gitlab_is_reported(run: Runner, version: str, backoff: list[float]) -> None:
    with gitlab_double(version) as double:
        cfg = example(double)
    code, out = run(cfg)
    assert code == 1
    assert "cannot reach GitLab at" in out and "--gitlab-url" in out


def test_private_ca_needs_the_ca_file(
    run: Runner, tmp_path: Path, version: str, backoff: list[float]
) -> None:
    with gitlab_double(version, tls_dir=tmp_path) as double:
        code, out = run(example(double))
        assert code == 1
        assert "TLS verification failed" in out and "--ca-file" in out
        assert double.writes == 0
        code, out = run(example(double), "--ca-file", str(tmp_path / "ca.crt"))
        assert code == 0, out
        assert double.instance.seats == {1}


def test_api_key_from_the_environment(
    gitlab: GitLabDouble, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = example(gitlab)
    cfg["models"][0]["api_key_env"] = "DUO_TEST_OLLAMA_KEY"
    monkeypatch.delenv("DUO_TEST_OLLAMA_KEY", raising=False)
    code, out = run(cfg)
    assert code == 2 and "DUO_TEST_OLLAMA_KEY (api_key_env) is not set" in out
    assert gitlab.requests == 0
    monkeypatch.setenv("DUO_TEST_OLLAMA_KEY", "sk-placeholder-1")
    code, out = run(cfg)
    assert code == 0 and "sk-placeholder-1" not in out
    [model] = gitlab.instance.models.values()
    assert model.api_token == "sk-placeholder-1"
    monkeypatch.setenv("DUO_TEST_OLLAMA_KEY", "sk-placeholder-2")
    code, out = run(cfg)
    assert code == 0 and "apiToken" in out and "sk-placeholder" not in out
    assert model.api_token == "sk-placeholder-2"
    assert run(cfg)[1].count("no changes") == 1


# ---------------------------------------------------------------- online license activation


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    path = tmp_path / "activation_code"
    path.write_text(ACTIVATION_CODE + "\n")
    path.chmod(0o600)
    return path


def with_code(double: GitLabDouble, path: Path) -> dict[str, Any]:
    return example(double, license={"activation_code_file": str(path)})


def mutations(double: GitLabDouble) -> list[str]:
    return [e.name for e in double.log if e.operation == "mutation"]


def unchanged_fresh_instance(double: GitLabDouble) -> bool:
    gl = double.instance
    return (
        gl.license is None
        and gl.duo_enterprise_seats is None
        and not gl.models
        and not gl.features
        and not gl.seats
        and gl.allowlist() == []
        and gl.duo["aiGatewayUrl"] is None
    )


def test_activation_code_licenses_a_fresh_instance_then_configures_it(
    run: Runner, code_file: Path, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with gitlab_double(version) as double:
        double.instance.remove_license()
        code, out = run(with_code(double, code_file))
        assert code == 0, out
        gl = double.instance
        assert gl.license is not None and gl.license.type == "online_cloud"
        assert gl.duo_enterprise_seats == 10
        assert gl.seats == {1} and len(gl.models) == 1
        assert gl.settings["disabled_direct_code_suggestions"] is True  # exposed by the add-on
        assert mutations(double)[0] == "ActivateSubscription"
        assert mutations(double).count("ActivateSubscription") == 1
        assert (
            f"activate        subscription with the activation code from "
            f"license.activation_code_file {code_file} (now: no license)"
        ) in out
        assert double.invalid_documents == []
        # A re-run finds the add-on active: no activation, no change, reads only.
        double.reset_log()
        code, out = run(with_code(double, code_file))
        assert code == 0 and "no changes" in out
        assert double.writes == 0 and mutations(double) == []
        assert double.requests <= 6
    assert ACTIVATION_CODE not in caplog.text, "the activation code reached a log"


def test_activation_code_from_the_flag_or_the_environment(
    gitlab: GitLabDouble,
    run: Runner,
    code_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    version: str,
) -> None:
    gitlab.instance.remove_license()
    code, out = run(example(gitlab), "--activation-code-file", str(code_file), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["changes"][0] == {
        "kind": "license",
        "target": "subscription",
        "action": "activate",
        "details": {"code_from": f"--activation-code-file {code_file}", "current": "no license"},
    }
    with gitlab_double(version) as other:
        other.instance.remove_license()
        monkeypatch.setenv("GITLAB_ACTIVATION_CODE", ACTIVATION_CODE)
        code, out = run(example(other))
        assert code == 0, out
        assert "activation code from $GITLAB_ACTIVATION_CODE" in out
        assert other.instance.seats == {1}
        assert other.invalid_documents == []


def test_active_add_on_means_no_activation(
    gitlab: GitLabDouble, run: Runner, code_file: Path
) -> None:
    licensed = gitlab.instance.license
    code, out = run(with_code(gitlab, code_file))
    assert code == 0, out
    assert "ActivateSubscription" not in mutations(gitlab)
    assert gitlab.instance.license is licensed and "subscription" not in out


def test_dry_run_shows_the_activation_and_changes_nothing(
    gitlab: GitLabDouble, run: Runner, code_file: Path
) -> None:
    gitlab.instance.remove_license()
    code, out = run(with_code(gitlab, code_file), "--dry-run")
    assert code == 0, out
    assert "would activate  subscription with the activation code from license." in out
    assert "planned once the subscription is activated" in out
    assert "dry run: 1 change(s) planned, nothing changed" in out
    assert gitlab.writes == 0 and unchanged_fresh_instance(gitlab)
    code, out = run(with_code(gitlab, code_file), "--dry-run", "--json")
    report = json.loads(out)
    assert report["dry_run"] is True and report["changed"] is False
    assert [c["action"] for c in report["changes"]] == ["activate"]


def test_invalid_code_is_refused_with_zero_changes(
    gitlab: GitLabDouble, run: Runner, tmp_path: Path
) -> None:
    gitlab.instance.remove_license()
    wrong = tmp_path / "wrong_code"
    wrong.write_text(WRONG_CODE)
    code, out = run(with_code(gitlab, wrong))
    assert code == 1
    assert f"GitLab refused the activation code from license.activation_code_file {wrong}:" in out
    assert INVALID_CODE_ERROR in out and "copy it again from the Customers Portal" in out
    assert "Nothing was changed" in out
    assert mutations(gitlab) == ["ActivateSubscription"]
    assert unchanged_fresh_instance(gitlab)


def test_unreachable_customers_portal_names_the_egress_and_the_offline_way(
    gitlab: GitLabDouble, run: Runner, code_file: Path
) -> None:
    gitlab.instance.remove_license()
    gitlab.instance.customers_portal_reachable = False
    code, out = run(with_code(gitlab, code_file))
    assert code == 1
    assert "CONNECTIVITY_ERROR" in out and "customers.gitlab.com" in out
    assert "--license-file" in out and "daily subscription sync" in out
    assert unchanged_fresh_instance(gitlab)


def test_subscription_without_duo_stops_after_the_activation(
    gitlab: GitLabDouble, run: Runner, tmp_path: Path
) -> None:
    gitlab.instance.remove_license()
    path = tmp_path / "code"
    path.write_text(ACTIVATION_CODE_WITHOUT_DUO)
    code, out = run(with_code(gitlab, path))
    assert code == 1
    assert "the subscription was activated (online_cloud license, plan ultimate" in out
    assert "has no GitLab Duo Enterprise add-on" in out and "Nothing else was changed" in out
    assert mutations(gitlab) == ["ActivateSubscription"]
    assert not gitlab.instance.models and gitlab.instance.allowlist() == []


def test_problems_known_before_activation_stop_it(run: Runner, code_file: Path) -> None:
    # GitLab 17.9 offers neither the GENERAL family nor the agent platform feature: both are
    # known from introspection, so the subscription is not activated for a file that fails.
    with gitlab_double("17.9.3-ee") as double:
        double.instance.remove_license()
        cfg = with_code(double, code_file)
        cfg["models"][0]["family"] = "general"
        cfg["features"]["duo_agent_platform"] = MODEL
        code, out = run(cfg)
        assert code == 1
        assert "nothing was changed" in out
        assert "family general is not offered by GitLab 17.9.3-ee" in out
        assert "features.duo_agent_platform: GitLab 17.9.3-ee has no such feature" in out
        assert double.writes == 0 and unchanged_fresh_instance(double)
        assert double.invalid_documents == []


def test_missing_add_on_without_a_code_names_the_activation_code(
    gitlab: GitLabDouble, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITLAB_ACTIVATION_CODE", raising=False)
    gitlab.instance.remove_license()
    code, out = run(example(gitlab))
    assert code == 1
    assert "lacks GitLab Duo Enterprise" in out
    assert "license.activation_code_file" in out and "GITLAB_ACTIVATION_CODE" in out
    assert "GitLab has no license now" in out
    assert gitlab.writes == 0


def test_offline_license_explains_the_daily_sync(gitlab: GitLabDouble, run: Runner) -> None:
    gitlab.instance.duo_enterprise_seats = None
    assert gitlab.instance.license is not None
    gitlab.instance.license.type = "offline_cloud"
    code, out = run(example(gitlab))
    assert code == 1
    assert "is an offline cloud license" in out and "daily subscription sync" in out
    assert gitlab.writes == 0


BAD_CODE_INPUT = [
    ("missing", None, "cannot read the activation code file"),
    ("empty", "\n", "is empty"),
    ("license file", "eyJkYXRhIjoi\nTG9uZ0xpY2Vuc2U=\n", "is not an activation code"),
    ("too short", "abc123", "24 letters and digits"),
]


@pytest.mark.parametrize(
    ("case", "content", "message"), BAD_CODE_INPUT, ids=[c[0] for c in BAD_CODE_INPUT]
)
def test_bad_code_file_is_bad_input_before_any_request(
    gitlab: GitLabDouble,
    run: Runner,
    tmp_path: Path,
    case: str,
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / "code"
    if content is not None:
        path.write_text(content)
    gitlab.instance.remove_license()
    for cfg, extra in (
        (with_code(gitlab, path), ()),
        (example(gitlab), ("--activation-code-file", str(path))),
    ):
        code, out = run(cfg, *extra)
        assert code == 2, out
        assert message in out
        for line in (content or "").split():
            assert line not in out
    assert gitlab.requests == 0


def test_code_given_where_a_path_belongs_is_not_echoed(gitlab: GitLabDouble, run: Runner) -> None:
    code, out = run(example(gitlab), "--activation-code-file", ACTIVATION_CODE)
    assert code == 2 and "the code itself instead of a file path" in out
    code, out = run(example(gitlab, license={"activation_code": ACTIVATION_CODE}))
    assert code == 2 and "license: activation_code: the code is never written in this file" in out
    assert gitlab.requests == 0


def test_bad_code_in_the_environment_is_bad_input(
    gitlab: GitLabDouble, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITLAB_ACTIVATION_CODE", " ")
    code, out = run(example(gitlab))
    assert code == 2 and "$GITLAB_ACTIVATION_CODE is empty" in out
    assert gitlab.requests == 0


def test_activation_error_messages_never_echo_the_code(
    gitlab: GitLabDouble, run: Runner, code_file: Path
) -> None:
    gitlab.instance.remove_license()
    gitlab.instance.mutation_errors["gitlabSubscriptionActivate"] = [
        f"Activation code {ACTIVATION_CODE} is already used by another instance"
    ]
    code, out = run(with_code(gitlab, code_file))
    assert code == 1
    assert "Activation code [activation code] is already used" in out
    assert unchanged_fresh_instance(gitlab)


def test_plain_http_gitlab_is_refused_without_allow_http(
    gitlab: GitLabDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin token never crosses the network in clear unless the user says so."""
    path = tmp_path / "duo.yml"
    path.write_text(yaml.safe_dump(example(gitlab)))
    (tmp_path / "token").write_text(ADMIN_TOKEN + "\n")
    before = gitlab.requests
    code = main(["configure", "--config", str(path), "--token-file", str(tmp_path / "token")])
    err = capsys.readouterr().err
    assert code == 2
    assert "is not an https:// URL" in err and "--allow-http" in err
    assert gitlab.requests == before, "nothing was sent"


def test_unreadable_ca_file_is_bad_input_before_any_request(
    gitlab: GitLabDouble, run: Runner, tmp_path: Path
) -> None:
    before = gitlab.requests
    code, out = run(example(gitlab), "--ca-file", str(tmp_path / "missing-ca.crt"))
    assert code == 2 and "--ca-file: cannot read" in out and "Traceback" not in out
    assert gitlab.requests == before
