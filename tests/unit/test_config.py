"""Validation of duo.yml: every problem named, with its key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from duoctl.config import ConfigError, is_private_host, load_config, parse_config

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
    ["bedrock/mistral.mixtral-8x7b-instruct-v0:1", "azure/gpt-35-turbo"],
)
def test_bedrock_and_azure_identifiers_need_no_v1(identifier: str) -> None:
    data = minimal()
    data["models"][0].update(identifier=identifier, endpoint="https://bedrock.example.com")
    assert parse_config(data).models[0].identifier == identifier


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
