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
    group_hosts,
    hop,
    http,
    listeners,
    private_address,
    public_addresses,
    service_port,
    url_host,
    var,
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
def test_gateway_reaches_ollama(host: Any) -> None:
    """The gateway host reaches Ollama on port 11434."""
    endpoint = var(host, "ollama_endpoint")
    if not endpoint:
        models = group_hosts(host, "ollama")
        if not models:
            pytest.skip("no ollama_endpoint in the inventory and no ollama host to derive it")
        port = service_port(models[0], "ollama_port")
        endpoint = f"http://{url_host(private_address(models[0]))}:{port}/v1"
    url = f"{str(endpoint).rstrip('/')}/models"
    result = http(host, url)
    assert result.get("status") == 200, (
        f"the gateway host cannot reach Ollama at {url}: {describe_answer(result)} "
        "(check the Ollama service and the firewall rule from the gateway to port 11434)"
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
