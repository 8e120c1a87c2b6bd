"""The duo step: the deployment's GitLab Duo configuration built in Python, checked by
configure's own loader, written to the deployment folder and applied in-process against the
GitLab API double (HTTPS with a private CA, as the bundle's self-signed GitLab).

The model server's /v1/models is given by a stand-in reader here (`listing`), except in the
last test, which reads it from an HTTP server behind the SSH double through duoctl.tunnel."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from duoctl import deploy, serving
from duoctl.config import load_config
from duoctl.deploy.duo_step import ListModels
from duoctl.deploy.state import remember
from duoctl.deployment import Deployment
from duoctl.folder import DeploymentFolder
from duoctl.pipeline import Context, Progress, StepFailed
from duoctl.settings import DeploySettings

from tests.doubles.gitlab_api import ADMIN_TOKEN, GitLabDouble, gitlab_double
from tests.doubles.gitlab_api.instance import ACTIVATION_CODES
from tests.doubles.ssh_hosts import ssh_hosts

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "gitlab_public_ip": "203.0.113.10",
    "gitlab_private_ip": "10.0.1.10",
    "gateway_private_ip": "10.0.2.10",
    "ollama_private_ip": "10.0.2.11",
    "gitlab_domain": "gitlab.example.com",
    "ssh_user": "ubuntu",
    "gateway_port": 15052,
    "ollama_port": 21434,
}


@pytest.fixture(params=["18.9.0-ee", "19.4.0-ee"])
def double(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GitLabDouble]:
    (tmp_path / "tls").mkdir()
    with gitlab_double(request.param, tls_dir=tmp_path / "tls") as running:
        yield running


def context(
    tmp_path: Path,
    double: GitLabDouble,
    settings: DeploySettings | None = None,
    deployment: Deployment | None = None,
) -> tuple[Context, io.StringIO]:
    folder = DeploymentFolder.of(tmp_path / ".deploy", "aws", REPO)
    folder.create()
    folder.admin_token_file.write_text(ADMIN_TOKEN + "\n")
    (tmp_path / "tls" / "ca.crt").replace(folder.ca_file)  # the gitlab role's private CA
    out = io.StringIO()
    ctx = Context("aws", folder, Progress(folder.log_file, out), settings)
    serving = settings.serving if settings is not None else "ollama"
    remember(ctx, deployment or Deployment.from_outputs(OUTPUTS, "aws", serving))
    return ctx, out


def listing(*ids: str, calls: list[str | None] | None = None) -> ListModels:
    """A stand-in for the model server's /v1/models, read through the tunnel in a deploy;
    records the API key it was given."""

    def list_models(ctx: Context, deployment: Deployment, api_key: str | None) -> list[str]:
        if calls is not None:
            calls.append(api_key)
        return list(ids)

    return list_models


def step(double: GitLabDouble, *ids: str, **options: Any) -> deploy.DuoStep:
    return deploy.DuoStep(
        gitlab_url=double.url, list_models=listing(*(ids or ("mistral:instruct",))), **options
    )


def test_configures_the_deployment_and_a_rerun_changes_nothing(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, out = context(tmp_path, double)
    step(double).run(ctx)
    gl = double.instance
    assert gl.duo["aiGatewayUrl"] == "http://10.0.2.10:15052"
    [model] = gl.models.values()
    assert (model.endpoint, model.identifier) == (
        "http://10.0.2.11:21434/v1",
        "custom_openai/mistral:instruct",
    )
    assert gl.allowlist() == ["10.0.2.10", "10.0.2.11"]  # the gateway and the model endpoint
    # The configuration is kept in the folder, 0600, and configure's loader reads it back.
    written = ctx.paths.duo_config
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    assert load_config(written).gateway.agent_platform_url == "10.0.2.10:50052"
    step(double).run(ctx)
    assert "no changes: GitLab already matches the configuration" in ctx.paths.log_file.read_text()
    assert ADMIN_TOKEN not in out.getvalue() + ctx.paths.log_file.read_text()


def test_gitlab_errors_fail_the_step_with_configures_message(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, _ = context(tmp_path, double)
    double.fail_next.extend([502] * 6)
    with pytest.raises(StepFailed, match=r"duoctl configure failed .*GitLab answered HTTP 502"):
        step(double).run(ctx)


def test_activation_code_travels_by_path_only(tmp_path: Path, double: GitLabDouble) -> None:
    ctx, out = context(tmp_path, double)
    double.instance.remove_license()
    code = next(iter(ACTIVATION_CODES))
    code_file = tmp_path / "code"
    code_file.write_text(code + "\n")
    step(double, activation_code_file=str(code_file)).run(ctx)
    assert double.instance.license is not None
    saved = yaml.safe_load(ctx.paths.duo_config.read_text())
    assert saved["license"] == {"activation_code_file": str(code_file)}
    text = out.getvalue() + ctx.paths.log_file.read_text() + ctx.paths.duo_config.read_text()
    assert code not in text


def test_without_the_token_the_step_says_which_step_makes_it(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, _ = context(tmp_path, double)
    ctx.paths.admin_token_file.unlink()
    with pytest.raises(StepFailed, match=r"gitlab_admin_token is missing.*--from site"):
        step(double).run(ctx)


# ---------------------------------------------------------------- the identifier from the server


def test_the_ollama_identifier_comes_from_the_server(tmp_path: Path, double: GitLabDouble) -> None:
    ctx, _ = context(tmp_path, double)
    step(double, "llama3:8b", "mistral:instruct").run(ctx)
    [model] = double.instance.models.values()
    assert model.identifier == "custom_openai/mistral:instruct"
    assert (
        "the model server serves custom_openai/mistral:instruct" in ctx.paths.log_file.read_text()
    )


def test_a_model_the_server_does_not_list_is_refused_naming_both(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, _ = context(tmp_path, double)
    with pytest.raises(StepFailed, match=r"lists 'llama3:8b', not .* 'mistral:instruct'"):
        step(double, "llama3:8b").run(ctx)
    assert double.writes == 0


VLLM_KEY, AZURE_KEY = "vllm-key-0123456789abcdef", "azure-key-0123456789abcdef"
PRESET = serving.preset(serving.DEFAULT_PRESET)


def vllm_settings(tmp_path: Path, models: dict[str, Any] | None = None) -> DeploySettings:
    """A vLLM deployment on AWS; with `models`, the --duo-models file's content."""
    key = tmp_path / "id.pub"
    key.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuoStepTestKey000000000000000000000000 t\n"
    )
    extra: dict[str, Any] = {}
    if models is not None:
        (tmp_path / "azure.key").write_text(AZURE_KEY + "\n")
        (tmp_path / "models.yml").write_text(yaml.safe_dump(models))
        extra["duo_models"] = str(tmp_path / "models.yml")
    return DeploySettings(
        cloud="aws",
        region="us-east-1",
        ssh_public_key_file=str(key),
        admin_cidr="198.51.100.7/32",
        serving="vllm",
        **extra,
    )


