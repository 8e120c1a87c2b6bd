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
    OIDC token that is not a JWT is refused with 401 {"error":"Forbidden by auth provider"};
  - with AIGW_AUTH__BYPASS_EXTERNAL=true authentication is off and there is no route at / (nor
    anywhere else here), so FastAPI's default 404 {"detail":"Not Found"} applies.
- POST /v2/code/completions (and /v2/completions), the route GitLab calls for code completions
  with a self-hosted model (api/v2/code/completions.py, typing.py): the request body is checked
  as the gateway's CompletionsRequest (current_file with file_name, content_above_cursor and
  content_below_cursor; prompt_version 1, 2 or 3; 422 with FastAPI's `detail` list otherwise);
  for model_provider `litellm` the stand-in calls the model the way the gateway's litellm chat
  model does for a custom_openai identifier: POST <model_endpoint>/chat/completions with the
  identifier's model name, the prompt definition's system and user messages
  (prompts/definitions/code_suggestions/completions/mistral or base 1.0.0), its max_tokens, stop
  words and timeout, `Authorization: Bearer <model_api_key>`; it answers the gateway's
  SuggestionsResponse, or with `stream: true` the text chunks as `text/event-stream`, as
  _handle_stream does. A model that fails or does not answer in time gives 500 or 504.
  Authentication: the gateway verifies GitLab's OIDC token against GitLab's signing keys, which
  live in GitLab's Rails (no stand-in has them), so this stand-in checks only the token's form
  (a JWT whose claims are JSON) and the headers GitLab sends; the signature is not verified.
- Metrics on AIGW_FASTAPI__METRICS_PORT (8082), as the gateway's prometheus_client server
  serves them (ai_gateway/prometheus.py, api/server.py): the latency histogram
  `http_request_duration_seconds` of the routes it serves, labelled handler, method and status
  (grouped: 2xx, 4xx, 5xx), buckets 0.5 to 60 s, counting the completions this stand-in answers.
- Port PORT (50052): a plain TCP listener standing in for the Duo Agent Platform gRPC service.
  It accepts connections and speaks no gRPC; it only proves the port is served and published.

Standard library only: the image holds nothing but a Python interpreter and this file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

SKIP_AUTH_PATHS = {"/monitoring/healthz", "/monitoring/ready", "/metrics", "/v1/models/definitions"}
COMPLETION_PATHS = {"/v2/code/completions", "/v2/completions"}

# prompts/definitions/code_suggestions/completions/system/1.0.0.jinja (language left out)
SYSTEM_PROMPT = (
    "You are a code completion tool that performs Fill-in-the-middle. Your task is to complete "
    "the code between the given prefix and suffix inside the file '{file_name}'. Your task is to "
    "provide valid code without any additional explanations, comments, or feedback.\n\n"
    "Important:\n"
    "- You MUST NOT output any additional human text or explanation.\n"
    "- You MUST output code exclusively.\n"
    "- The suggested code MUST work by simply concatenating to the provided code.\n"
    "- You MUST not include any sort of markdown markup or language identifiers.\n"
    "- You MUST NOT repeat or modify any part of the prefix or suffix.\n"
    "- You MUST only provide the missing code that fits between them.\n"
)
# The prompt definitions the stand-in follows: the family's, else the base one.
PROMPTS: dict[str, dict[str, Any]] = {
    "mistral": {
        "user": "<s>[SUFFIX]{suffix}[PREFIX]{prefix}",
        "max_tokens": 64,
        "timeout": 60.0,
        "stop": ["[INST]", "[/INST]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]"],
    },
    "base": {
        "user": "<file_name>\n{file_name}\n</file_name>\n<prefix>\n{prefix}\n</prefix>\n"
        "<suffix>\n{suffix}\n</suffix>\n",
        "max_tokens": 128,
        "timeout": 60.0,
        "stop": [],
    },
}


BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Latency:
    """http_request_duration_seconds, as prometheus-fastapi-instrumentator's latency metric
    (should_group_status_codes, should_include_status) exposes it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.series: dict[tuple[str, str, str], list[float]] = {}  # counts per bucket, sum, n

    def observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        key = (handler, method, f"{status // 100}xx")
        with self.lock:
            row = self.series.setdefault(key, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1

    def text(self) -> str:
        name = "http_request_duration_seconds"
        lines = [
            f"# HELP {name} Duration of HTTP requests in seconds",
            f"# TYPE {name} histogram",
        ]
        with self.lock:
            for (handler, method, status), row in sorted(self.series.items()):
                labels = f'handler="{handler}",method="{method}",status="{status}"'
                for bound, count in zip(BUCKETS, row, strict=False):
                    lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {count}')
                lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {row[-1]}')
                lines.append(f"{name}_count{{{labels}}} {row[-1]}")
                lines.append(f"{name}_sum{{{labels}}} {row[-2]}")
        return "\n".join(lines) + "\n"


LATENCY = Latency()


class MetricsHandler(BaseHTTPRequestHandler):
    """prometheus_client's start_http_server: the registry's text at any path."""

    def do_GET(self) -> None:
        data = LATENCY.text().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class RequestError(Exception):
    def __init__(self, status: int, body: object) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT-shaped token (signature not verified: see the header)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _missing(loc: list[str], value: Any = None) -> dict[str, Any]:
    return {"type": "missing", "loc": ["body", *loc], "msg": "Field required", "input": value}


def completion_request(body: Any) -> dict[str, Any]:
    """The request as the gateway validates it; RequestError(422) like FastAPI otherwise."""
    if not isinstance(body, dict):
        raise RequestError(
            422,
            {
                "detail": [
                    {
                        "type": "model_attributes_type",
                        "loc": ["body"],
                        "msg": "Input should be a valid dictionary",
                    }
                ]
            },
        )
    version = body.get("prompt_version", 1)
    if version not in (1, 2, 3):
        raise RequestError(
            422,
            {
                "detail": [
                    {
                        "type": "union_tag_invalid",
                        "loc": ["body"],
                        "msg": "Input tag "
                        f"'{version}' found using 'prompt_version' does "
                        "not match any of the expected tags: 1, 2, 3",
                    }
                ]
            },
        )
    current = body.get("current_file")
    if not isinstance(current, dict):
        raise RequestError(422, {"detail": [_missing(["current_file"])]})
    problems = [
        _missing(["current_file", key], current)
        for key in ("file_name", "content_above_cursor", "content_below_cursor")
        if not isinstance(current.get(key), str)
    ]
    if problems:
        raise RequestError(422, {"detail": problems})
    return body


def model_messages(request: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The chat messages and parameters of the family's prompt definition."""
    current = request["current_file"]
    definition = PROMPTS.get(str(request.get("model_name") or ""), PROMPTS["base"])
    fields = {
        "file_name": current["file_name"],
        "prefix": current["content_above_cursor"],
        "suffix": current["content_below_cursor"],
    }
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT.format(**fields)},
        {"role": "user", "content": definition["user"].format(**fields)},
    ]
    return messages, definition


