"""The code completion path GitLab → AI gateway → model, with the stand-ins production lacks.

The GitLab API double, configured by the real `duoctl configure`, forwards the completion to
the AI gateway stand-in (its server.py, run as a process on loopback), which asks the model
at the registered endpoint the way the gateway does. The model here is a small OpenAI-style
chat server in this file that records what it is asked and answers from the prompt: the
contract between the hops is what is tested (the real small model answers in the Molecule
and end-to-end tests).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from duoctl.cli import main

from tests.doubles.gitlab_api import ADMIN_TOKEN, GitLabDouble, gitlab_double

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_STANDIN = ROOT / "tests" / "doubles" / "ai_gateway_image" / "server.py"
MODEL_KEY = "model-key-0123"


@dataclass
class ModelServer:
    url: str
    asked: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


class _ModelHandler(BaseHTTPRequestHandler):
    server: _ModelHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.model.asked.append(body)
        self.server.model.headers.append(dict(self.headers))
        if self.headers.get("Authorization") != f"Bearer {MODEL_KEY}":
            self._json(401, {"error": "Unauthorized"})
            return
        text = f"return {len(body['messages'][-1]['content'])}"
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            self._json(200, {"choices": [{"index": 0, "message": message}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in text.split(" "):
            chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    model: ModelServer


@pytest.fixture
def model() -> Iterator[ModelServer]:
    server = _ModelHTTPServer(("127.0.0.1", 0), _ModelHandler)
    server.model = ModelServer(f"http://127.0.0.1:{server.server_address[1]}/v1")
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.model
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


METRICS_PORT: dict[str, int] = {}  # the gateway's URL -> its metrics port


@pytest.fixture
def gateway() -> Iterator[str]:
    port, metrics = free_port(), free_port()
    env = dict(
        os.environ,
        AIGW_FASTAPI__API_HOST="127.0.0.1",
        AIGW_FASTAPI__API_PORT=str(port),
        AIGW_FASTAPI__METRICS_HOST="127.0.0.1",
        AIGW_FASTAPI__METRICS_PORT=str(metrics),
        PORT=str(free_port()),
    )
    process = subprocess.Popen(
        [sys.executable, str(GATEWAY_STANDIN)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    METRICS_PORT[url] = metrics
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/monitoring/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def gitlab(
    tmp_path: Path, gateway: str, model: ModelServer, capsys: pytest.CaptureFixture[str]
) -> Iterator[GitLabDouble]:
    """GitLab configured by `duoctl configure` for the gateway and the model above."""
    (tmp_path / "model_key").write_text(MODEL_KEY + "\n")
    (tmp_path / "token").write_text(ADMIN_TOKEN + "\n")
    with gitlab_double("19.4.1-ee") as double:
        config = {
            "gitlab": {"url": double.url},
            "gateway": {"url": gateway},
            "models": [
                {
                    "name": "mistral-vllm",
                    "family": "mistral",
                    "endpoint": model.url,
                    "identifier": "custom_openai/mistral-small",
                    "api_key_file": str(tmp_path / "model_key"),
                }
            ],
            "features": {"code_completions": "mistral-vllm"},
            "seats": ["root"],
        }
        (tmp_path / "duo.yml").write_text(yaml.safe_dump(config))
        argv = ["configure", "--config", str(tmp_path / "duo.yml")]
        assert main([*argv, "--token-file", str(tmp_path / "token"), "--allow-http"]) == 0
        capsys.readouterr()
        double.forward_to_gateway = True
        yield double


def complete(double: GitLabDouble, stream: bool = False) -> requests.Response:
    body = {
        "current_file": {
            "file_name": "fib.py",
            "content_above_cursor": "def fib(n):\n",
            "content_below_cursor": "\n",
        },
        "stream": stream,
    }
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{double.url}/api/v4/code_suggestions/completions"
    return requests.post(url, json=body, headers=headers, timeout=30)


def test_a_completion_is_the_models_answer_through_gitlab_and_the_gateway(
    gitlab: GitLabDouble, model: ModelServer
) -> None:
    answer = complete(gitlab)
    assert answer.status_code == 200, answer.text
    [asked] = model.asked
    system, user = asked["messages"]
    assert answer.json()["choices"][0]["text"] == f"return {len(user['content'])}"
    assert answer.json()["model"]["engine"] == "litellm"
    # The gateway's mistral prompt definition, with the model's served name and key.
    assert asked["model"] == "mistral-small"
    assert user["content"] == "<s>[SUFFIX]\n[PREFIX]def fib(n):\n"
    assert "fib.py" in system["content"] and asked["max_tokens"] == 64
    assert "[INST]" in asked["stop"]
    assert model.headers[0]["Authorization"] == f"Bearer {MODEL_KEY}"


def test_the_gateway_counts_its_completions_in_its_latency_histogram(
    gitlab: GitLabDouble, gateway: str
) -> None:
    assert complete(gitlab).status_code == 200
    gitlab.instance.models[1].endpoint = "http://127.0.0.1:9/v1"  # the model is gone
    assert complete(gitlab).status_code == 500
    text = requests.get(f"http://127.0.0.1:{METRICS_PORT[gateway]}/metrics", timeout=5).text
    labels = 'handler="/v2/code/completions",method="POST"'
    assert f'http_request_duration_seconds_count{{{labels},status="2xx"}} 1' in text
    assert f'http_request_duration_seconds_count{{{labels},status="5xx"}} 1' in text
    assert f'http_request_duration_seconds_bucket{{{labels},status="2xx",le="+Inf"}} 1' in text


def test_a_streamed_completion_comes_through_as_text(
    gitlab: GitLabDouble, model: ModelServer
) -> None:
    answer = complete(gitlab, stream=True)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    user = model.asked[0]["messages"][1]["content"]
    assert answer.text == f"return {len(user)} "
    assert model.asked[0]["stream"] is True


def test_a_model_that_is_down_is_the_gateways_error(
    gitlab: GitLabDouble, model: ModelServer
) -> None:
    gitlab.instance.models[1].endpoint = "http://127.0.0.1:9/v1"  # nothing listens there
    answer = complete(gitlab)
    assert answer.status_code == 500
    assert "cannot reach the model" in answer.json()["detail"]
    assert model.asked == []


def test_the_gateway_refuses_what_gitlab_would_never_send(gateway: str) -> None:
    url = f"{gateway}/v2/code/completions"
    assert requests.post(url, json={}, timeout=5).status_code == 401
    headers = {"Authorization": "Bearer not-a-jwt", "X-Gitlab-Authentication-Type": "oidc"}
    refused = requests.post(url, json={}, headers=headers, timeout=5)
    assert refused.json() == {"error": "Forbidden by auth provider"}
    from tests.doubles.gitlab_api.gateway_client import self_issued_token

    headers["Authorization"] = f"Bearer {self_issued_token('https://gitlab.example.com', 1)}"
    body = {"current_file": {"file_name": "a.py", "content_above_cursor": "x"}}
    invalid = requests.post(url, json=body, headers=headers, timeout=5)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "current_file", "content_below_cursor"]
