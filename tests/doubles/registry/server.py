"""Test double of a container registry's tag list, on loopback.

Stands in for registry.gitlab.com (and Docker Hub) as the ai_gateway role reads them: the
Docker Registry HTTP API v2 `GET /v2/<name>/tags/list` with `n` and `last` pagination
(tags in lexical order; a page that is not the last carries
`Link: </v2/<name>/tags/list?n=<n>&last=<last tag>>; rel="next"`; the server caps `n` at its
page size, as registries may), behind token authentication (distribution's token spec): a
request without a valid token gets 401 with `WWW-Authenticate: Bearer
realm="<url>/jwt/auth",service="container_registry",scope="repository:<name>:pull"`;
`GET /jwt/auth?service=...&scope=...` hands an anonymous pull token for a public repository
(`{"token": ..., "access_token": ..., "expires_in": ...}`, like GitLab's JWT endpoint) and
400 for a wrong service; a token opens only its own repository's scope; an unknown
repository is 404 `NAME_UNKNOWN` once authorized. `expire_tokens()` makes every token
handed so far invalid (the next request gets a new challenge). Requests are logged.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

SERVICE = "container_registry"
GATEWAY_REPOSITORY = "gitlab-org/modelops/applied-ml/code-suggestions/ai-assist/model-gateway"
# Gaps on purpose: 18.2.3 and 18.5.0 were never published; rc and nightly tags sit beside them.
GATEWAY_TAGS = [
    "self-hosted-v18.2.0-ee",
    "self-hosted-v18.2.1-ee",
    "self-hosted-v18.2.2-ee",
    "self-hosted-v18.2.4-ee",
    "self-hosted-v18.2.5-rc1-ee",
    "self-hosted-v18.5.1-ee",
    "self-hosted-v18.5.10-ee",
    "self-hosted-v18.5.2-ee",
    "self-hosted-v19.4.1-ee",
    "self-hosted-18.11.0-ee",
    "v18.2.9",
    "latest",
    "nightly",
    "self-hosted-v18.11.0-ee-nightly",
]


@dataclass
class RegistryDouble:
    repositories: dict[str, list[str]] = field(
        default_factory=lambda: {GATEWAY_REPOSITORY: list(GATEWAY_TAGS)}
    )
    page_size: int = 3  # small, so that every listing spans pages
    public: bool = True  # anonymous tokens are handed out
    url: str = ""
    log: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> scope
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def token_requests(self) -> int:
        return sum(1 for entry in self.log if entry.startswith("/jwt/auth"))

    def tag_requests(self) -> int:
        return sum(1 for entry in self.log if "/tags/list" in entry)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        double = self.server.double
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with double._lock:
            double.log.append(self.path)
        if parts.path == "/jwt/auth":
            self._token(double, query)
        elif parts.path.startswith("/v2/") and parts.path.endswith("/tags/list"):
            name = parts.path.removeprefix("/v2/").removesuffix("/tags/list")
            self._tags(double, name, query)
        else:
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})

    def _token(self, double: RegistryDouble, query: dict[str, str]) -> None:
        if query.get("service") != SERVICE:
            self._send(400, {"error": "invalid service"})
            return
        scope = query.get("scope", "")
        if not double.public:
            self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        token = secrets.token_hex(16)
        with double._lock:
            double.tokens[token] = scope
        self._send(200, {"token": token, "access_token": token, "expires_in": 300})

    def _tags(self, double: RegistryDouble, name: str, query: dict[str, str]) -> None:
        scope = f"repository:{name}:pull"
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        with double._lock:
            granted = double.tokens.get(token)
        if granted != scope:
            challenge = f'Bearer realm="{double.url}/jwt/auth",service="{SERVICE}",scope="{scope}"'
            self._send(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                {"WWW-Authenticate": challenge},
            )
            return
        if name not in double.repositories:
            self._send(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "unknown"}]})
            return
        tags = sorted(double.repositories[name])
        last = query.get("last")
        if last:
            tags = [t for t in tags if t > last]
        size = min(int(query.get("n", double.page_size)), double.page_size)
        page, rest = tags[:size], tags[size:]
        headers = {}
        if rest:
            more = urlencode({"n": size, "last": page[-1]})
            headers["Link"] = f'</v2/{name}/tags/list?{more}>; rel="next"'
        self._send(200, {"name": name, "tags": page}, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, double: RegistryDouble) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.double = double


@contextmanager
def registry_double(double: RegistryDouble | None = None) -> Iterator[RegistryDouble]:
    """Start the double on a free loopback port (plain HTTP); stops it on exit."""
    double = double or RegistryDouble()
    server = _Server(double)
    double.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
