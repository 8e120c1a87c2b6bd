"""The two paths a completion can take, as requests: the user's path and the model alone.

- `GitLabPath`: what an IDE sends, `POST /api/v4/code_suggestions/completions` with the
  deployment's admin token; GitLab forwards it to the AI gateway, which prompts the model.
  Code completion answers in one JSON body (`choices[0].text`), so it is not streamed and has
  no time to first token; its output tokens are estimated from the text (4 characters each).
- `ModelPath`: the model server's OpenAI-compatible `POST /v1/completions` with
  `stream: true`, read as server-sent events (`data: {...}` lines up to `data: [DONE]`), with
  the model's API key where it has one (vLLM). Output tokens come from the final `usage`
  (asked for with `stream_options.include_usage`) or, without it, one per text chunk.

`call()` sends one request to `base_url` + the path's fixed route and returns its `Sample`;
nothing else is ever requested, and redirects are not followed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from duoctl.bench.prompts import Prompt
from duoctl.bench.samples import BAD_RESPONSE, INCOMPLETE, Sample, classify

PathName = Literal["gitlab", "model"]
Clock = Callable[[], float]
COMPLETIONS_ROUTE = "/api/v4/code_suggestions/completions"
MODEL_ROUTE = "/v1/completions"
MODEL_MAX_TOKENS = 64  # a code completion is a line or a few: GitLab asks for about as many
CHARS_PER_TOKEN = 4
_ERROR_BODY_CHARS = 2000  # enough to find an error code; the rest is not read


@dataclass(frozen=True)
class Answer:
    """What a path reads from one response."""

    status: int
    ttft: float | None = None
    tokens: int = 0
    error: str | None = None


@dataclass(frozen=True)
class GitLabPath:
    """The user's path: a code completion through GitLab's API."""

    token: str
    name: PathName = "gitlab"
    route: str = COMPLETIONS_ROUTE
    streaming: bool = False

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def body(self, prompt: Prompt) -> dict[str, Any]:
        return {
            "current_file": {
                "file_name": prompt.file_name,
                "content_above_cursor": prompt.content_above_cursor,
                "content_below_cursor": prompt.content_below_cursor,
            },
            "intent": "completion",
            "stream": False,
        }

    async def read(self, response: httpx.Response, started: float, clock: Clock) -> Answer:
        text = (await response.aread()).decode("utf-8", "replace")
        error = classify(response.status_code, text[:_ERROR_BODY_CHARS])
        if error:
            return Answer(response.status_code, error=error)
        try:
            choices = json.loads(text)["choices"]
            completion = str(choices[0]["text"]) if choices else ""  # [] : no suggestion
        except (ValueError, KeyError, IndexError, TypeError):
            return Answer(response.status_code, error=BAD_RESPONSE)
        return Answer(response.status_code, tokens=math.ceil(len(completion) / CHARS_PER_TOKEN))


async def lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's lines as bytes, as they arrive (cheaper than httpx's text line decoder)."""
    rest = b""
    async for chunk in response.aiter_bytes():
        *complete, rest = (rest + chunk).split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r")
    if rest:
        yield rest.rstrip(b"\r")


@dataclass(frozen=True)
class ModelPath:
    """The model alone: OpenAI-compatible streaming completions."""

    model: str
    api_key: str | None = None
    max_tokens: int = MODEL_MAX_TOKENS
    name: PathName = "model"
    route: str = MODEL_ROUTE
    streaming: bool = True

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def body(self, prompt: Prompt) -> dict[str, Any]:
        # The prefix only: vLLM refuses `suffix`, and the gateway's own prompt format differs
        # by model; what the model is asked to do matters less here than how fast it answers.
        return {
            "model": self.model,
            "prompt": prompt.content_above_cursor,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def read(self, response: httpx.Response, started: float, clock: Clock) -> Answer:
        status = response.status_code
        if not 200 <= status < 300:
            head = (await response.aread())[:_ERROR_BODY_CHARS].decode("utf-8", "replace")
            return Answer(status, error=classify(status, head))
        ttft: float | None = None
        chunks = 0
        usage: int | None = None
        done = False
        async for line in lines(response):
            # After [DONE], read on to the end of the body: the connection is then reused
            # (a response closed half-read closes its connection, a new SSH channel here).
            if done or not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                continue
            try:
                event = json.loads(data)
                choices = event.get("choices") or []
                text = choices[0].get("text") if choices else None
                if isinstance(event.get("usage"), dict):
                    usage = int(event["usage"].get("completion_tokens") or 0)
            except (ValueError, AttributeError, TypeError, IndexError):
                return Answer(status, ttft=ttft, tokens=chunks, error=BAD_RESPONSE)
            if text:
                chunks += 1
                if ttft is None:
                    ttft = clock() - started
        if done:
            return Answer(status, ttft=ttft, tokens=usage if usage is not None else chunks)
        return Answer(status, ttft=ttft, tokens=chunks, error=INCOMPLETE)


Path = GitLabPath | ModelPath


@functools.lru_cache(maxsize=1024)
def encoded(path: Path, prompt: Prompt) -> bytes:
    """The JSON body of `prompt` on `path`, encoded once (the prompts repeat)."""
    return json.dumps(path.body(prompt)).encode()


async def call(
    client: httpx.AsyncClient,
    path: Path,
    prompt: Prompt,
    level: int,
    origin: float,
    timeout: float,
    clock: Clock = time.monotonic,
) -> Sample:
    """One request on `path` through `client` (whose base URL is the target); never raises
    for what the server or the network does: every failure is a sample's error kind."""
    started = clock()
    answer: Answer | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request(
                "POST", path.route, content=encoded(path, prompt), headers=path.headers()
            )
            response = await client.send(request, stream=True)
            try:
                answer = await path.read(response, started, clock)
            finally:
                await response.aclose()
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        error = classify(None, exc=exc)
    ended = clock()
    if answer is None:
        return Sample(level, round(started - origin, 6), None, error=error)
    latency = round(ended - started, 6) if answer.error is None else None
    ttft = round(answer.ttft, 6) if answer.ttft is not None and answer.error is None else None
    return Sample(
        level,
        round(started - origin, 6),
        latency,
        ttft=ttft,
        tokens=answer.tokens if answer.error is None else 0,
        error=answer.error,
        status=answer.status,
    )
