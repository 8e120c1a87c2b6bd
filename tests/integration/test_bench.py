"""duoctl bench against small local servers on loopback that follow the two APIs.

- a GitLab double: `POST /api/v4/code_suggestions/completions` with the admin token, GitLab's
  answer shape, and on demand A1000 errors, redirects elsewhere, or a stop mid-run;
- a model double: OpenAI-compatible `GET /v1/models` and streaming `POST /v1/completions`
  (server-sent events, `usage`, `[DONE]`) with an API key, that can stop mid-stream;
- a sentinel server that must never be reached.

Every TCP connection the process opens while the bench runs is recorded (an audit hook on
`socket.connect`): the bench reaches the two servers it was given, and nothing else.
`bench_deployment` (what the lead runs against a real stack) is run here too, with the
tunnel replaced by the model double's address.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from duoctl.bench import command, results
from duoctl.bench.load import Ramp
from duoctl.bench.paths import GitLabPath, ModelPath
from duoctl.bench.run import Target, run_targets
from duoctl.deployment import Deployment
from duoctl.folder import DeploymentFolder

TOKEN = "glpat-bench-test-token"
KEY = "vllm-bench-test-key"
MODEL = "codestral-22b"

# --- connections seen while the bench runs -------------------------------------------------

_connects: list[Any] = []
_recording = threading.Event()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _recording.is_set():
        _connects.append(args[1])


_hooked: list[bool] = []


@contextlib.contextmanager
def connections() -> Iterator[list[tuple[str, int]]]:
    """The (host, port) of every socket.connect in the block (an audit hook cannot be
    removed: it is added on first use and records only inside this block)."""
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked.append(True)
    seen: list[tuple[str, int]] = []
    _connects.clear()
    _recording.set()
    try:
        yield seen
    finally:
        _recording.clear()
        seen += [tuple(a[:2]) for a in _connects if isinstance(a, tuple)]


# --- the servers --------------------------------------------------------------------------


class Double(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        self.a1000_every = 0
        self.redirect_to: str | None = None
        self.stop_after: int | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", int(self.server_address[1]))

    def count(self, method: str, path: str, headers: dict[str, str], body: Any) -> int:
        with self.lock:
            self.requests.append((method, path, headers, body))
            n = len(self.requests)
        if self.stop_after is not None and n >= self.stop_after and not self.stopped.is_set():
            self.stopped.set()
            threading.Thread(target=self.stop, daemon=True).start()
        return n

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: Double

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class GitLabHandler(Handler):
    def do_POST(self) -> None:
        body = self.read_json()
        n = self.server.count("POST", self.path, dict(self.headers), body)
        if self.path != "/api/v4/code_suggestions/completions":
            return self.reply(404, {"error": "404 Not Found"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.reply(401, {"message": "401 Unauthorized"})
        current = (body or {}).get("current_file") or {}
        if not isinstance(current.get("file_name"), str) or not isinstance(
            current.get("content_above_cursor"), str
        ):
            return self.reply(400, {"error": "current_file is missing"})
        if self.server.redirect_to:
            return self.reply(302, {}, {"Location": self.server.redirect_to + self.path})
        time.sleep(self.server.delay)
        if self.server.a1000_every and n % self.server.a1000_every == 0:
            message = "I'm sorry, I couldn't respond in time. Please try again. Error code: A1000"
            return self.reply(500, {"error": message})
        self.reply(
            200,
            {
                "id": "id",
                "model": {"engine": "vllm", "name": MODEL, "lang": "python"},
                "object": "text_completion",
                "created": int(time.time()),
                "choices": [{"text": "return total\n", "index": 0, "finish_reason": "length"}],
            },
        )


class ModelHandler(Handler):
    def authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {KEY}":
            return True
        self.reply(401, {"error": "Unauthorized"})
        return False

    def do_GET(self) -> None:
        self.server.count("GET", self.path, dict(self.headers), None)
        if self.authorized():
            listed = [
                {"id": "nomic-embed-text", "object": "model"},
                {"id": MODEL, "object": "model"},
            ]
            self.reply(200, {"object": "list", "data": listed})

    def do_POST(self) -> None:
        body = self.read_json()
        self.server.count("POST", self.path, dict(self.headers), body)
        if not self.authorized():
            return
        if self.path != "/v1/completions" or not (body or {}).get("stream"):
            return self.reply(400, {"error": "expected a streamed /v1/completions"})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        words = ["return", " sum", "(", "items", ")", "\n"]
        for word in words:
            if self.server.stopped.is_set():
                return  # cut mid-stream: no [DONE]
            time.sleep(self.server.delay / len(words))
            event = {
                "object": "text_completion",
                "model": MODEL,
                "choices": [{"index": 0, "text": word, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        usage = {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": len(words)}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[Double]:
    server = Double(handler)
    server.thread.start()
    try:
        yield server
    finally:
        if not server.stopped.is_set():
            server.stop()
        server.thread.join(5)


@pytest.fixture
def gitlab() -> Iterator[Double]:
    with serving(GitLabHandler) as server:
        yield server


@pytest.fixture
def model() -> Iterator[Double]:
    with serving(ModelHandler) as server:
        yield server


@pytest.fixture
def sentinel() -> Iterator[Double]:
    with serving(GitLabHandler) as server:
        yield server


RAMP = Ramp(levels=(1, 2, 4), requests=12, level_seconds=10, timeout=5)


def targets(gitlab: Double, model: Double) -> list[Target]:
    return [
        Target(GitLabPath(TOKEN), gitlab.url),
        Target(ModelPath(MODEL, KEY), model.url, url="http://10.0.3.10:8000/v1"),
    ]


# --- the tests ----------------------------------------------------------------------------


def test_both_paths_over_the_ramp(gitlab: Double, model: Double, sentinel: Double) -> None:
    gitlab.delay, model.delay = 0.02, 0.03
    with connections() as seen:
        paths, samples = run_targets(targets(gitlab, model), RAMP, target_p95=1.5)
    user, alone = paths
    assert (user.path, alone.path) == ("gitlab", "model")
    for p in paths:
        assert [r.level for r in p.levels] == [1, 2, 4]
        assert all(r.requests == 12 and r.ok == 12 and not r.errors for r in p.levels)
        assert p.knee is not None and p.knee.level == 4
        assert p.first_request.latency is not None and p.first_request.error is None
    assert alone.streaming and alone.levels[0].ttft_p50 is not None
    assert alone.levels[0].tokens_per_s_request is not None
    assert alone.levels[-1].tokens_per_s_total > 0
    assert user.levels[0].ttft_p50 is None  # GitLab's completions are not streamed
    assert alone.url == "http://10.0.3.10:8000/v1"
    # 1 first request + 3 levels x 12, per path, and nothing else
    assert len(gitlab.requests) == len(model.requests) == 37
    assert len(samples) == 74
    assert {r[1] for r in gitlab.requests} == {"/api/v4/code_suggestions/completions"}
    assert {r[1] for r in model.requests} == {"/v1/completions"}
    assert all(r[3]["stream"] is True and r[3]["model"] == MODEL for r in model.requests)
    assert sentinel.requests == []
    assert set(seen) <= {gitlab.address, model.address}, seen
    assert gitlab.address in seen and model.address in seen


def test_a_server_that_stops_mid_run_is_counted_as_errors(model: Double) -> None:
    model.delay = 0.05
    model.stop_after = 20
    ramp = Ramp(levels=(1, 2, 4), requests=15, level_seconds=10, timeout=3)
    with connections() as seen:
        (alone,), _ = run_targets([Target(ModelPath(MODEL, KEY), model.url)], ramp, 1.5)
    total = sum(r.requests for r in alone.levels)
    errors = {k: n for r in alone.levels for k, n in r.errors.items()}
    ok = sum(r.ok for r in alone.levels)
    assert ok >= 15 and sum(errors.values()) > 0
    assert set(errors) <= {"connection", "incomplete"}, errors
    assert total == ok + sum(errors.values())
    assert alone.stopped is not None  # the ramp gave up past the failing level
    assert set(seen) == {model.address}


def test_a1000_and_wrong_token(gitlab: Double) -> None:
    gitlab.a1000_every = 3
    ramp = Ramp(levels=(1, 2), requests=9, level_seconds=10, timeout=5)
    (user,), _ = run_targets([Target(GitLabPath(TOKEN), gitlab.url)], ramp, 1.5)
    assert sum(r.errors.get("a1000", 0) for r in user.levels) == 6  # every 3rd of 18 (+1st)
    (bad,), _ = run_targets([Target(GitLabPath("wrong"), gitlab.url)], ramp, 1.5)
    assert bad.levels[0].errors == {"http_4xx": 9} and bad.knee is None


def test_a_redirect_elsewhere_is_not_followed(gitlab: Double, sentinel: Double) -> None:
    gitlab.redirect_to = sentinel.url
    ramp = Ramp(levels=(2,), requests=6, level_seconds=10, timeout=5)
    with connections() as seen:
        (user,), _ = run_targets([Target(GitLabPath(TOKEN), gitlab.url)], ramp, 1.5)
    assert user.levels[0].errors == {"http_3xx": 6}
    assert sentinel.requests == []
    assert set(seen) == {gitlab.address}


def test_connections_are_kept_alive_from_level_to_level() -> None:
    """One connection per worker for the whole ramp, on both paths: through the SSH tunnel
    each new connection is a new channel."""
    import asyncio

    from tests.benchmarks.bench_harness import NullProtocol

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(NullProtocol, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    address = server.sockets[0].getsockname()[:2]
    url = f"http://{address[0]}:{address[1]}"
    try:
        for path in (GitLabPath(TOKEN), ModelPath(MODEL, KEY)):
            with connections() as seen:
                (result,), _ = run_targets([Target(path, url)], RAMP, 1.5)
            assert all(r.ok == r.requests == 12 for r in result.levels)
            assert seen.count(address) == 4, (path.name, len(seen))  # the highest level
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.close()


# --- the command glue, as the lead runs it ----------------------------------------------


def deployment_folder(tmp_path: Path, serving: str) -> DeploymentFolder:
    folder = DeploymentFolder.of(tmp_path / "deploy", "lab", tmp_path)
    folder.create()
    deployment = Deployment.model_validate(
        {
            "target": "hosts",
            "domain": "gitlab.example.com",
            "ports": {"ollama_port": 8000},
            "hosts": [
                {
                    "name": "gitlab-vm",
                    "group": "gitlab",
                    "private_ip": "10.0.1.10",
                    "public_ip": "203.0.113.10",
                },
                {
                    "name": "gateway-vm",
                    "group": "ai_gateway",
                    "private_ip": "10.0.2.10",
                    "via_jump": True,
                },
                {
                    "name": f"{serving}-vm",
                    "group": serving,
                    "private_ip": "10.0.3.10",
                    "via_jump": True,
                },
            ],
        }
    )
    folder.inventory.write_text(deployment.inventory_text(None))
    folder.admin_token_file.write_text(TOKEN + "\n")
    (folder.secrets_dir / "vllm_api_key").write_text(KEY + "\n")
    folder.duo_config.write_text(
        "models:\n"
        f"  - {{name: completions, identifier: custom_openai/{MODEL}}}\n"
        "features: {code_completions: completions}\n"
    )
    return folder


def test_bench_deployment(
    tmp_path: Path, gitlab: Double, model: Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = deployment_folder(tmp_path, "vllm")
    tunnels: list[tuple[str, int]] = []

    @contextlib.contextmanager
    def fake_tunnel(f: DeploymentFolder, d: Deployment, key: str | None) -> Iterator[str]:
        tunnels.append((d.model.private_ip, d.ports.ollama_port))
        yield f"127.0.0.1:{model.address[1]}"

    monkeypatch.setattr(command, "model_address", fake_tunnel)
    monkeypatch.setattr(Deployment, "gitlab_url", property(lambda self: gitlab.url))
    options = command.BenchOptions(ramp=Ramp(levels=(1, 2), requests=4, timeout=5))
    with connections() as seen:
        run, where = command.bench_deployment(folder, options)
    assert tunnels == [("10.0.3.10", 8000)]
    assert where == folder.root / "bench" / run.started_at  # the first run of the folder
    assert {p.name for p in where.iterdir()} == {"results.json", "samples.jsonl", "chart.png"}
    assert results.load_run(where) == run
    # the model duo.yml maps to code completions, not the first the server lists
    assert run.model == MODEL and run.serving == "vllm" and run.deployment == "lab"
    assert [p.path for p in run.paths] == ["gitlab", "model"]
    assert run.paths[1].url == "http://10.0.3.10:8000/v1"
    assert run.knee is not None and run.knee.path == "gitlab"
    assert (where / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert model.requests[0][:2] == ("GET", "/v1/models")
    assert set(seen) <= {gitlab.address, model.address}


def test_cli_bench_and_compare(
    tmp_path: Path,
    gitlab: Double,
    model: Double,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from duoctl.cli import main

    folder = deployment_folder(tmp_path, "ollama")

    @contextlib.contextmanager
    def fake_tunnel(f: DeploymentFolder, d: Deployment, key: str | None) -> Iterator[str]:
        yield f"127.0.0.1:{model.address[1]}"

    monkeypatch.setattr(command, "model_address", fake_tunnel)
    monkeypatch.setattr(Deployment, "gitlab_url", property(lambda self: gitlab.url))
    base = ["bench", "--deploy-dir", str(folder.root.parent), "--name", "lab"]
    ramp = ["--levels", "1,2", "--requests", "3", "--path", "gitlab"]
    assert main([*base, *ramp]) == 0
    out = capsys.readouterr().out
    assert "the user's path: GitLab code completions" in out and "knee: 2" in out
    assert main([*base, *ramp, "--json"]) == 0
    first = results.load(capsys.readouterr().out)
    runs = sorted(p.name for p in (folder.root / "bench").iterdir())
    assert len(runs) == 2  # never overwritten, even within one second
    assert runs[0] == first.started_at or runs[1].startswith(first.started_at)
    assert main([*base, "--compare", runs[0], runs[1]]) == 0
    assert "gitlab: knee 2" in capsys.readouterr().out
    assert main([*base, "--compare", runs[0], runs[1], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paths"][0]["path"] == "gitlab"


def test_bench_deployment_through_the_ssh_tunnel(
    tmp_path: Path, gitlab: Double, model: Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model path through the real tunnel (duoctl.tunnel) and the in-process SSH double:
    SSH to the model host through the GitLab host, the model reached from the model host."""
    from tests.doubles.ssh_hosts import ssh_hosts

    with ssh_hosts(["gitlab-vm", "gateway-vm", "vllm-vm"]) as hosts:
        folder = DeploymentFolder.of(tmp_path / "deploy", "lab", tmp_path)
        folder.create()

        def host(name: str, group: str, public: bool) -> dict[str, Any]:
            return {
                "name": name,
                "group": group,
                "private_ip": "127.0.0.1",
                "public_ip": "127.0.0.1" if public else None,
                "ssh_port": hosts[name].port,
                "via_jump": not public,
            }

        deployment = Deployment.model_validate(
            {
                "target": "hosts",
                "domain": "gitlab.example.com",
                "ports": {"ollama_port": model.address[1]},
                "hosts": [
                    host("gitlab-vm", "gitlab", True),
                    host("gateway-vm", "ai_gateway", False),
                    host("vllm-vm", "vllm", False),
                ],
            }
        )
        folder.inventory.write_text(deployment.inventory_text(None))
        folder.admin_token_file.write_text(TOKEN)
        (folder.secrets_dir / "vllm_api_key").write_text(KEY)
        folder.duo_config.write_text(
            f"models: [{{name: c, identifier: {MODEL}}}]\nfeatures: {{code_completions: c}}\n"
        )
        monkeypatch.setattr(Deployment, "gitlab_url", property(lambda self: gitlab.url))
        options = command.BenchOptions(
            paths=("model",),
            ramp=Ramp(levels=(1, 4), requests=8, timeout=10),
            ssh_key=str(hosts.key_file),
        )
        run, where = command.bench_deployment(folder, options)
        forwards = hosts["vllm-vm"].forwards
    (alone,) = run.paths
    assert [(r.level, r.ok) for r in alone.levels] == [(1, 8), (4, 8)]
    assert run.model == MODEL
    assert alone.url == f"http://127.0.0.1:{model.address[1]}/v1"
    # /v1/models, the first request, 16 on the ramp: each a channel from the model host
    assert forwards.count(model.address) == 18
    assert len(model.requests) == 18 and gitlab.requests == []
    assert folder.known_hosts.is_file()  # host keys pinned on first use
    assert (where / "results.json").is_file()
