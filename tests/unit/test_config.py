"""Validation of duo.yml: every problem named, with its key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from duoctl.config import (
    ActivationCodeError,
    ConfigError,
    check_activation_code,
    is_private_host,
    load_config,
    parse_config,
    read_activation_code_file,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "duo.yml"


def minimal(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"url": "http://10.0.2.10:5052"},
        "models": [
            {
                "name": "m",
                "family": "Mistral",
                "endpoint": "http://10.0.3.10:11434/v1",
                "identifier": "custom_openai/mistral:instruct",
            }
        ],
        "features": {"duo_chat": "m"},
    }
    data.update(extra)
    return data


def problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_example_file_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.models[0].family == "MISTRAL"
    assert cfg.gateway.agent_platform_url == "10.0.2.10:50052"
    assert cfg.prune_models is False


def test_family_is_case_insensitive_and_defaults_apply() -> None:
    cfg = parse_config(minimal())
    assert cfg.models[0].family == "MISTRAL"
    assert cfg.seats == [] and cfg.outbound_allowlist == [] and cfg.gitlab.url is None


@pytest.mark.parametrize(
    "identifier",
    [
        "bedrock/mistral.mixtral-8x7b-instruct-v0:1",
        "azure/gpt-35-turbo",
        "vertex_ai/codestral-2501",
    ],
)
def test_identifiers_other_than_custom_openai_need_no_v1(identifier: str) -> None:
    data = minimal()
    data["models"][0].update(identifier=identifier, endpoint="https://bedrock.example.com")
    assert parse_config(data).models[0].identifier == identifier


@pytest.mark.parametrize(
    ("identifier", "endpoint", "provider"),
    [
        ("custom_openai/mistral:instruct", "http://10.0.3.10:11434/v1", "API"),
        ("azure/gpt-35-turbo", "https://azure.example.com", "API"),
        (None, "http://10.0.3.10:8000/v1", "API"),
        ("bedrock/mistral.mixtral-8x7b-instruct-v0:1", None, "BEDROCK"),
        ("vertex_ai/gemini-2.5-pro", None, "VERTEX_AI"),
    ],
)
def test_provider_defaults_to_what_the_identifier_means(
    identifier: str | None, endpoint: str | None, provider: str
) -> None:
    data = minimal()
    data["models"][0].update(identifier=identifier, endpoint=endpoint)
    model = parse_config(data).models[0]
    assert model.provider == provider and model.provider_value() == provider


def test_explicit_provider_is_validated() -> None:
    data = minimal()
    data["models"][0].update(identifier="azure/gpt-4o", provider="Vertex_AI", endpoint=None)
    assert parse_config(data).models[0].provider == "VERTEX_AI"  # azure/ does not pin one
    data["models"][0]["provider"] = "openai"
    assert problems(data) == [
        "models[0].provider: unknown provider 'openai'; valid values: api, bedrock, vertex_ai"
    ]
    data["models"][0].update(identifier="bedrock/amazon.nova-pro-v1:0", provider="api")
    assert problems(data) == [
        "models[0]: provider api does not match identifier 'bedrock/amazon.nova-pro-v1:0', "
        "whose platform means provider bedrock (leave provider out to use it)"
    ]


def test_only_bedrock_and_vertex_models_may_omit_the_endpoint() -> None:
    data = minimal()
    del data["models"][0]["endpoint"]
    [problem] = problems(data)
    assert problem.startswith("models[0]: endpoint is required for provider api")
    data["models"][0].update(identifier=None, provider="bedrock")
    assert parse_config(data).models[0].endpoint is None


@pytest.mark.parametrize(
    ("gateway", "tls"),
    [
        ({}, None),  # no agent platform: not managed
        ({"agent_platform_url": "10.0.2.10:50052"}, False),  # the bundle's plain gRPC port
        ({"agent_platform_url": "dap.example.com:443", "agent_platform_secure": True}, True),
        ({"agent_platform_secure": False}, False),
    ],
)
def test_agent_platform_secure(gateway: dict[str, Any], tls: bool | None) -> None:
    cfg = parse_config(minimal(gateway={"url": "http://10.0.2.10:5052", **gateway}))
    assert cfg.gateway.agent_platform_tls() is tls


def test_trailing_slash_after_v1_is_accepted() -> None:
    data = minimal()
    data["models"][0]["endpoint"] = "http://10.0.3.10:11434/v1/"
    parse_config(data)


def test_not_a_mapping() -> None:
    assert problems(["gateway"]) == ["the file must be a YAML mapping (gateway:, models:, ...)"]


def test_missing_gateway() -> None:
    data = minimal()
    del data["gateway"]
    assert problems(data) == ["gateway: required key is missing"]


def test_duplicate_model_names_and_dangling_feature() -> None:
    data = minimal(features={"duo_chat": "x"})
    data["models"].append(dict(data["models"][0]))
    found = problems(data)
    assert "models: deployment name 'm' is used more than once" in found
    assert any(p.startswith("features.duo_chat: 'x' is not a model name") for p in found)


def test_api_key_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = minimal()
    data["models"][0]["api_key_env"] = "DUO_TEST_KEY"
    cfg = parse_config(data)
    monkeypatch.delenv("DUO_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="DUO_TEST_KEY"):
        cfg.models[0].api_key()
    monkeypatch.setenv("DUO_TEST_KEY", "k1")
    assert cfg.models[0].api_key() == "k1"
    key = tmp_path / "key"
    key.write_text("k2\n")
    data["models"][0] = dict(data["models"][0], api_key_env=None, api_key_file=str(key))
    assert parse_config(data).models[0].api_key() == "k2"


def test_both_key_sources_is_an_error() -> None:
    data = minimal()
    data["models"][0].update(api_key_env="A", api_key_file="/b")
    assert problems(data) == ["models[0]: set only one of api_key_env and api_key_file"]


def test_unreadable_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("gateway: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("10.0.2.10", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("127.0.0.1", True),
        ("ip-10-0-2-10.ec2.internal", True),
        ("aigw", True),
        ("52.1.2.3", False),
        ("8.8.8.8", False),
        ("gateway.example.com", False),
    ],
)
def test_private_hosts(host: str, private: bool) -> None:
    assert is_private_host(host) is private


# ---------------------------------------------------------------- license.activation_code_file

CODE = "Abcdefghij0123456789WXYZ"  # 24 letters and digits, the shape GitLab accepts


def test_activation_code_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "code"
    path.write_text(f"  {CODE}\n")
    cfg = parse_config(minimal(license={"activation_code_file": str(path)}))
    code = cfg.license.activation_code()
    assert code is not None and code.value == CODE
    assert code.source == f"license.activation_code_file {path}"
    assert CODE not in repr(code)
    assert parse_config(minimal()).license.activation_code() is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the activation code file"),
        ("", "is empty"),
        ("eyJkYXRhIjoiTG9uZw==\nTGljZW5zZQ==\n", "A license file (.gitlab-license) is not"),
        (CODE + "0", "24 letters and digits"),
        (CODE[:-1] + "-", "24 letters and digits"),
    ],
    ids=["missing", "empty", "license file", "too long", "not alphanumeric"],
)
def test_unusable_activation_code_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "code"
    if content is not None:
        path.write_text(content)
    cfg = parse_config(minimal(license={"activation_code_file": str(path)}))
    with pytest.raises(ConfigError) as info:
        cfg.license.activation_code()
    [problem] = info.value.problems
    assert problem.startswith("activation_code_file: ") and message in problem
    for part in (content or "").split():
        assert part not in info.value.render()


def test_activation_code_is_never_inline_nor_echoed() -> None:
    found = problems(minimal(license={"activation_code": CODE}))
    assert found == [
        "license: activation_code: the code is never written in this file; put it in a file "
        "named by license.activation_code_file, or export GITLAB_ACTIVATION_CODE"
    ]
    assert problems(minimal(license={"activation_code_file": " "})) == [
        "license.activation_code_file: must be the path of a file holding the activation code"
    ]


def test_code_given_as_the_file_path_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ActivationCodeError) as info:
        read_activation_code_file(CODE)
    assert CODE not in str(info.value) and "the code itself instead of a file path" in str(
        info.value
    )


def test_activation_code_text_checks() -> None:
    assert check_activation_code(f"{CODE}\n", "$GITLAB_ACTIVATION_CODE") == CODE
    with pytest.raises(ActivationCodeError, match=r"^\$GITLAB_ACTIVATION_CODE is empty$"):
        check_activation_code(" \n", "$GITLAB_ACTIVATION_CODE")
