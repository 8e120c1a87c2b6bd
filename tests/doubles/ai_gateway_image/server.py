"""Stand-in for the GitLab AI gateway container (image model-gateway:self-hosted-v<X.Y.Z>-ee).

TEST DOUBLE. It is not the gateway: it answers the unauthenticated requests the deployment
checks exactly as the real gateway does (ai_gateway/api/server.py, api/monitoring.py and
api/middleware/authentication.py of the ai-assist project; install_ai_gateway.md):

- HTTP on AIGW_FASTAPI__API_PORT (5052 in the self-hosted image):
  - GET /monitoring/healthz -> 200 {} (unauthenticated, no health conditions);
  - any other request without an Authorization header -> 401
    {"error":"No authorization header presented"}; a header that is not "Bearer <token>" -> 401
    {"error":"Invalid authorization header"}; a token whose X-Gitlab-Authentication-Type is not
    oidc -> 401 {"error":"Invalid authentication token type - only OIDC is supported"}. A bearer
    OIDC token cannot be verified by this stand-in, so it answers 401 {"error":"Forbidden by auth
    provider"};
  - with AIGW_AUTH__BYPASS_EXTERNAL=true authentication is off and there is no route at / (nor
    anywhere else here), so FastAPI's default 404 {"detail":"Not Found"} applies.
- Port PORT (50052): a plain TCP listener standing in for the Duo Agent Platform gRPC service.
  It accepts connections and speaks no gRPC; it only proves the port is served and published.

Standard library only: the image holds nothing but a Python interpreter and this file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NoReturn

SKIP_AUTH_PATHS = {"/monitoring/healthz", "/monitoring/ready", "/metrics", "/v1/models/definitions"}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bypass_auth = False

    def version_string(self) -> str:
        return "uvicorn"

    def _send_json(self, status: int, body: object) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _auth_error(self) -> str | None:
        header = self.headers.get("Authorization")
        if not header:
            return "No authorization header presented"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "Invalid authorization header"
        if (self.headers.get("X-Gitlab-Authentication-Type") or "").lower() != "oidc":
            return "Invalid authentication token type - only OIDC is supported"
        return "Forbidden by auth provider"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path == "/monitoring/healthz" and self.command in {"GET", "HEAD"}:
            self._send_json(200, {})
            return
        if not self.bypass_auth and path not in SKIP_AUTH_PATHS:
            error = self._auth_error()
            if error:
                self._send_json(401, {"error": error})
                return
        self._send_json(404, {"detail": "Not Found"})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.address_string()} - {format % args}\n")
        sys.stdout.flush()


def _serve_tcp(port: int) -> None:
    # Inside the container's own network namespace, like the real image (API host 0.0.0.0).
    listener = socket.create_server(("0.0.0.0", port))  # noqa: S104
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_hold, args=(conn,), daemon=True).start()


def _hold(conn: socket.socket) -> None:
    with conn:
        while conn.recv(65536):
            pass


def _stop(_signum: int, _frame: object) -> NoReturn:
    sys.exit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    GatewayHandler.bypass_auth = _truthy(os.environ.get("AIGW_AUTH__BYPASS_EXTERNAL"))
    if GatewayHandler.bypass_auth:
        print("Auth is disabled, all users allowed", flush=True)
    grpc_port = int(os.environ.get("PORT", "50052"))
    threading.Thread(target=_serve_tcp, args=(grpc_port,), daemon=True).start()
    http_port = int(os.environ.get("AIGW_FASTAPI__API_PORT", "5052"))
    http_host = os.environ.get("AIGW_FASTAPI__API_HOST", "0.0.0.0")  # noqa: S104
    print(f"AI gateway stand-in listening on {http_port} (HTTP) and {grpc_port} (TCP)", flush=True)
    ThreadingHTTPServer((http_host, http_port), GatewayHandler).serve_forever()


if __name__ == "__main__":
    main()