def call_model(request: dict[str, Any]) -> Iterator[str]:
    """The model's answer, as text chunks (one chunk unless the request streams)."""
    if request.get("model_provider") != "litellm" or not request.get("model_endpoint"):
        raise RequestError(
            422, {"detail": "this stand-in serves self-hosted (litellm) models only"}
        )
    identifier = str(request.get("model_identifier") or "")
    model = identifier.partition("/")[2] if identifier.startswith("custom_openai/") else identifier
    messages, definition = model_messages(request)
    stream = bool(request.get("stream"))
    payload = {
        "model": model,
        "messages": messages,
        "max_tokens": definition["max_tokens"],
        "temperature": 0.95,
        "top_p": 0.95,
        "stream": stream,
        "stop": definition["stop"],
    }
    headers = {"Content-Type": "application/json"}
    if request.get("model_api_key"):
        headers["Authorization"] = f"Bearer {request['model_api_key']}"
    url = str(request["model_endpoint"]).rstrip("/") + "/chat/completions"
    req = urllib.request.Request(url, json.dumps(payload).encode(), headers, method="POST")
    try:
        response = urllib.request.urlopen(req, timeout=definition["timeout"])
    except urllib.error.HTTPError as exc:
        raise RequestError(500, {"detail": f"model answered {exc.code}"}) from None
    except TimeoutError:
        raise RequestError(504, {"detail": "model timed out"}) from None
    except OSError as exc:
        raise RequestError(500, {"detail": f"cannot reach the model: {exc}"}) from None
    with response:
        if not stream:
            answer = json.loads(response.read())
            yield answer["choices"][0]["message"].get("content") or ""
            return
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            delta = json.loads(line[5:])["choices"][0].get("delta") or {}
            if delta.get("content"):
                yield delta["content"]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bypass_auth = False

    def version_string(self) -> str:
        return "uvicorn"

    status = 0  # the status of the answer being sent

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = code
        super().send_response(code, message)

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
        if _jwt_claims(token.strip()) is None:
            return "Forbidden by auth provider"
        return None

    def _complete(self, raw: bytes) -> None:
        try:
            request = completion_request(json.loads(raw or b"null"))
            chunks = call_model(request)
            if not request.get("stream"):
                text = "".join(chunks)
                self._send_json(200, suggestions_response(request, text))
                return
            first = next(chunks, "")  # errors before the status line is sent
        except ValueError:
            self._send_json(
                422,
                {"detail": [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}]},
            )
            return
        except RequestError as exc:
            self._send_json(exc.status, exc.body)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for text in (first, *chunks):
                data = text.encode()
                if data:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except RequestError:
            pass  # the model stopped mid-stream: end the stream, as the gateway does
        self.wfile.write(b"0\r\n\r\n")

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path == "/monitoring/healthz" and self.command in {"GET", "HEAD"}:
            self._send_json(200, {})
            return
        if not self.bypass_auth and path not in SKIP_AUTH_PATHS:
            error = self._auth_error()
            if error:
                self._send_json(401, {"error": error})
                return
        if path in COMPLETION_PATHS and self.command == "POST":
            started = time.monotonic()
            self._complete(raw)
            LATENCY.observe(path, "POST", self.status, time.monotonic() - started)
            return
        self._send_json(404, {"detail": "Not Found"})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.address_string()} - {format % args}\n")
        sys.stdout.flush()


def suggestions_response(request: dict[str, Any], text: str) -> dict[str, Any]:
    """The gateway's SuggestionsResponse (an empty text gives no choice, as the gateway does)."""
    name = request["current_file"]["file_name"]
    return {
        "id": "id",
        "model": {"engine": "litellm", "name": request.get("model_name") or "", "lang": name},
        "object": "text_completion",
        "created": int(time.time()),
        "choices": [{"text": text, "index": 0, "finish_reason": "length"}] if text else [],
    }


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
    metrics = ThreadingHTTPServer(
        (
            os.environ.get("AIGW_FASTAPI__METRICS_HOST", "0.0.0.0"),  # noqa: S104
            int(os.environ.get("AIGW_FASTAPI__METRICS_PORT", "8082")),
        ),
        MetricsHandler,
    )
    threading.Thread(target=metrics.serve_forever, daemon=True).start()
    print(f"AI gateway stand-in listening on {http_port} (HTTP) and {grpc_port} (TCP)", flush=True)
    ThreadingHTTPServer((http_host, http_port), GatewayHandler).serve_forever()


if __name__ == "__main__":
    main()
