"""One request's outcome (a sample) and the kinds of error a request can end in.

Error kinds, in the order they are checked:

- ``timeout``: no complete answer within the request timeout;
- ``connection``: the connection failed or broke (refused, reset, closed mid-answer);
- ``a1000``: GitLab's error code A1000 in the body (the AI gateway or the model did not answer
  in time; GitLab's wording is "couldn't respond in time"), whatever the status;
- ``rate_limited``: HTTP 429 (GitLab limits code completions per user and minute);
- ``http_3xx``, ``http_4xx``, ``http_5xx``: any other non-2xx status, by class (a redirect is
  never followed: the bench only talks to the URL it was given);
- ``incomplete``: a stream that ended before its ``[DONE]`` marker;
- ``bad_response``: a 2xx answer whose body is not what the API returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

TIMEOUT = "timeout"
CONNECTION = "connection"
A1000 = "a1000"
RATE_LIMITED = "rate_limited"
INCOMPLETE = "incomplete"
BAD_RESPONSE = "bad_response"
ERROR_KINDS: tuple[str, ...] = (
    TIMEOUT,
    CONNECTION,
    A1000,
    RATE_LIMITED,
    "http_3xx",
    "http_4xx",
    "http_5xx",
    INCOMPLETE,
    BAD_RESPONSE,
)


@dataclass(frozen=True)
class Sample:
    """One request: when it started (seconds from the start of its path's run), how long it
    took, its first token (streaming only), its output tokens and its error kind, if any.

    `level` is the concurrency it ran at; 0 for the first request of a path, sent alone.
    """

    level: int
    started: float
    latency: float | None
    ttft: float | None = None
    tokens: int = 0
    error: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def classify(status: int | None, body: str = "", exc: BaseException | None = None) -> str | None:
    """The error kind of an answer (status and body) or of an exception; None: a success."""
    if exc is not None:
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return TIMEOUT
        if isinstance(exc, httpx.TransportError | OSError):
            return CONNECTION
        return BAD_RESPONSE
    if "A1000" in body:
        return A1000
    if status is None:
        return CONNECTION
    if status == 429:
        return RATE_LIMITED
    if not 200 <= status < 300:
        return f"http_{status // 100}xx"
    return None
