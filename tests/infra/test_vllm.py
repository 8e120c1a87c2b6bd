"""The model host serving with vLLM: its service, port, API key, served model and metrics."""

from __future__ import annotations

import shlex
from typing import Any

from tests.infra.checks import binding_problem, describe_answer, json_body
from tests.infra.conftest import (
    VLLM_ENV_FILE,
    http,
    http_with_key,
    listeners,
    public_addresses,
    service_port,
    url_host,
    var,
    vllm_api_key,
)

testinfra_hosts = ["vllm"]
HOP = "gateway → model"


def port(host: Any) -> int:
    return service_port(host, "vllm_port")


def api_url(host: Any, address: str) -> str:
    return f"http://{url_host(address)}:{port(host)}"


def served_model_name(host: Any) -> str:
    """The inventory's vllm_served_model_name; else the unit's --served-model-name (a deploy
    gives the preset's as extra vars, which the inventory does not hold); else the role default."""
    value = var(host, "vllm_served_model_name")
    if value:
        return str(value)
    argv = host.run("systemctl show -p ExecStart --value vllm").stdout
    words = shlex.split(argv.replace(";", " ")) if argv else []
    if "--served-model-name" in words[:-1]:
        return words[words.index("--served-model-name") + 1]
    return str(var(host, "vllm_served_model_name", "vllm", "Mistral-7B-Instruct-v0.3"))


def test_vllm_service_active_and_enabled(host: Any) -> None:
    """vLLM's service is running and enabled."""
    service = host.service("vllm")
    assert service.is_running, "vLLM service vllm is not running"
    assert service.is_enabled, "vLLM service vllm is not enabled at boot"


def test_vllm_port_bound_to_private_address(host: Any, address: str) -> None:
    """vLLM's port 8000 listens on the private address only."""
    problem = binding_problem(
        "vLLM", port(host), listeners(host, port(host)), address, public_addresses(host)
    )
    assert not problem, problem


def test_vllm_health_answers_200(host: Any, address: str) -> None:
    """vLLM's /health answers 200 (the model is loaded)."""
    url = f"{api_url(host, address)}/health"
    result = http(host, url)
    assert result.get("status") == 200, (
        f"vLLM health {url} answered {describe_answer(result)} (must be HTTP 200; "
        "journalctl -u vllm shows why the model did not load)"
    )


def test_vllm_serves_the_model_with_the_key(host: Any, address: str) -> None:
    """vLLM lists the served model on /v1/models with its API key."""
    url = f"{api_url(host, address)}/v1/models"
    wanted = served_model_name(host)
    result = http_with_key(host, url, vllm_api_key(host))
    assert result.get("status") == 200, (
        f"vLLM {url} with the key of {VLLM_ENV_FILE} answered {describe_answer(result)} "
        "(must be HTTP 200; a 401 means the server runs with another key: systemctl restart vllm)"
    )
    served = [str(m.get("id")) for m in (json_body(result) or {}).get("data", [])]
    assert wanted in served, (
        f"vLLM serves {', '.join(served) or 'no model'}, not {wanted} "
        f"(GitLab's model identifier custom_openai/{wanted} would not match)"
    )


def test_vllm_refuses_requests_without_the_key(host: Any, address: str) -> None:
    """vLLM's /v1/models refuses a request without the API key with 401."""
    url = f"{api_url(host, address)}/v1/models"
    result = http(host, url)
    assert result.get("status") == 401, (
        f"vLLM {url} answered {describe_answer(result)} without a key (must be HTTP 401: "
        f"VLLM_API_KEY in {VLLM_ENV_FILE} is not set, anyone on the network can use the model)"
    )


def test_vllm_metrics_answer(host: Any, address: str) -> None:
    """vLLM's /metrics answers with vLLM's metrics."""
    url = f"{api_url(host, address)}/metrics"
    result = http(host, url)
    assert result.get("status") == 200, f"vLLM metrics {url} answered {describe_answer(result)}"
    assert "vllm:num_requests_running" in str(result.get("body")), (
        f"vLLM metrics {url} lack vllm:num_requests_running (not vLLM's server?)"
    )


def test_vllm_env_file_root_only(host: Any) -> None:
    """vLLM's env file (the API key) is owned by root with mode 0600."""
    path = str(var(host, "vllm_env_file", default=VLLM_ENV_FILE))
    file = host.file(path)
    assert file.exists, f"{path} is missing: vLLM is not configured"
    assert (file.user, file.mode) == ("root", 0o600), (
        f"secret {path} has owner {file.user} and mode {file.mode:04o} (must be root, 0600)"
    )
