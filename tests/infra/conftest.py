"""Shared fixtures of the infra suite: what to expect on each host, and how to ask it.

One suite, two targets: `duoctl verify` runs it against the hosts of a real inventory
(`--connection=ansible --ansible-inventory=inventory/<cloud>.yml --sudo`) and Molecule runs it
against the three-host test containers (its testinfra verifier passes the same two options).
Each module selects its hosts by inventory group (`testinfra_hosts`).

Expected values come from the inventory first (host and group variables, e.g. `private_ip`,
`gitlab_domain`, `gitlab_tls_mode`), then from the role defaults in `ansible/roles/*/defaults`,
then from the documented defaults below. Values still holding a Jinja expression are treated
as unknown, and the host is asked instead (e.g. its private address).

Every test records two JUnit properties that `duoctl verify` reads: `check` (the first line of
its docstring) and `hop` (which part of GitLab -> gateway -> model it proves).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.infra.checks import HTTP_PROBE, listening_addresses, probe_result

TestFunction = TypeVar("TestFunction", bound=Callable[..., Any])
ROOT = Path(__file__).resolve().parents[2]
ROLE_DEFAULTS = ROOT / "ansible" / "roles"
# Address used only to ask the routing table which source address a host uses (no traffic).
ROUTE_PROBE = "192.0.2.1"


def hop(name: str) -> Callable[[TestFunction], TestFunction]:
    """Names the part of the request path a test proves, when not its module's HOP."""

    def mark(test: TestFunction) -> TestFunction:
        test.hop = name  # type: ignore[attr-defined]
        return test

    return mark


@pytest.fixture(autouse=True)
def _record_check(request: pytest.FixtureRequest, record_property: Any) -> None:
    hop = getattr(request.function, "hop", None) or getattr(request.module, "HOP", "")
    doc = (request.function.__doc__ or request.function.__name__).strip().splitlines()[0]
    record_property("check", doc.rstrip("."))
    record_property("hop", hop)
    callspec = getattr(request.node, "callspec", None)
    params = {k: v for k, v in (callspec.params if callspec else {}).items() if k[0] != "_"}
    if params:
        record_property("params", ", ".join(str(v) for v in params.values()))
    if "host" in request.fixturenames:
        backend = request.getfixturevalue("host").backend
        record_property("host", str(getattr(backend, "host", None) or backend.get_pytest_id()))


@functools.cache
def role_default(role: str, name: str) -> Any:
    path = ROLE_DEFAULTS / role / "defaults" / "main.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    value = data.get(name)
    return None if _templated(value) else value


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def host_vars(host: Any) -> dict[str, Any]:
    """The inventory variables of a host reached through the ansible backend ({} otherwise)."""
    try:
        return dict(host.ansible.get_variables())
    except (AttributeError, RuntimeError):
        return {}


def var(host: Any, name: str, role: str | None = None, default: Any = None) -> Any:
    value = host_vars(host).get(name)
    if value is None or _templated(value):
        value = role_default(role, name) if role else None
    return default if value is None else value


# The service ports live in the inventory's URLs (the ports chosen in Terraform); a role
# variable or default applies only where the inventory has no URL.
SERVICE_PORTS = {
    "ai_gateway_http_port": ("gateway_url", "ai_gateway", 5052),
    "ai_gateway_grpc_port": ("gateway_agent_platform_address", "ai_gateway", 50052),
    "ollama_port": ("model_endpoint", "ollama", 11434),
    "vllm_port": ("model_endpoint", "vllm", 8000),
}
# The model server's group: the GPU host is in one of them (the deployment's serving).
MODEL_GROUPS = ("ollama", "vllm")
VLLM_ENV_FILE = "/etc/vllm/vllm.env"


def service_port(host: Any, name: str) -> int:
    url_var, role, default = SERVICE_PORTS[name]
    url = host_vars(host).get(url_var)
    if isinstance(url, str) and not _templated(url):
        port = url.rstrip("/").removesuffix("/v1").rpartition(":")[2]
        if port.isdigit():
            return int(port)
    return int(var(host, name, role, default))


def route_source(host: Any) -> str:
    route = host.check_output(f"ip -4 route get {ROUTE_PROBE}")
    return str(route.split(" src ")[1].split()[0])


