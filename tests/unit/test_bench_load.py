"""duoctl bench: the ramp's bounds (request count, time limit), its early stop, progress."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from duoctl.bench.load import Progress, Ramp, past_the_knee, run_path
from duoctl.bench.paths import GitLabPath
from duoctl.bench.prompts import load
from duoctl.bench.samples import Sample
from duoctl.bench.stats import level_result

ANSWER = {"choices": [{"text": "pass", "index": 0, "finish_reason": "length"}]}


def transport(delay: float, status: int = 200) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(delay)
        return httpx.Response(status, json=ANSWER)

    return httpx.MockTransport(handler)


def run(ramp: Ramp, delay: float, status: int = 200, progress: list[Progress] | None = None):
    return asyncio.run(
        run_path(
            GitLabPath("t"),
            "http://gitlab.test",
            ramp,
            load(),
            target_p95=1.5,
            transport=transport(delay, status),
            progress=progress.append if progress is not None else None,
        )
    )


def test_default_request_counts() -> None:
    ramp = Ramp()
    assert ramp.levels == (1, 2, 4, 8, 16, 32)
    assert [ramp.requests_at(n) for n in ramp.levels] == [40, 40, 40, 64, 128, 256]
    assert Ramp(requests=10).requests_at(32) == 10


def test_each_level_stops_at_its_request_count() -> None:
    done = run(Ramp(levels=(1, 3, 8), requests=10, level_seconds=30, timeout=5), delay=0.001)
    assert [r.requests for r in done.levels] == [10, 10, 10]
    assert [r.level for r in done.levels] == [1, 3, 8]
    assert done.first.level == 0 and done.first.ok
    assert len(done.samples) == 30 and done.stopped is None


def test_each_level_stops_at_its_time_limit() -> None:
    ramp = Ramp(levels=(2,), requests=10_000, level_seconds=0.5, timeout=5)
    started = time.monotonic()
    done = run(ramp, delay=0.05)
    took = time.monotonic() - started
    r = done.levels[0]
    assert 10 <= r.requests <= 24  # 2 workers x 0.5 s / 0.05 s, give or take
    assert took < 0.5 + 0.05 * 4 + 1  # the limit, the requests in flight and the first one
    level_start = min(s.started for s in done.samples)
    assert all(s.started <= level_start + 0.5 + 0.01 for s in done.samples)


def test_requests_in_flight_end_within_the_timeout() -> None:
    ramp = Ramp(levels=(4,), requests=100, level_seconds=0.2, timeout=0.3, first_timeout=0.3)
    started = time.monotonic()
    done = run(ramp, delay=5.0)  # the server never answers in time
    assert time.monotonic() - started < 2.0
    assert done.first.error == "timeout"
    assert done.levels[0].errors == {"timeout": 4}


def test_the_first_request_may_take_longer() -> None:
    """A cold model is timed, not cut off; the ramp's requests keep their own timeout."""
    ramp = Ramp(levels=(2,), requests=2, level_seconds=5, timeout=0.1, first_timeout=2)
    done = run(ramp, delay=0.3)
    assert done.first.ok and done.first.latency is not None and done.first.latency >= 0.3
    assert done.levels[0].errors == {"timeout": 2}


def test_the_ramp_stops_past_the_knee() -> None:
    done = run(Ramp(levels=(1, 2, 4), requests=5, timeout=5), delay=0.0, status=503)
    assert len(done.levels) == 1
    assert done.stopped is not None and "stopped before 2" in done.stopped
    assert done.levels[0].errors == {"http_5xx": 5}


def test_past_the_knee() -> None:
    fine = level_result(1, [Sample(1, 0, 0.5)] * 10, 5)
    slow = level_result(1, [Sample(1, 0, 7.0)] * 10, 5)
    failing = level_result(
        1, [Sample(1, 0, None, error="timeout")] * 5 + [Sample(1, 0, 0.5)] * 5, 5
    )
    assert past_the_knee(fine, 1.5) is None
    assert past_the_knee(slow, 1.5) is not None
    assert past_the_knee(failing, 1.5) is not None


def test_progress_reports_each_request_and_each_level_end() -> None:
    seen: list[Progress] = []
    run(Ramp(levels=(1, 2), requests=4, timeout=5), delay=0.0, progress=seen)
    finals = [p for p in seen if p.final]
    assert [(p.level, p.done, p.total) for p in finals] == [(0, 1, 1), (1, 4, 4), (2, 4, 4)]
    assert len(seen) == 1 + 8 + 2


def test_no_prompts_is_refused() -> None:
    with pytest.raises(ValueError, match="no prompts"):
        asyncio.run(run_path(GitLabPath("t"), "http://x.test", Ramp(), [], 1.5))
