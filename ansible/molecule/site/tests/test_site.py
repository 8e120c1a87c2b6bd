"""Cross-host checks of the three-host scenarios (site: Ollama, site-vllm: vLLM): the gateway's
view of GitLab and the model server. Addresses come from the scenario's inventory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

testinfra_hosts = ["ai_gateway"]

DOMAIN = "gitlab.duo.test"
CONTAINER = "ai-gateway"
OLLAMA_MODEL = "mistral:instruct"


def first_of(host: Any, group: str) -> dict[str, Any] | None:
    runner = host.backend.ansible_runner
    names = runner.get_hosts(group)
    return dict(runner.get_variables(names[0])) if names else None


@pytest.fixture(scope="module")
def gitlab_ip(host: Any) -> str:
    gitlab = first_of(host, "gitlab")
    assert gitlab is not None
    return str(gitlab["private_ip"])


def in_gateway(host: Any, code: str) -> str:
    """Runs Python inside the gateway container (the stand-in image ships python3)."""
    return str(host.check_output(f"docker exec {CONTAINER} python3 -c {json.dumps(code)}"))


@pytest.fixture(scope="module")
def container_env(host: Any) -> dict[str, str]:
    inspect = json.loads(host.check_output(f"docker inspect {CONTAINER}"))[0]
    return dict(item.split("=", 1) for item in inspect["Config"]["Env"])


def test_host_maps_gitlab_domain_to_private_address(host: Any, gitlab_ip: str) -> None:
    assert host.check_output(f"getent hosts {DOMAIN}").split()[0] == gitlab_ip


def test_container_resolves_gitlab_domain_to_private_address(host: Any, gitlab_ip: str) -> None:
    code = f"import socket; print(socket.gethostbyname('{DOMAIN}'))"
    assert in_gateway(host, code) == gitlab_ip


def test_container_reaches_gitlab_by_domain_with_verified_tls(host: Any) -> None:
    # urllib verifies the certificate against SSL_CERT_FILE (the CA bundle the role mounts).
    code = (
        "import urllib.request; "
        f"print(urllib.request.urlopen('https://{DOMAIN}/users/sign_in', timeout=10).status)"
    )
    assert in_gateway(host, code) == "200"


def test_container_reaches_the_model_server(host: Any) -> None:
    """From inside the gateway container, /v1/models of model_endpoint lists the model; vLLM
    with the API key the controller keeps (the key the deploy registers in GitLab)."""
    endpoint = str(host.ansible.get_variables()["model_endpoint"]).rstrip("/")
    vllm = first_of(host, "vllm")
    headers, wanted = {}, OLLAMA_MODEL
    if vllm is not None:
        key = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / "vllm_api_key"
        headers = {"Authorization": f"Bearer {key.read_text().strip()}"}
        wanted = str(vllm["vllm_served_model_name"])
    code = (
        "import urllib.request; "
        f"req = urllib.request.Request('{endpoint}/models', headers={headers!r}); "
        "print(urllib.request.urlopen(req, timeout=10).read().decode())"
    )
    models = [m["id"] for m in json.loads(in_gateway(host, code))["data"]]
    assert wanted in models


def test_gateway_env_has_scheme_full_gitlab_url_and_bypass_off(
    container_env: dict[str, str],
) -> None:
    assert container_env["AIGW_GITLAB_URL"] == f"https://{DOMAIN}"
    assert container_env["AIGW_GITLAB_API_URL"] == f"https://{DOMAIN}/api/v4/"
    assert container_env["AIGW_AUTH__BYPASS_EXTERNAL"] == "false"


def test_signing_key_present_and_unreadable_to_others(
    host: Any, container_env: dict[str, str]
) -> None:
    key = host.file("/etc/ai-gateway/duo_workflow_jwt.key")
    assert key.user == "root"
    assert key.mode & 0o077 == 0
    assert host.file("/etc/ai-gateway/ai-gateway.env").mode & 0o077 == 0
    signing_key = container_env["DUO_WORKFLOW_SELF_SIGNED_JWT__SIGNING_KEY"]
    assert signing_key.startswith("-----BEGIN")
    assert signing_key.strip() == key.content_string.strip()
