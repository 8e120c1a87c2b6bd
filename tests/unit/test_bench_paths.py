"""duoctl bench: what each path sends and how it reads the answer (httpx mock transport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
from duoctl.bench.paths import GitLabPath, ModelPath, Path, call
from duoctl.bench.prompts import Prompt, load
from duoctl.bench.samples import Sample

PROMPT = Prompt("python", "small", "orders.py", "def total(items):\n    ", "\n\nprint(1)\n")


def send(path: Path, handler: Callable[[httpx.Request], httpx.Response]) -> Sample:
    async def go() -> Sample:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(base_url="http://target:1", transport=transport) as client:
            return await call(client, path, PROMPT, 1, 0.0, timeout=5)

    return asyncio.run(go())


def test_gitlab_body_follows_the_code_suggestions_api() -> None:
    body = GitLabPath("glpat-x").body(PROMPT)
    assert body == {
        "current_file": {
            "file_name": "orders.py",
            "content_above_cursor": "def total(items):\n    ",
            "content_below_cursor": "\n\nprint(1)\n",
        },
        "intent": "completion",
        "stream": False,
    }
    assert GitLabPath("glpat-x").headers()["Authorization"] == "Bearer glpat-x"


def test_gitlab_request_and_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = {
            "id": "id",
            "model": {"engine": "vllm", "name": "codestral", "lang": "python"},
            "object": "text_completion",
            "created": 1,
            "choices": [{"text": "return sum(items)", "index": 0, "finish_reason": "length"}],
        }
        return httpx.Response(200, json=answer)

    sample = send(GitLabPath("glpat-x"), handler)
    assert sample.ok and sample.status == 200 and sample.latency is not None
    assert sample.tokens == 5  # 17 characters, 4 a token
    assert sample.ttft is None  # not streamed
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/api/v4/code_suggestions/completions")
    assert request.headers["authorization"] == "Bearer glpat-x"
    assert json.loads(request.content)["current_file"]["file_name"] == "orders.py"


def test_gitlab_a1000_and_bad_bodies() -> None:
    a1000 = send(GitLabPath("t"), lambda r: httpx.Response(500, text="Error code: A1000"))
    assert (a1000.error, a1000.status, a1000.latency) == ("a1000", 500, None)
    bad = send(GitLabPath("t"), lambda r: httpx.Response(200, text="<html>"))
    assert bad.error == "bad_response"
    none = send(GitLabPath("t"), lambda r: httpx.Response(200, json={"choices": []}))
    assert none.ok and none.tokens == 0  # no suggestion is an answer
    limited = send(GitLabPath("t"), lambda r: httpx.Response(429, text="Retry later"))
    assert limited.error == "rate_limited"


def test_model_body_streams_with_the_key() -> None:
    path = ModelPath("mistral:instruct", api_key="k3y")
    body = path.body(PROMPT)
    assert body["model"] == "mistral:instruct"
    assert body["prompt"] == PROMPT.content_above_cursor
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 64 and body["temperature"] == 0
    assert path.headers()["Authorization"] == "Bearer k3y"
    assert "Authorization" not in ModelPath("m").headers()  # Ollama: no key


def sse(*events: object, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def chunk(text: str) -> dict[str, object]:
    return {"object": "text_completion", "choices": [{"index": 0, "text": text}]}


def test_model_stream_counts_tokens_and_first_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = sse(chunk("return"), chunk(" sum"), chunk("(items)"))
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    sample = send(ModelPath("m", "k"), handler)
    assert sample.ok and sample.tokens == 3
    assert sample.ttft is not None and sample.latency is not None
    assert 0 <= sample.ttft <= sample.latency
    assert seen[0].url.path == "/v1/completions"
    assert seen[0].headers["authorization"] == "Bearer k"


def test_model_stream_prefers_the_usage_count() -> None:
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7}}
    body = sse(chunk("a"), chunk("b"), usage)
    sample = send(ModelPath("m"), lambda r: httpx.Response(200, content=body))
    assert sample.tokens == 7


def test_model_stream_cut_before_done_is_incomplete() -> None:
    body = sse(chunk("a"), done=False)
    sample = send(ModelPath("m"), lambda r: httpx.Response(200, content=body))
    assert sample.error == "incomplete" and sample.tokens == 0 and sample.latency is None


def test_model_errors() -> None:
    unauthorized = send(ModelPath("m", "wrong"), lambda r: httpx.Response(401))
    assert unauthorized.error == "http_4xx"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert send(ModelPath("m"), refuse).error == "connection"
    garbled = send(ModelPath("m"), lambda r: httpx.Response(200, content=b"data: {nope\n\n"))
    assert garbled.error == "bad_response"


def test_the_prompts_cover_languages_and_sizes() -> None:
    prompts = load()
    assert {p.size for p in prompts} == {"small", "medium", "large"}
    assert len({p.language for p in prompts}) >= 5
    for p in prompts:
        assert p.file_name and p.content_above_cursor.strip()
    sizes = {p.size: len(p.content_above_cursor + p.content_below_cursor) for p in prompts}
    assert sizes["small"] < sizes["medium"] < sizes["large"]