def private_address(host: Any) -> str:
    """The host's private address: inventory `private_ip`, else the source of its route."""
    value = host_vars(host).get("private_ip")
    if value and not _templated(value):
        return str(value)
    return route_source(host)


def public_addresses(host: Any) -> list[str]:
    """Addresses the inventory knows to be public for this host (public_ip, ansible_host)."""
    values = host_vars(host)
    found = [values.get("public_ip")]
    if values.get("public_ip") == values.get("ansible_host"):
        found.append(values.get("ansible_host"))
    return [str(v) for v in found if v and not _templated(v)]


def group_hosts(host: Any, group: str) -> list[Any]:
    """testinfra hosts of another inventory group (empty outside the ansible backend)."""
    runner = getattr(host.backend, "ansible_runner", None)
    if runner is None:
        return []
    return [runner.get_host(name) for name in runner.get_hosts(group)]


def model_server(host: Any) -> tuple[str, Any] | None:
    """(group, testinfra host) of the model server, seen from any host (None without one)."""
    for group in MODEL_GROUPS:
        found = group_hosts(host, group)
        if found:
            return group, found[0]
    return None


def vllm_api_key(vllm: Any) -> str:
    """vLLM's API key, read on the vLLM host through sudo from the role's root-only env file.

    `duoctl verify` runs against remote hosts: the host's own file is what the server runs with.
    """
    path = str(var(vllm, "vllm_env_file", default=VLLM_ENV_FILE))
    with vllm.sudo():
        out = vllm.run("sed -n 's/^VLLM_API_KEY=//p' %s", path)
    key = out.stdout.strip()
    if out.rc != 0 or not key:
        pytest.fail(f"cannot read VLLM_API_KEY from {path} on the vLLM host (sudo): rc {out.rc}")
    return str(key)


def http_with_key(host: Any, url: str, key: str, timeout: float = 20) -> dict[str, Any]:
    """A GET from `host` with `Authorization: Bearer <key>`: {status, body} or {error}.

    Ansible's uri module on `host` makes the request: the key travels in the module's arguments,
    never on a command line of `host` (where any local user could read it in ps).
    """
    args = {
        "url": url,
        "headers": {"Authorization": f"Bearer {key}"},
        "return_content": True,
        "timeout": int(timeout),
        "status_code": list(range(100, 600)),
    }
    try:
        result = host.ansible("uri", json.dumps(args), check=False)
    except host.ansible.AnsibleException as exc:
        result = exc.result
    except RuntimeError as exc:  # not the ansible connection backend
        return {"error": str(exc)}
    status = int(result.get("status", -1))
    if status < 0:
        return {"error": str(result.get("msg", "no answer")).replace(key, "***")}
    return {"status": status, "body": str(result.get("content", ""))[:20000]}


def listeners(host: Any, port: int) -> list[str]:
    return listening_addresses(host.check_output("ss -Hltn"), port)


def http(
    host: Any,
    url: str,
    method: str = "GET",
    cafile: str = "",
    body: Any = None,
    timeout: float = 20,
) -> dict[str, Any]:
    """An HTTP request made from `host` itself: {status, body} or {error}."""
    data = json.dumps(body) if body is not None else ""
    args = (HTTP_PROBE, url, method, cafile, data, str(timeout))
    out = host.run("python3 -c %s %s %s %s %s %s", *args)
    return probe_result(out.stdout or out.stderr)


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def skip_unless_present(host: Any, path: str, why: str) -> None:
    if not host.file(path).exists:
        pytest.skip(f"{path} does not exist ({why})")


# Function-scoped on purpose: a fixture that fails then fails one named check, after
# _record_check has recorded its name.
@pytest.fixture
def address(host: Any) -> str:
    return private_address(host)


@pytest.fixture
def gitlab_domain(host: Any) -> str:
    domain = var(host, "gitlab_domain") or var(host, "gitlab_external_domain")
    if not domain:
        url = str(var(host, "gitlab_url", default=""))
        domain = url.split("://", 1)[-1].split("/", 1)[0]
    if not domain:
        pytest.fail("gitlab_domain is not set in the inventory (all: vars: gitlab_domain)")
    return str(domain)
