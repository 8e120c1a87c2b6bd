"""Stand-in for vLLM's `vllm` command and its OpenAI-compatible server (TEST DOUBLE).

It is not vLLM and runs no model: vLLM needs CUDA and model weights, neither of which exists
in the test containers. What the deployment depends on follows vLLM's server:

- `vllm serve MODEL_TAG --host H --port P --served-model-name NAME ...`: vLLM's argument names
  (underscores accepted for dashes, as vLLM's FlexibleArgumentParser does), argparse's
  `error: unrecognized arguments: ...` with exit code 2 for anything else, `vllm --version`.
- The API key from `--api-key` or the `VLLM_API_KEY` environment variable: every guarded route
  (`/v1/...`) answers 401 `{"error": "Unauthorized"}` without `Authorization: Bearer <key>`;
  `/health`, `/ping`, `/version` and `/metrics` stay public, as in vLLM.
- `/health` (200, empty body), `/version`, `/metrics` (Prometheus text, vLLM's `vllm:` names),
  `/v1/models` (`data[].id` is the served model name), `/v1/completions` and
  `/v1/chat/completions` (OpenAI's shapes, streaming included; a tool call answer when tools
  are given, which needs `--enable-auto-tool-choice` and `--tool-call-parser` like vLLM).
  Errors use vLLM's envelope `{"error": {"message", "type", "param", "code"}}`.
- A local model path must be a directory holding `config.json` or `params.json`; a Hugging
  Face repository id is "downloaded" as an empty snapshot folder under `HF_HOME` (no network).

Generation (see `standin_llm`, shipped beside this module): a real small model, the GGUF
file in the model folder, run by llama.cpp (llama-cpp-python, installed from the wheelhouse
with this wheel); token counts are its tokenizer's. Without the engine or without a GGUF in the
model folder the server refuses to start (exit 1), unless the wheel was built in canned mode
(`build.py --canned`, MODE below), which answers a fixed sentence and counts words. Tool calls
are always synthesized (a 135M model cannot be trusted to produce them): the first (or chosen)
tool with its required arguments filled in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vllm import __version__

MODE = "model"  # "canned" in a wheel built with `build.py --canned`
REPLY = "This is a canned answer from the vLLM stand-in."
DEFAULT_CHAT_MAX_TOKENS = 64  # vLLM's default is the rest of the context; kept short here
PUBLIC_PATHS = ("/health", "/ping", "/load", "/version", "/metrics")
GUARDED_PREFIXES = ("/v1", "/v2", "/tokenize", "/detokenize", "/pooling", "/inference")
DTYPES = ["auto", "bfloat16", "float", "float16", "float32", "half"]
TOKENIZER_MODES = ["auto", "custom", "deepseek_v32", "hf", "mistral", "slow"]


# ------------------------------------------------------------------------------- command line


def normalize_argv(argv: list[str]) -> list[str]:
    """`--served_model_name x` -> `--served-model-name x`, as vLLM's parser accepts both."""
    out = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            key, sep, value = arg.partition("=")
            arg = key.replace("_", "-") + sep + value
        out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm", description="vLLM CLI")
    parser.add_argument("-v", "--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="subparser", required=True)
    serve = commands.add_parser(
        "serve",
        usage="vllm serve [model_tag] [options]",
        description="Launch a local OpenAI-compatible API server to serve LLM completions.",
    )
    serve.add_argument("model_tag", nargs="?", help="The model tag to serve")
    add = serve.add_argument
    # Frontend (OpenAI-compatible server) arguments.
    add("--host", default=None)
    add("--port", type=int, default=8000)
    add("--uds", default=None)
    add("--api-key", nargs="+", default=None)
    add("--served-model-name", nargs="+", default=None)
    add("--chat-template", default=None)
    add("--enable-auto-tool-choice", action="store_true")
    add("--tool-call-parser", default=None)
    add("--tool-parser-plugin", default="")
    add("--reasoning-parser", default="")
    add("--root-path", default=None)
    add("--uvicorn-log-level", default="info")
    add("--disable-uvicorn-access-log", action="store_true")
    add("--disable-fastapi-docs", action="store_true")
    add("--enable-log-requests", action=argparse.BooleanOptionalAction, default=False)
    add("--enable-log-outputs", action=argparse.BooleanOptionalAction, default=False)
    add("--disable-log-stats", action="store_true")
    add("--max-log-len", type=int, default=None)
    add("--enable-prompt-tokens-details", action="store_true")
    add("--allowed-origins", default=None)
    add("--ssl-keyfile", default=None)
    add("--ssl-certfile", default=None)
    add("--generation-config", default="auto")
    # Engine arguments.
    add("--model", default=None)
    add("--tokenizer", default=None)
    add("--revision", default=None)
    add("--tokenizer-revision", default=None)
    add("--code-revision", default=None)
    add("--tokenizer-mode", choices=TOKENIZER_MODES, default="auto")
    add("--trust-remote-code", action=argparse.BooleanOptionalAction, default=False)
    add("--download-dir", default=None)
    add("--load-format", default="auto")
    add("--config-format", default="auto")
    add("--dtype", choices=DTYPES, default="auto")
    add("--kv-cache-dtype", default="auto")
    add("--quantization", "-q", default=None)
    add("--max-model-len", default=None)
    add("--max-num-seqs", type=int, default=None)
    add("--max-num-batched-tokens", default=None)
    add("--gpu-memory-utilization", type=float, default=0.9)
    add("--tensor-parallel-size", "-tp", type=int, default=1)
    add("--pipeline-parallel-size", "-pp", type=int, default=1)
    add("--enforce-eager", action=argparse.BooleanOptionalAction, default=False)
    add("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None)
    add("--enable-chunked-prefill", action=argparse.BooleanOptionalAction, default=None)
    add("--swap-space", type=float, default=4)
    add("--cpu-offload-gb", type=float, default=0)
    add("--seed", type=int, default=None)
    add("--limit-mm-per-prompt", default=None)
    add("--hf-overrides", default=None)
    add("--override-generation-config", default=None)
    return parser


def parse_max_model_len(value: str | None) -> int:
    """vLLM's human-readable ints: 32768, 32k (10^3), 32K (2^10)."""
    if value is None:
        return 32768
    match = re.fullmatch(r"(\d+)([kKmM]?)", value.strip())
    if not match:
        raise SystemExit(f"vllm serve: error: argument --max-model-len: invalid value {value!r}")
    number, suffix = int(match[1]), match[2]
    return number * {"": 1, "k": 10**3, "K": 2**10, "m": 10**6, "M": 2**20}[suffix]


def resolve_model(model: str, revision: str | None) -> str:
    """A local folder must hold a config; a repository id gets an (empty) cache snapshot."""
    path = Path(model)
    if path.is_absolute() or model.startswith("."):
        if not (path / "config.json").is_file() and not (path / "params.json").is_file():
            raise SystemExit(
                f"ValueError: Invalid repository ID or local directory specified: '{model}'."
            )
        return str(path)
    if model.count("/") != 1:
        raise SystemExit(
            f"ValueError: Invalid repository ID or local directory specified: '{model}'."
        )
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    folder = hf_home / "hub" / ("models--" + model.replace("/", "--"))
    snapshot = folder / "snapshots" / (revision or "standin")
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "STANDIN.txt").write_text("Stand-in snapshot: no weights were downloaded.\n")
    return model


def model_folder(model: str, revision: str | None) -> Path:
    path = Path(model)
    if path.is_absolute() or model.startswith("."):
        return path
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    folder = hf_home / "hub" / ("models--" + model.replace("/", "--"))
    return folder / "snapshots" / (revision or "standin")


def load_engine(folder: Path) -> Any:
    """The folder's GGUF loaded by llama.cpp, or SystemExit saying what is missing."""
    from vllm import standin_llm

    ggufs = sorted(p for p in folder.glob("*.gguf") if standin_llm.is_gguf(p))
    if not ggufs:
        raise SystemExit(
            f"ValueError: no GGUF weights in {folder}: the stand-in generates with a real model "
            "(a wheel built with --canned answers without one)"
        )
    try:
        return standin_llm.load(ggufs[0])
    except standin_llm.EngineUnavailable as exc:
        raise SystemExit(f"RuntimeError: {exc}") from None


# ---------------------------------------------------------------------------------- the server


class State:
    def __init__(self, args: argparse.Namespace, model: str, keys: list[str]) -> None:
        self.args = args
        self.model = model
        self.names = args.served_model_name or [model]
        self.keys = keys
        self.max_model_len = parse_max_model_len(args.max_model_len)
        self.started = int(time.time())
        self.lock = threading.Lock()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success: dict[str, int] = {"stop": 0, "length": 0, "abort": 0}
        self.llm: Any = None  # standin_llm.Model, None in canned mode

    def count(self, text: str) -> int:
        if self.llm is None:
            return count_tokens(text)
        return len(self.llm.tokenize(text))


def error_body(message: str, err_type: str, code: int, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def canned_text(max_tokens: int | None) -> tuple[str, str]:
    words = REPLY.split()
    if max_tokens is not None and max_tokens < len(words):
        return " ".join(words[:max_tokens]), "length"
    return REPLY, "stop"


def tool_arguments(tool: dict[str, Any]) -> str:
    params = tool.get("function", {}).get("parameters") or {}
    props = params.get("properties") or {}
    values: dict[str, Any] = {}
    for name in params.get("required") or list(props)[:1]:
        kind = (props.get(name) or {}).get("type", "string")
        values[name] = {"integer": 1, "number": 1, "boolean": True}.get(kind, "standin")
    return json.dumps(values)


def metrics_text(state: State) -> str:
    labels = f'engine="0",model_name="{state.names[0]}"'
    lines = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for extra, value in samples:
            sample = name + ("_total" if kind == "counter" else "")
            lines.append(f"{sample}{{{labels}{extra}}} {float(value)}")

    with state.lock:
        metric(
            "vllm:num_requests_running",
            "gauge",
            "Number of requests in model execution batches.",
            [("", 0)],
        )
        metric(
            "vllm:num_requests_waiting",
            "gauge",
            "Number of requests waiting to be processed.",
            [("", 0)],
        )
        metric(
            "vllm:kv_cache_usage_perc",
            "gauge",
            "KV-cache usage. 1 means 100 percent usage.",
            [("", 0)],
        )
        metric(
            "vllm:prompt_tokens",
            "counter",
            "Number of prefill tokens processed.",
            [("", state.prompt_tokens)],
        )
        metric(
            "vllm:generation_tokens",
            "counter",
            "Number of generation tokens processed.",
            [("", state.generation_tokens)],
        )
        metric(
            "vllm:request_success",
            "counter",
            "Count of successfully processed requests.",
            [(f',finished_reason="{reason}"', count) for reason, count in state.success.items()],
        )
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        # Access log lines carry no header, hence never the key (as uvicorn's).
        if not self.state.args.disable_uvicorn_access_log:
            sys.stderr.write(f"INFO:     {self.client_address[0]} - {format % args}\n")

    # --------------------------------------------------------------------------- plumbing

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _authorized(self, path: str) -> bool:
        if not self.state.keys or not path.startswith(GUARDED_PREFIXES):
            return True
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and token in self.state.keys

    def _route(self) -> str | None:
        path = self.path.split("?", 1)[0]
        if not self._authorized(path):
            self._json(401, {"error": "Unauthorized"})
            return None
        return path

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except json.JSONDecodeError as exc:
            self._json(400, error_body(f"JSON decode error: {exc}", "BadRequestError", 400))
            return None
        if not isinstance(body, dict):
            self._json(
                400, error_body("Input should be a valid dictionary", "BadRequestError", 400)
            )
            return None
        return body

    def _check_model(self, body: dict[str, Any]) -> str | None:
        model = body.get("model") or self.state.names[0]
        if model not in self.state.names:
            message = f"The model `{model}` does not exist."
            self._json(404, error_body(message, "NotFoundError", 404, "model"))
            return None
        return str(model)

    def _stream(self, chunks: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in [*(f"data: {json.dumps(c)}\n\n" for c in chunks), "data: [DONE]\n\n"]:
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _account(self, prompt_tokens: int, completion_tokens: int, reason: str) -> dict[str, int]:
        with self.state.lock:
            self.state.prompt_tokens += prompt_tokens
            self.state.generation_tokens += completion_tokens
            self.state.success[reason if reason in ("stop", "length") else "stop"] += 1
        return {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
        }

    # ------------------------------------------------------------------------------ routes

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self._route()
        if path is None:
            return
        if path in ("/health", "/ping"):
            self._send(200, b"", "application/json")
        elif path == "/version":
            self._json(200, {"version": __version__})
        elif path == "/metrics":
            self._send(200, metrics_text(self.state).encode(), "text/plain; version=0.0.4")
        elif path == "/v1/models":
            self._json(200, {"object": "list", "data": [self._card(n) for n in self.state.names]})
        else:
            self._json(404, {"detail": "Not Found"})

    def _card(self, name: str) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": self.state.started,
            "owned_by": "vllm",
            "root": self.state.model,
            "parent": None,
            "max_model_len": self.state.max_model_len,
            "permission": [
                {
                    "id": f"modelperm-{uuid.uuid4().hex}",
                    "object": "model_permission",
                    "created": self.state.started,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }

    def do_POST(self) -> None:
        path = self._route()
        if path is None:
            return
        if path == "/ping":
            self._send(200, b"", "application/json")
        elif path == "/v1/completions":
            self._completions()
        elif path == "/v1/chat/completions":
            self._chat()
        elif path == "/tokenize":
            self._tokenize()
        elif path == "/detokenize":
            self._detokenize()
        elif path.startswith("/v1/"):
            self._json(404, {"detail": "Not Found"})
        else:
            self._json(405 if path in PUBLIC_PATHS else 404, {"detail": "Not Found"})

    def _sampling(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """vLLM's sampling parameters (its defaults when absent) as llama.cpp takes them."""

        def number(key: str, default: float) -> float:
            value = body.get(key)
            return default if value is None else float(value)

        try:
            stop = body.get("stop")
            top_k = int(number("top_k", -1))
            seed = body.get("seed")
            return {
                "temperature": number("temperature", 1.0),
                "top_p": number("top_p", 1.0),
                "top_k": max(top_k, 0),
                "min_p": number("min_p", 0.0),
                "repeat_penalty": number("repetition_penalty", 1.0),
                "seed": None if seed is None else int(seed),
                "stop": [stop] if isinstance(stop, str) else [str(s) for s in stop or []],
            }
        except (TypeError, ValueError) as exc:
            self._json(
                400, error_body(f"invalid sampling parameter: {exc}", "BadRequestError", 400)
            )
            return None

    @staticmethod
    def _limit(value: Any, default: int) -> int:
        return default if value is None else int(value)

    def _completions(self) -> None:
        body = self._body()
        if body is None:
            return
        model = self._check_model(body)
        if model is None:
            return
        prompt = body.get("prompt")
        if not isinstance(prompt, str | list) or not prompt:
            message = "Either prompt or prompt_embeds must be provided and non-empty."
            self._json(400, error_body(message, "BadRequestError", 400))
            return
        params = self._sampling(body)
        if params is None:
            return
        max_tokens = self._limit(body.get("max_tokens"), 16)
        prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        llm = self.state.llm
        if llm is None:
            text, reason = canned_text(max_tokens)
            prompt_tokens, completion_tokens = count_tokens(prompt_text), count_tokens(text)
        else:
            token_ids = isinstance(prompt, list) and all(isinstance(t, int) for t in prompt)
            ids = list(prompt) if token_ids else llm.tokenize(prompt_text)
            result = llm.generate(ids, max_tokens, **params)
            text, reason = result.text, result.finish_reason
            prompt_tokens, completion_tokens = result.prompt_tokens, result.completion_tokens
        usage = self._account(prompt_tokens, completion_tokens, reason)
        base = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        if body.get("stream"):
            chunks = [
                {**base, "choices": [{**choice, "text": piece, "finish_reason": None}]}
                for piece in self._pieces(text)
            ]
            chunks.append({**base, "choices": [{**choice, "text": ""}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                chunks.append({**base, "choices": [], "usage": usage})
            self._stream(chunks)
            return
        choice["stop_reason"] = None
        self._json(200, {**base, "choices": [choice], "usage": usage})

    def _pieces(self, text: str) -> list[str]:
        if self.state.llm is None:
            words = text.split(" ")
            return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []
        return list(self.state.llm.pieces(text))

    def _chat(self) -> None:
        body = self._body()
        if body is None:
            return
        model = self._check_model(body)
        if model is None:
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._json(400, error_body("messages: Field required", "BadRequestError", 400))
            return
        tools = body.get("tools") or []
        choice_mode = body.get("tool_choice", "auto" if tools else "none")
        args = self.state.args
        if (
            tools
            and choice_mode == "auto"
            and not (args.enable_auto_tool_choice and args.tool_call_parser)
        ):
            message = (
                '"auto" tool choice requires --enable-auto-tool-choice and '
                "--tool-call-parser to be set"
            )
            self._json(400, error_body(message, "BadRequestError", 400))
            return
        params = self._sampling(body)
        if params is None:
            return
        llm = self.state.llm
        prompt_text = " ".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))
        ids: list[int] = []
        if llm is not None:
            ids, template_stop = llm.chat_prompt([m for m in messages if isinstance(m, dict)])
            params["stop"] = [*params["stop"], *template_stop]
        prompt_tokens = len(ids) if llm is not None else count_tokens(prompt_text)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
        }
        message: dict[str, Any] = {"role": "assistant", "reasoning_content": None}
        if tools and choice_mode != "none":
            # Synthesized, never generated: a 135M model cannot be trusted to call tools.
            tool = tools[0]
            if isinstance(choice_mode, dict):
                wanted = choice_mode.get("function", {}).get("name")
                tool = next((t for t in tools if t.get("function", {}).get("name") == wanted), tool)
            call = {
                "id": f"chatcmpl-tool-{uuid.uuid4().hex}",
                "type": "function",
                "function": {"name": tool["function"]["name"], "arguments": tool_arguments(tool)},
            }
            message.update(content=None, tool_calls=[call])
            reason = "tool_calls"
            completion_tokens = self.state.count(call["function"]["arguments"])
        else:
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
            if llm is None:
                text, reason = canned_text(limit)
                completion_tokens = count_tokens(text)
            else:
                result = llm.generate(ids, self._limit(limit, DEFAULT_CHAT_MAX_TOKENS), **params)
                text, reason = result.text, result.finish_reason
                prompt_tokens, completion_tokens = result.prompt_tokens, result.completion_tokens
            message.update(content=text, tool_calls=[])
        usage = self._account(prompt_tokens, completion_tokens, reason)
        if body.get("stream"):
            base["object"] = "chat.completion.chunk"
            chunks: list[dict[str, Any]] = []
            if message.get("tool_calls"):
                call = {"index": 0, **message["tool_calls"][0]}
                deltas: list[dict[str, Any]] = [{"role": "assistant", "tool_calls": [call]}]
            else:
                deltas = [{"role": "assistant", "content": ""}]
                deltas += [{"content": piece} for piece in self._pieces(message["content"])]
            for delta in deltas:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                chunks.append({**base, "choices": [choice]})
            last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}
            chunks.append({**base, "choices": [last]})
            if (body.get("stream_options") or {}).get("include_usage"):
                chunks.append({**base, "choices": [], "usage": usage})
            self._stream(chunks)
            return
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": reason,
            "stop_reason": None,
        }
        self._json(200, {**base, "choices": [choice], "usage": usage, "prompt_logprobs": None})

    def _tokenize(self) -> None:
        """vLLM's /tokenize: a prompt or chat messages -> the tokenizer's ids."""
        body = self._body()
        if body is None or self._check_model(body) is None:
            return
        llm = self.state.llm
        if isinstance(body.get("messages"), list):
            if llm is not None:
                tokens = llm.chat_prompt(body["messages"])[0]
            else:
                text = " ".join(str(m.get("content") or "") for m in body["messages"])
                tokens = list(range(count_tokens(text)))
        else:
            text = str(body.get("prompt") or "")
            tokens = llm.tokenize(text) if llm is not None else list(range(count_tokens(text)))
        payload = {"count": len(tokens), "max_model_len": self.state.max_model_len}
        self._json(200, {**payload, "tokens": tokens, "token_strs": None})

    def _detokenize(self) -> None:
        body = self._body()
        if body is None or self._check_model(body) is None:
            return
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            self._json(400, error_body("tokens: Input should be a list", "BadRequestError", 400))
            return
        llm = self.state.llm
        text = llm.detokenize(tokens) if llm is not None else " ".join(REPLY.split()[: len(tokens)])
        self._json(200, {"prompt": text})


class DualStackServer(ThreadingHTTPServer):
    daemon_threads = True


def serve(args: argparse.Namespace) -> int:
    model_tag = args.model_tag or args.model or "Qwen/Qwen3-0.6B"
    if args.model_tag and args.model and args.model_tag != args.model:
        sys.stderr.write("vllm serve: error: the positional model and --model differ\n")
        return 2
    keys = [key for key in (args.api_key or [os.environ.get("VLLM_API_KEY", "")]) if key]
    try:
        model = resolve_model(model_tag, args.revision)
    except SystemExit as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    state = State(args, model, keys)
    if MODE != "canned":
        started = time.monotonic()
        try:
            state.llm = load_engine(model_folder(model, args.revision))
        except SystemExit as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        sys.stderr.write(
            f"INFO Loaded {state.llm.path.name} with llama.cpp in "
            f"{time.monotonic() - started:.2f} s (context {state.llm.n_ctx} tokens)\n"
        )
    else:
        sys.stderr.write("INFO canned mode: no model, fixed answers\n")
    logged = {k: v for k, v in vars(args).items() if k not in ("api_key", "subparser")}
    sys.stderr.write(f"INFO vLLM API server version {__version__} (stand-in)\n")
    sys.stderr.write(f"INFO args: {logged}\n")
    Handler.state = state
    host = args.host or "0.0.0.0"  # noqa: S104 - vLLM's default binds every address
    DualStackServer.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = DualStackServer((host.strip("[]"), args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    sys.stderr.write(f"INFO Starting vLLM API server on http://{host}:{args.port}\n")
    sys.stderr.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    sys.stderr.write("INFO Shutting down\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
