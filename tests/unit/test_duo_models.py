"""`--duo-models`: models on Bedrock and Azure OpenAI and the feature mapping in the deploy
settings (checked before anything is created, kept for a re-run), carried into duo.yml and the
Terraform variables; the served model's id as its /v1/models lists it."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl import deploy, serving, settings
from duoctl.cli import main
from duoctl.config import ConfigError, bedrock_endpoint, parse_config
from duoctl.configure import for_instance
from duoctl.deployment import Deployment
from duoctl.duo_config import (
    MODEL_NAME,
    AzureModel,
    DuoModels,
    ServedModel,
    duo_config,
    listed_models,
    ollama_model,
    vllm_model,
)
from duoctl.errors import DuoctlError
from duoctl.gitlab_api import Capabilities

REPO = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
PROFILE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
PRESET = serving.preset(serving.DEFAULT_PRESET)
BEDROCK = {"name": "claude-sonnet-4", "platform": "bedrock", "family": "claude_3"}
AZURE = {
    "name": "gpt-4o",
    "platform": "azure",
    "family": "gpt",
    "endpoint": "https://example-resource.openai.azure.com/",
    "deployment": "gpt-4o",
    "api_key_file": "keys/azure.key",
}
OUTPUTS = {
    "gitlab_public_ip": "203.0.113.10",
    "gitlab_private_ip": "10.0.1.10",
    "gateway_private_ip": "10.0.2.10",
    "ollama_private_ip": "10.0.3.10",
    "gitlab_domain": "gitlab.example.com",
    "ssh_user": "ubuntu",
}


def models_file(tmp_path: Path, **content: Any) -> Path:
    """A --duo-models file (default: Bedrock, Azure and a mixed mapping) and the Azure key."""
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "azure.key").write_text("azure-key-0123456789\n")
    data: dict[str, Any] = {
        "models": [BEDROCK | {"model_id": PROFILE}, AZURE],
        "features": {
            "code_completions": PRESET.name,
            "duo_chat": "claude-sonnet-4",
            "duo_chat_explain_code": "gpt-4o",
            "code_generations": "disabled",
        },
    }
    data.update(content)
    path = tmp_path / "duo-models.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def resolve(
    tmp_path: Path, cloud: settings.Cloud = "aws", **overrides: Any
) -> settings.DeploySettings:
    key = tmp_path / "id.pub"
    key.write_text(KEY)
    given = {"ssh_public_key_file": str(key), "admin_cidr": "198.51.100.7/32", **overrides}
    env = (
        {"AWS_REGION": "us-east-1"}
        if cloud == "aws"
        else {"CLOUDSDK_COMPUTE_REGION": "europe-west4", "GOOGLE_CLOUD_PROJECT": "my-project-1"}
    )
    return settings.resolve(cloud, given, {}, lambda: "198.51.100.7", env)


def refused(tmp_path: Path, cloud: settings.Cloud = "aws", **overrides: Any) -> str:
    with pytest.raises(settings.SettingsError) as info:
        resolve(tmp_path, cloud, **overrides)
    assert info.value.exit_code == 2
    return info.value.message


# ---------------------------------------------------------------- the settings


def test_the_file_is_kept_in_the_settings_and_reused(tmp_path: Path) -> None:
    s = resolve(tmp_path, serving="vllm", duo_models=str(models_file(tmp_path)))
    assert s.duo_models is not None
    bedrock, azure = s.duo_models.models
    assert isinstance(azure, AzureModel)
    assert bedrock.identifier == f"bedrock/{PROFILE}"
    assert azure.identifier == "azure/gpt-4o"
    # relative key files are relative to the models file; the endpoint loses its slash
    assert azure.api_key_file == str(tmp_path / "keys" / "azure.key")
    assert azure.endpoint == "https://example-resource.openai.azure.com"
    assert s.bedrock_model_ids() == [PROFILE]
    s.check_files()
    # saved with the deployment: a re-run without the option gets the same settings back,
    # even when the file is gone; the key itself is never saved
    saved_file = tmp_path / "settings.yml"
    settings.save(s, saved_file)
    (tmp_path / "duo-models.yml").unlink()
    assert "azure-key" not in saved_file.read_text()
    again = settings.resolve("aws", {}, settings.load_saved(saved_file), lambda: "x", {})
    assert again == s


def test_without_the_option_nothing_changes(tmp_path: Path) -> None:
    s = resolve(tmp_path)
    assert s.duo_models is None and s.bedrock_model_ids() == []
    assert "duo_models" not in s.model_dump(exclude_none=True)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            {"features": {"code_suggestions": "gpt-4o"}},
            "--duo-models: features: unknown feature(s) code_suggestions; GitLab's features: ",
        ),
        (
            {"features": {"duo_chat": "claude"}},
            "--duo-models: features.duo_chat: 'claude' is no model; choose one of: "
            f"{PRESET.name}, claude-sonnet-4, gpt-4o, vendored, disabled",
        ),
        (
            {"models": [BEDROCK | {"model_id": "claude sonnet"}]},
            "--duo-models: models[0].model_id: 'claude sonnet' is not a Bedrock model or "
            "inference profile ID such as us.anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        (
            {"models": [BEDROCK | {"model_id": "us.anthropic.Claude-Sonnet-4"}]},
            "--duo-models: models[0].model_id: 'us.anthropic.Claude-Sonnet-4' is not a Bedrock",
        ),
        (
            {"models": [BEDROCK]},
            "--duo-models: models[0].model_id: Field required",
        ),
        (
            {"models": [AZURE | {"endpoint": "http://example-resource.openai.azure.com"}]},
            "--duo-models: models[0].endpoint: endpoint 'http://example-resource.openai.azure.com'"
            " must be the resource's https:// URL",
        ),
        (
            {"models": [AZURE | {"family": "gpt5"}]},
            "--duo-models: models[0].family: unknown model family 'gpt5'",
        ),
        (
            {"models": [AZURE | {"platform": "openai"}]},
            "--duo-models: models[0]: Input tag 'openai' found using 'platform' does not match",
        ),
        (
            {"models": [AZURE, AZURE]},
            "--duo-models: models: the name(s) gpt-4o are used more than once",
        ),
        (
            {"models": [AZURE | {"name": PRESET.name}]},
            f"--duo-models: models: {PRESET.name} is the served model's name in GitLab",
        ),
        (
            {"models": [BEDROCK | {"model_id": "eu.anthropic.claude-sonnet-4-20250514-v1:0"}]},
            "the inference profile eu.anthropic.claude-sonnet-4-20250514-v1:0 is for eu-* "
            "regions (prefix eu.), the deployment is in us-east-1; use the profile of the "
            "deployment's geography (e.g. us.anthropic...)",
        ),
        (
            {"features": {"duo_chat": "vendored"}, "extra": 1},
            "--duo-models: extra: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_content_is_refused_naming_the_key(
    tmp_path: Path, content: dict[str, Any], expected: str
) -> None:
    content.setdefault("features", {})
    path = models_file(tmp_path, **content)
    message = refused(tmp_path, serving="vllm", duo_models=str(path))
    assert expected in message, message


def test_bedrock_needs_an_aws_deployment(tmp_path: Path) -> None:
    path = models_file(tmp_path, features={"duo_chat": "claude-sonnet-4"})
    message = refused(tmp_path, "gcp", duo_models=str(path))
    assert (
        "--duo-models: models: claude-sonnet-4: Bedrock models need an AWS deployment (the AI "
        "gateway reaches Bedrock with the AWS VM's instance role, which a gcp deployment does "
        "not have)"
    ) in message
    # Azure OpenAI is fine on Google Cloud; the served model is Ollama's there
    path = models_file(tmp_path, models=[AZURE], features={"duo_chat": MODEL_NAME})
    assert resolve(tmp_path, "gcp", duo_models=str(path)).bedrock_model_ids() == []


def test_a_feature_the_served_preset_does_not_support(tmp_path: Path) -> None:
    coder = next(p for p in serving.PRESETS.values() if "duo_chat" not in p.model.features)
    path = models_file(tmp_path, features={"duo_chat": coder.name})
    message = refused(tmp_path, serving="vllm", model_preset=coder.name, duo_models=str(path))
    assert f"features.duo_chat: GitLab does not list the served model {coder.name}" in message


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"
    assert f"--duo-models: cannot read {missing}: No such file" in refused(
        tmp_path, duo_models=str(missing)
    )
    (tmp_path / "list.yml").write_text("- a\n")
    assert "must hold a mapping (models:, features:)" in refused(
        tmp_path, duo_models=str(tmp_path / "list.yml")
    )


def test_an_unreadable_api_key_file_stops_the_deploy_before_anything(tmp_path: Path) -> None:
    path = models_file(tmp_path)
    s = resolve(tmp_path, serving="vllm", duo_models=str(path))
    (tmp_path / "keys" / "azure.key").unlink()
    with pytest.raises(settings.SettingsError, match=r"--duo-models: model gpt-4o: api_key_file"):
        s.check_files()
    (tmp_path / "keys" / "azure.key").write_text("\n")
    with pytest.raises(settings.SettingsError, match=r"azure.key is empty"):
        s.check_files()


def test_deploy_with_bad_models_exits_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "id.pub"
    key.write_text(KEY)
    path = models_file(tmp_path, features={"duo_chat": "claude"})
    deploy_dir = tmp_path / ".deploy"
    code = main(
        [
            "deploy",
            "aws",
            "--region",
            "us-east-1",
            "--ssh-key",
            str(key),
            "--admin-cidr",
            "198.51.100.7/32",
            "--duo-models",
            str(path),
            "--deploy-dir",
            str(deploy_dir),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "features.duo_chat: 'claude' is no model" in err
    assert not (deploy_dir / "aws" / "settings.yml").exists()


# ---------------------------------------------------------------- Terraform and duo.yml


def test_bedrock_models_reach_terraform_on_aws(tmp_path: Path) -> None:
    s = resolve(tmp_path, duo_models=str(models_file(tmp_path, features={})))
    variables = deploy.terraform_variables(s, "gitlab.example.com")
    assert variables["bedrock_models"] == [PROFILE]
    azure_only = models_file(tmp_path, models=[AZURE], features={})
    variables = deploy.terraform_variables(
        resolve(tmp_path, duo_models=str(azure_only)), "gitlab.example.com"
    )
    assert "bedrock_models" not in variables
    assert "bedrock_models" not in deploy.terraform_variables(
        resolve(tmp_path), "gitlab.example.com"
    )


def test_the_private_bedrock_endpoint_is_asked_from_terraform_with_bedrock_models_only(
    tmp_path: Path,
) -> None:
    private = models_file(tmp_path, features={}, bedrock_vpc_endpoint=True)
    variables = deploy.terraform_variables(
        resolve(tmp_path, duo_models=str(private)), "gitlab.example.com"
    )
    assert variables["bedrock_vpc_endpoint"] is True
    plain = models_file(tmp_path, features={})
    variables = deploy.terraform_variables(
        resolve(tmp_path, duo_models=str(plain)), "gitlab.example.com"
    )
    assert "bedrock_vpc_endpoint" not in variables
    azure_only = models_file(tmp_path, models=[AZURE], features={}, bedrock_vpc_endpoint=True)
    with pytest.raises(settings.SettingsError, match="bedrock_vpc_endpoint: true needs"):
        resolve(tmp_path, duo_models=str(azure_only))


def test_the_same_bedrock_model_under_two_names_is_one_terraform_entry(tmp_path: Path) -> None:
    twice = [BEDROCK | {"model_id": PROFILE}, BEDROCK | {"name": "claude-2", "model_id": PROFILE}]
    path = models_file(tmp_path, models=twice, features={})
    assert resolve(tmp_path, duo_models=str(path)).bedrock_model_ids() == [PROFILE]
    # a global profile may be called from any region; jp. from Tokyo
    anywhere = [BEDROCK | {"model_id": "global.anthropic.claude-sonnet-4-20250514-v1:0"}]
    path = models_file(tmp_path, models=anywhere, features={})
    assert resolve(tmp_path, region="eu-west-1", duo_models=str(path)).bedrock_model_ids()
    tokyo = [BEDROCK | {"model_id": "jp.anthropic.claude-sonnet-4-20250514-v1:0"}]
    path = models_file(tmp_path, models=tokyo, features={})
    assert resolve(tmp_path, region="ap-northeast-1", duo_models=str(path)).bedrock_model_ids()


def test_the_default_mapping_is_todays(tmp_path: Path) -> None:
    deployment = Deployment.from_outputs(OUTPUTS, "aws")
    model = ServedModel(MODEL_NAME, "mistral", "custom_openai/mistral:instruct")
    plain = duo_config(deployment, model)
    assert plain == duo_config(deployment, model, None, DuoModels(), "us-east-1")
    assert [m.name for m in plain.models] == [MODEL_NAME]
    assert plain.features == dict.fromkeys(
        ("code_generations", "code_completions", "duo_chat"), MODEL_NAME
    )


def test_models_and_features_are_carried_into_duo_yml(tmp_path: Path) -> None:
    s = resolve(tmp_path, serving="vllm", duo_models=str(models_file(tmp_path)))
    assert s.duo_models is not None
    deployment = Deployment.from_outputs(OUTPUTS, "aws", "vllm")
    model = vllm_model(PRESET, tmp_path / "vllm_api_key")
    config = duo_config(deployment, model, None, s.duo_models, "us-east-1")
    served, bedrock, azure = config.models
    assert served.name == PRESET.name
    assert (bedrock.identifier, bedrock.provider, bedrock.endpoint, bedrock.region) == (
        f"bedrock/{PROFILE}",
        "BEDROCK",
        None,
        "us-east-1",
    )
    assert (azure.identifier, azure.provider, azure.endpoint) == (
        "azure/gpt-4o",
        "API",
        "https://example-resource.openai.azure.com",
    )
    assert azure.api_key_file == str(tmp_path / "keys" / "azure.key")
    assert config.features == {
        "code_completions": PRESET.name,
        "code_generations": "disabled",
        "duo_chat": "claude-sonnet-4",
        "duo_chat_explain_code": "gpt-4o",
    }
    with pytest.raises(DuoctlError, match="Bedrock models need the deployment's AWS region"):
        duo_config(deployment, model, None, s.duo_models, None)


def test_a_bedrock_model_gets_its_runtime_endpoint_only_where_gitlab_needs_one() -> None:
    data: dict[str, Any] = {
        "gateway": {"url": "http://10.0.2.10:5052"},
        "models": [
            {
                "name": "b",
                "family": "claude_3",
                "identifier": f"bedrock/{PROFILE}",
                "region": "eu-west-1",
            }
        ],
    }
    config = parse_config(data)
    empty: frozenset[str] = frozenset()
    caps = Capabilities("18.9.0-ee", True, empty, empty, empty, empty, ())
    caps_18 = replace(caps, model_required_inputs=frozenset({"name", "model", "endpoint"}))
    caps_19 = replace(caps, version="19.4.1-ee", model_inputs=frozenset({"provider"}))
    assert for_instance(config, caps_18).models[0].endpoint == bedrock_endpoint("eu-west-1")
    assert for_instance(config, caps_19).models[0].endpoint is None
    assert bedrock_endpoint("eu-west-1") == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    data["models"][0].update(identifier="custom_openai/m", endpoint="http://10.0.3.10:8000/v1")
    with pytest.raises(ConfigError, match="region is only for bedrock models"):
        parse_config(data)


# ---------------------------------------------------------------- /v1/models


class _Models(http.server.BaseHTTPRequestHandler):
    ids: tuple[str, ...] = ()
    key = "vllm-key-0123456789"
    seen: list[str | None] = []  # noqa: RUF012 - the handler's class keeps what it saw

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") not in (f"Bearer {self.key}", None):
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"object": "list", "data": [{"id": i} for i in self.ids]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Models.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_vllm_ids_are_read_with_the_api_key(model_server: str, tmp_path: Path) -> None:
    _Models.ids = (PRESET.served_model_name,)
    listed = listed_models(model_server, _Models.key)
    assert _Models.seen == [f"Bearer {_Models.key}"]
    model = vllm_model(PRESET, tmp_path / "key", listed)
    assert model.identifier == f"custom_openai/{PRESET.served_model_name}"


def test_a_vllm_server_serving_another_name_is_refused_naming_both(
    model_server: str, tmp_path: Path
) -> None:
    _Models.ids = ("mistralai/Mistral-7B-Instruct-v0.3",)
    listed = listed_models(model_server, _Models.key)
    with pytest.raises(DuoctlError) as info:
        vllm_model(PRESET, tmp_path / "key", listed)
    message = info.value.message
    assert "lists 'mistralai/Mistral-7B-Instruct-v0.3'" in message
    assert f"preset {PRESET.name}'s served name {PRESET.served_model_name!r}" in message
    assert info.value.exit_code == 1


def test_a_wrong_api_key_is_named_never_shown(model_server: str) -> None:
    with pytest.raises(DuoctlError, match=r"refused the API key \(HTTP 401\)") as info:
        listed_models(model_server, "wrong-key-0123456789")
    assert "wrong-key" not in str(info.value)


def test_ollama_ids_and_its_default_tag(model_server: str, tmp_path: Path) -> None:
    _Models.ids = ("llama3:8b", "mistral:instruct", "codellama:latest")
    listed = listed_models(model_server)
    assert _Models.seen == [None]  # no key for Ollama
    assert ollama_model(REPO, None, listed).identifier == "custom_openai/mistral:instruct"
    # a model pulled without a tag is listed with Ollama's default one
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"children": {"ollama": {"hosts": {"o": {"ollama_models": ["codellama"]}}}}}}
        )
    )
    assert ollama_model(REPO, inventory, listed).identifier == "custom_openai/codellama:latest"
    with pytest.raises(DuoctlError, match=r"not the Ollama model .* 'mistral:instruct'"):
        ollama_model(REPO, None, ["llama3:8b"])


def test_a_server_that_does_not_answer_is_named() -> None:
    with pytest.raises(DuoctlError, match=r"http://127.0.0.1:9/v1/models did not answer"):
        listed_models("http://127.0.0.1:9", None, timeout=2)