MIXED = {
    "models": [
        {
            "name": "claude-sonnet-4",
            "platform": "bedrock",
            "family": "claude_3",
            "model_id": "us.anthropic.claude-sonnet-4-20250514-v1:0",
        },
        {
            "name": "gpt-4o",
            "platform": "azure",
            "family": "gpt",
            "endpoint": "https://example-resource.openai.azure.com",
            "deployment": "gpt-4o",
            "api_key_file": "azure.key",  # beside the file
        },
    ],
    "features": {
        "code_completions": PRESET.name,
        "code_generations": "disabled",
        "duo_chat": "claude-sonnet-4",
        "duo_chat_explain_code": "gpt-4o",
    },
}


def test_vllm_bedrock_and_azure_with_a_mixed_feature_mapping(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, out = context(tmp_path, double, vllm_settings(tmp_path, MIXED))
    (ctx.paths.secrets_dir / "vllm_api_key").write_text(VLLM_KEY + "\n")
    keys: list[str | None] = []
    deploy.DuoStep(
        gitlab_url=double.url, list_models=listing(PRESET.served_model_name, calls=keys)
    ).run(ctx)
    assert keys == [VLLM_KEY]  # /v1/models asked with vLLM's API key
    models = {m.name: m for m in double.instance.models.values()}
    vllm, bedrock, azure = models[PRESET.name], models["claude-sonnet-4"], models["gpt-4o"]
    assert (vllm.identifier, vllm.endpoint, vllm.api_token) == (
        f"custom_openai/{PRESET.served_model_name}",
        "http://10.0.2.11:21434/v1",
        VLLM_KEY,
    )
    assert bedrock.identifier == "bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0"
    if double.instance.version.startswith("19."):
        assert (bedrock.provider, bedrock.endpoint) == ("BEDROCK", None)
    else:  # every model needs an endpoint before 19.x: the region's Bedrock runtime
        assert bedrock.endpoint == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert (azure.identifier, azure.endpoint, azure.api_token) == (
        "azure/gpt-4o",
        "https://example-resource.openai.azure.com",
        AZURE_KEY,
    )
    features = double.instance.features
    assert features["code_completions"]["model_id"] == vllm.id
    assert features["duo_chat"]["model_id"] == bedrock.id
    assert features["duo_chat_explain_code"]["model_id"] == azure.id
    assert features["code_generations"]["provider"] == "disabled"
    # duo.yml names the key files, never the keys; configure's loader reads it back
    written = ctx.paths.duo_config.read_text()
    config = load_config(ctx.paths.duo_config)
    assert config.model("gpt-4o").api_key_file == str(tmp_path / "azure.key")
    assert config.model("claude-sonnet-4").region == "us-east-1"
    text = written + out.getvalue() + ctx.paths.log_file.read_text()
    assert VLLM_KEY not in text and AZURE_KEY not in text
    step(double, PRESET.served_model_name).run(ctx)
    assert "no changes: GitLab already matches" in ctx.paths.log_file.read_text()


def test_a_vllm_server_serving_another_name_is_refused_naming_both(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, _ = context(tmp_path, double, vllm_settings(tmp_path))
    (ctx.paths.secrets_dir / "vllm_api_key").write_text(VLLM_KEY + "\n")
    with pytest.raises(StepFailed) as failed:
        step(double, "mistralai/Mistral-7B-Instruct-v0.3").run(ctx)
    message = str(failed.value)
    assert "'mistralai/Mistral-7B-Instruct-v0.3'" in message
    assert f"preset {PRESET.name}'s served name {PRESET.served_model_name!r}" in message
    assert double.writes == 0


# ---------------------------------------------------------------- through the SSH tunnel


class _Vllm(http.server.BaseHTTPRequestHandler):
    """vLLM's /v1/models behind its API key."""

    served = PRESET.served_model_name

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {VLLM_KEY}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"object": "list", "data": [{"id": self.served}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def vllm_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Vllm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_step_reads_v1_models_through_the_ssh_tunnel(
    tmp_path: Path, double: GitLabDouble, vllm_port: int
) -> None:
    with ssh_hosts(["gitlab-vm", "gateway-vm", "vllm-vm"]) as hosts:

        def host(name: str, group: str) -> dict[str, Any]:
            public = group == "gitlab"
            return {
                "name": name,
                "group": group,
                "private_ip": "127.0.0.1",
                "public_ip": "127.0.0.1" if public else None,
                "ssh_port": hosts[name].port,
                "via_jump": not public,
            }

        deployment = Deployment.model_validate(
            {
                "target": "aws",
                "domain": "gitlab.example.com",
                "hosts": [
                    host("gitlab-vm", "gitlab"),
                    host("gateway-vm", "ai_gateway"),
                    host("vllm-vm", "vllm"),
                ],
                "ports": {"ollama_port": vllm_port},
            }
        )
        settings = vllm_settings(tmp_path)
        private = tmp_path / "id"  # the deploy's key, beside its .pub
        private.write_bytes(hosts.key_file.read_bytes())
        ctx, _ = context(tmp_path, double, settings, deployment)
        (ctx.paths.secrets_dir / "vllm_api_key").write_text(VLLM_KEY + "\n")
        deploy.DuoStep(gitlab_url=double.url).run(ctx)
        assert ("127.0.0.1", vllm_port) in hosts["vllm-vm"].forwards  # from the model host
        assert ("127.0.0.1", hosts["vllm-vm"].port) in hosts["gitlab-vm"].forwards  # jump
        assert f"[127.0.0.1]:{hosts['vllm-vm'].port}" in ctx.paths.known_hosts.read_text()
        [model] = double.instance.models.values()
        assert model.identifier == f"custom_openai/{PRESET.served_model_name}"
        # a server that serves another name: refused, naming both
        _Vllm.served = "other-model"
        try:
            with pytest.raises(StepFailed, match=r"lists 'other-model', not preset"):
                deploy.DuoStep(gitlab_url=double.url).run(ctx)
        finally:
            _Vllm.served = PRESET.served_model_name


# ---------------------------------------------------------------- own hosts serving with vLLM


def test_own_hosts_with_vllm_register_the_presets_model(
    tmp_path: Path, double: GitLabDouble
) -> None:
    own = Deployment.from_outputs(OUTPUTS, "aws", "vllm")
    ctx, _ = context(tmp_path, double, None, own)
    (ctx.paths.secrets_dir / "vllm_api_key").write_text(VLLM_KEY + "\n")
    calls: list[str | None] = []
    deploy.DuoStep(
        gitlab_url=double.url,
        list_models=listing(PRESET.served_model_name, calls=calls),
        preset=PRESET,
    ).run(ctx)
    [model] = double.instance.models.values()
    assert model.identifier == f"custom_openai/{PRESET.served_model_name}"
    assert (model.api_token, calls) == (VLLM_KEY, [VLLM_KEY])


def test_own_hosts_with_vllm_and_no_preset_are_refused(
    tmp_path: Path, double: GitLabDouble
) -> None:
    ctx, _ = context(tmp_path, double, None, Deployment.from_outputs(OUTPUTS, "aws", "vllm"))
    with pytest.raises(StepFailed, match="--model-preset"):
        step(double).run(ctx)
    assert double.writes == 0
