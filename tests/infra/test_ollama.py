"""The model host: the Ollama service, its port, its models and the GPU."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.checks import (
    ANY_ADDRESSES,
    binding_problem,
    describe_answer,
    gpu_problem,
    json_body,
    missing_models,
)
from tests.infra.conftest import http, listeners, public_addresses, service_port, url_host, var

testinfra_hosts = ["ollama"]
HOP = "gateway → model"


def port(host: Any) -> int:
    return service_port(host, "ollama_port")


def wanted_models(host: Any) -> list[str]:
    models = var(host, "ollama_models", "ollama")
    if models is None:
        single = var(host, "ollama_model", "ollama")
        models = [single] if single else []
    names = [m.get("name") if isinstance(m, dict) else m for m in models]
    return [str(n) for n in names if n]


def api_url(host: Any) -> str:
    addresses = listeners(host, port(host))
    address = next((a for a in addresses if a not in ANY_ADDRESSES), "127.0.0.1")
    return f"http://{url_host(address)}:{port(host)}"


def test_ollama_service_active_and_enabled(host: Any) -> None:
    """Ollama's service is running and enabled."""
    service = host.service("ollama")
    assert service.is_running, "Ollama service ollama is not running"
    assert service.is_enabled, "Ollama service ollama is not enabled at boot"


def test_ollama_port_bound_to_private_address(host: Any, address: str) -> None:
    """Ollama's port 11434 listens on the private address only."""
    problem = binding_problem(
        "Ollama", port(host), listeners(host, port(host)), address, public_addresses(host)
    )
    assert not problem, problem


def test_ollama_lists_models(host: Any) -> None:
    """Ollama lists the configured model(s)."""
    wanted = wanted_models(host)
    if not wanted:
        pytest.skip("no ollama_models in the inventory or the ollama role defaults")
    result = http(host, f"{api_url(host)}/api/tags")
    assert result.get("status") == 200, f"Ollama /api/tags answered {describe_answer(result)}"
    missing = missing_models(json_body(result), wanted)
    assert not missing, f"Ollama does not list the model(s) {', '.join(missing)} (ollama pull)"


def test_ollama_runs_model_on_gpu(host: Any) -> None:
    """Ollama runs the model on the GPU (ollama ps: 100% GPU) when the host has one."""
    if host.run("nvidia-smi -L").rc != 0:
        pytest.skip("no NVIDIA GPU on this host (nvidia-smi -L failed)")
    wanted = wanted_models(host)
    if not wanted:
        pytest.skip("no ollama_models in the inventory or the ollama role defaults")
    model, base = wanted[0], api_url(host)
    ps = json_body(http(host, f"{base}/api/ps"))
    if gpu_problem(ps, model).endswith("(ollama ps lists no such model)"):
        # Load it the way a first request would, then look again.
        http(host, f"{base}/api/generate", "POST", body={"model": model}, timeout=600)
        ps = json_body(http(host, f"{base}/api/ps"))
    problem = gpu_problem(ps, model)
    assert not problem, problem
