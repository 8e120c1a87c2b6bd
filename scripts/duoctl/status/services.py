"""The service checks of each host, over a Remote (remote.py): what runs, its version, and
whether it answers. Each returns Service lines and fills in Versions; none raises."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable

from duoctl.deployment import Deployment
from duoctl.status.model import Service, State, Versions
from duoctl.status.remote import Remote

GATEWAY_CONTAINER = "ai-gateway"  # the ai_gateway role's ai_gateway_container_name
GITLAB_VERSION_FILE = "/opt/gitlab/embedded/service/gitlab-rails/VERSION"
# `gitlab-ctl status`: "run: puma: (pid 1) 5s; run: log: ..." / "down: sidekiq: 3s, normally up"
CTL_LINE = re.compile(r"^(run|down|fail|warning|timeout): ([\w.-]+): ?([^;]*)")


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _guard(name: str, check: Callable[[], list[Service]]) -> list[Service]:
    try:
        return check()
    except Exception as exc:  # a check that breaks is a service not answering
        return [Service(name=name, state="down", detail=f"{type(exc).__name__}: {exc}"[:300])]


def parse_gitlab_ctl(output: str) -> list[Service]:
    services = []
    for line in output.splitlines():
        match = CTL_LINE.match(line.strip())
        if match:
            word, name, rest = match.groups()
            state: State = "up" if word == "run" else "down"
            detail = "" if state == "up" else f"{word}: {rest.strip()}".strip()
            services.append(Service(name=name, state=state, detail=detail))
    return services


def gitlab_services(remote: Remote, versions: Versions) -> list[Service]:
    def ctl() -> list[Service]:
        result = remote.run("sudo -n gitlab-ctl status")
        services = parse_gitlab_ctl(result.stdout)
        if not services:
            detail = _tail(result.stderr or result.stdout) or f"exit {result.exit_code}"
            return [Service(name="gitlab-ctl status", state="down", detail=detail)]
        return services

    def version() -> list[Service]:
        result = remote.run(f"cat {GITLAB_VERSION_FILE}")
        if result.exit_code == 0 and result.stdout.strip():
            versions.gitlab = versions.gitlab or result.stdout.strip()
        return []

    return _guard("gitlab-ctl status", ctl) + _guard("GitLab version", version)


def describe_image(reference: str, digests: list[str]) -> tuple[str, str | None]:
    repository = reference.split("@", 1)[0].rsplit(":", 1)[0] if reference else ""
    digest = next((d.split("@", 1)[1] for d in digests if d.startswith(repository + "@")), None)
    if digest is None and "@" in reference:
        digest = reference.split("@", 1)[1]
    return reference, digest or (digests[0].split("@", 1)[-1] if digests else None)


def gateway_services(remote: Remote, deployment: Deployment, versions: Versions) -> list[Service]:
    name = GATEWAY_CONTAINER

    def container() -> list[Service]:
        result = remote.run(f"sudo -n docker inspect --type container {shlex.quote(name)}")
        if result.exit_code != 0:
            detail = _tail(result.stderr) or f"docker inspect: exit {result.exit_code}"
            return [Service(name=f"container {name}", state="down", detail=detail)]
        info = json.loads(result.stdout)[0]
        image = remote.run(
            "sudo -n docker image inspect --format '{{json .RepoDigests}}' "
            + shlex.quote(str(info.get("Image", "")))
        )
        digests = json.loads(image.stdout) if image.exit_code == 0 and image.stdout.strip() else []
        versions.gateway_image, versions.gateway_digest = describe_image(
            str((info.get("Config") or {}).get("Image") or ""), list(digests or [])
        )
        state = info.get("State") or {}
        running = bool(state.get("Running"))
        detail = "" if running else f"container is {state.get('Status', 'not running')}"
        return [Service(name=f"container {name}", state="up" if running else "down", detail=detail)]

    def health() -> list[Service]:
        gateway = deployment.gateway
        port = deployment.ports.gateway_port
        status, body = remote.http_get(gateway.private_ip, port, "/monitoring/healthz")
        ok = status == 200
        detail = "" if ok else f"HTTP {status}: {body.strip()[:120]}"
        return [
            Service(name="gateway /monitoring/healthz", state="up" if ok else "down", detail=detail)
        ]

    return _guard(f"container {name}", container) + _guard("gateway /monitoring/healthz", health)


def _unit(remote: Remote, unit: str) -> list[Service]:
    result = remote.run(f"sudo -n systemctl is-active {shlex.quote(unit)}")
    word = result.stdout.strip() or _tail(result.stderr) or "unknown"
    up = word == "active"
    return [
        Service(name=f"{unit} service", state="up" if up else "down", detail="" if up else word)
    ]


def model_services(
    remote: Remote, deployment: Deployment, versions: Versions, api_key: str | None
) -> list[Service]:
    host, port = deployment.model.private_ip, deployment.ports.ollama_port
    serving = deployment.serving

    def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        return remote.http_get(host, port, path, headers)

    def ollama() -> list[Service]:
        status, body = get("/api/version")
        if status != 200:
            return [Service(name="ollama API", state="down", detail=f"HTTP {status}")]
        versions.model_server = f"ollama {json.loads(body).get('version', '?')}"
        status, body = get("/api/tags")
        if status == 200:
            versions.models = [str(m.get("name")) for m in json.loads(body).get("models") or []]
        return [Service(name="ollama API", state="up")]

    def vllm() -> list[Service]:
        status, _ = get("/health")
        if status != 200:
            return [Service(name="vllm /health", state="down", detail=f"HTTP {status}")]
        vstatus, vbody = get("/version")
        if vstatus == 200:
            versions.model_server = f"vllm {json.loads(vbody).get('version', '?')}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        mstatus, mbody = get("/v1/models", headers)
        if mstatus == 200:
            versions.models = [str(m.get("id")) for m in json.loads(mbody).get("data") or []]
        return [Service(name="vllm /health", state="up")]

    api = ollama if serving == "ollama" else vllm
    label = "ollama API" if serving == "ollama" else "vllm /health"
    return _guard(f"{serving} service", lambda: _unit(remote, serving)) + _guard(label, api)
