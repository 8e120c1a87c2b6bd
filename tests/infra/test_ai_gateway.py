"""The gateway host: Docker, the gateway container, its ports, answers, secrets and peers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.checks import (
    binding_problem,
    describe_answer,
    json_body,
    secret_mode_problem,
)
from tests.infra.conftest import (
    hop,
    http,
    http_with_key,
    listeners,
    model_server,
    private_address,
    public_addresses,
    service_port,
    url_host,
    var,
    vllm_api_key,
)

testinfra_hosts = ["ai_gateway"]
HOP = "GitLab → gateway"
UNAUTHENTICATED = {"error": "No authorization header presented"}


def config_dir(host: Any) -> str:
    return str(var(host, "ai_gateway_config_dir", "ai_gateway", "/etc/ai-gateway"))


def container_name(host: Any) -> str:
    return str(var(host, "ai_gateway_container_name", "ai_gateway", "ai-gateway"))


def http_port(host: Any) -> int:
    return service_port(host, "ai_gateway_http_port")


def grpc_port(host: Any) -> int:
    return service_port(host, "ai_gateway_grpc_port")


@pytest.fixture
def container(host: Any) -> dict[str, Any]:
    name = container_name(host)
    out = host.run("docker inspect %s", name)
    assert out.rc == 0, f"gateway container {name} does not exist: {out.stderr.strip()[-200:]}"
    return dict(json.loads(out.stdout)[0])


def test_docker_service_active_and_enabled(host: Any) -> None:
    """Docker is running and enabled on the gateway host."""
    service = host.service("docker")
    assert service.is_running, "docker is not running on the gateway host"
    assert service.is_enabled, "docker is not enabled at boot on the gateway host"


def test_gateway_container_running_restart_always(host: Any, container: dict[str, Any]) -> None:
    """The gateway container is running with restart policy always."""
    name = container_name(host)
    state = container["State"]
    assert state.get("Running"), f"gateway container {name} is not running ({state.get('Status')})"
    policy = container["HostConfig"]["RestartPolicy"]["Name"]
    assert policy == "always", f"gateway container {name} restart policy is {policy!r}, not always"


@pytest.mark.parametrize("which", ["http", "grpc"])
def test_gateway_port_bound_to_private_address(host: Any, address: str, which: str) -> None:
    """The gateway's ports 5052 and 50052 listen on the private address only."""
    port = http_port(host) if which == "http" else grpc_port(host)
    problem = binding_problem(
        "gateway", port, listeners(host, port), address, public_addresses(host)
    )
    assert not problem, problem


def test_gateway_health_answers_200(host: Any, address: str) -> None:
    """The gateway's /monitoring/healthz answers 200."""
    url = f"http://{url_host(address)}:{http_port(host)}/monitoring/healthz"
    result = http(host, url)
    assert result.get("status") == 200, (
        f"gateway health {url} answered {describe_answer(result)} (must be HTTP 200)"
    )


def test_gateway_root_answers_401(host: Any, address: str) -> None:
    """The gateway's / refuses an unauthenticated request with 401."""
    url = f"http://{url_host(address)}:{http_port(host)}/"
    result = http(host, url)
    assert (result.get("status"), json_body(result)) == (401, UNAUTHENTICATED), (
        f"gateway {url} answered {describe_answer(result)} (must be HTTP 401 "
        '{"error":"No authorization header presented"}; 404 means the auth bypass is on)'
    )


@hop("GitLab → gateway")
def test_gateway_reaches_gitlab_over_https(host: Any, gitlab_domain: str) -> None:
    """The gateway host reaches GitLab by its domain over verified https."""
    bundle = f"{config_dir(host)}/ca-bundle.pem"
    cafile = bundle if host.file(bundle).exists else ""
    url = f"https://{gitlab_domain}/users/sign_in"
    result = http(host, url, cafile=cafile)
    assert "status" in result and int(result["status"]) < 500, (
        f"the gateway host cannot reach GitLab at {url}: {describe_answer(result)} "
        "(the gateway fetches GitLab's signing keys there: check DNS or /etc/hosts, the firewall "
        "and GitLab's certificate)"
    )


@hop("gateway → model")
def test_gateway_reaches_model_server(host: Any) -> None:
    """The gateway host reaches the model server (Ollama or vLLM) on its port.

    vLLM answers /v1/models only with its API key: the request then carries the key, read on
    the vLLM host from the role's env file, so a 200 proves the network path and the key.
    """
    server = model_server(host)
    endpoint = var(host, "model_endpoint")
    if not endpoint:
        if server is None:
            pytest.skip("no model_endpoint in the inventory and no model host to derive it")
        group, models = server
        port = service_port(models, f"{group}_port")
        endpoint = f"http://{url_host(private_address(models))}:{port}/v1"
    url = f"{str(endpoint).rstrip('/')}/models"
    port = str(endpoint).split("://", 1)[-1].split("/", 1)[0].rpartition(":")[2]
    if server is not None and server[0] == "vllm":
        result = http_with_key(host, url, vllm_api_key(server[1]))
        name = "vLLM"
        fix = (
            f"check the vllm service, the firewall rule from the gateway to port {port} and the "
            "key in /etc/vllm/vllm.env (the one the server runs with)"
        )
    else:
        result = http(host, url)
        name = "Ollama"
        fix = f"check the Ollama service and the firewall rule from the gateway to port {port}"
    assert result.get("status") == 200, (
        f"the gateway host cannot reach {name} at {url}: {describe_answer(result)} ({fix})"
    )


def test_gateway_config_dir_private(host: Any) -> None:
    """The gateway's configuration folder is private to root."""
    path = config_dir(host)
    folder = host.file(path)
    assert folder.is_directory, f"{path} is missing: the gateway is not configured"
    problem = secret_mode_problem(path, folder.mode, folder.user)
    assert not problem, problem


@pytest.mark.parametrize("name", ["ai-gateway.env", "duo_workflow_jwt.key"])
def test_gateway_secret_not_readable_by_others(host: Any, name: str) -> None:
    """The gateway's env file and JWT signing key are readable by root only."""
    path = f"{config_dir(host)}/{name}"
    file = host.file(path)
    assert file.exists, f"{path} is missing: the gateway is not configured"
    problem = secret_mode_problem(path, file.mode, file.user)
    assert not problem, problem
