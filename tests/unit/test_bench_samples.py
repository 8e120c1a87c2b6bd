"""duoctl bench: every way a request can end, by kind."""

from __future__ import annotations

import httpx
import pytest
from duoctl.bench.samples import ERROR_KINDS, classify


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, '{"choices": [{"text": "x"}]}', None),
        (201, "", None),
        (429, "Retry later", "rate_limited"),
        (401, '{"message": "401 Unauthorized"}', "http_4xx"),
        (404, "", "http_4xx"),
        (500, "", "http_5xx"),
        (503, "", "http_5xx"),
        (302, "", "http_3xx"),
        # GitLab's "couldn't respond in time", whatever the status it comes with
        (500, '{"error": "I\'m sorry, I couldn\'t respond in time. Error code: A1000"}', "a1000"),
        (200, '{"choices": [{"text": ""}], "error": "Error code: A1000"}', "a1000"),
        (None, "", "connection"),
    ],
)
def test_answers(status: int | None, body: str, kind: str | None) -> None:
    assert classify(status, body) == kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.PoolTimeout("slow"), "timeout"),
        (TimeoutError(), "timeout"),
        (httpx.ConnectError("refused"), "connection"),
        (httpx.RemoteProtocolError("peer closed connection"), "connection"),
        (httpx.ReadError("reset"), "connection"),
        (ConnectionResetError(), "connection"),
        (httpx.DecodingError("bad gzip"), "bad_response"),
    ],
)
def test_exceptions(exc: BaseException, kind: str) -> None:
    assert classify(None, exc=exc) == kind


def test_every_kind_is_listed() -> None:
    assert {"timeout", "connection", "a1000", "rate_limited", "http_4xx", "http_5xx"} <= set(
        ERROR_KINDS
    )
    assert {"incomplete", "bad_response", "http_3xx"} <= set(ERROR_KINDS)
