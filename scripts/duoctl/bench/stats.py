"""From samples to figures: percentiles, one level's result, the knee, developers served.

Latencies are in seconds, of successful requests only (a failed request has no latency that
means anything: a refused connection is fast). Output tokens per second per request is the
median over successful requests of tokens / (latency - time to first token) when streamed
(the decode speed a developer sees once the answer starts), else tokens / latency.
Throughput is successful requests (and their output tokens) per second of the level's wall
time.

The knee is the highest concurrency up to which every level keeps p95 under the target with
at most 1% errors. Developers served uses GitLab's planning figure of about 7 completion
requests per second per 1,000 active users, applied to the throughput measured at the knee.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from duoctl.bench.samples import Sample

REQUESTS_PER_SECOND_PER_1000_USERS = 7.0
MAX_ERROR_RATE_AT_KNEE = 0.01
COLD_START_FACTOR = 3.0  # a first request slower than 3x the steady median: not warmed up


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks; None if empty."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class LevelResult:
    """One concurrency level's figures (JSON field names are these attribute names)."""

    level: int
    requests: int
    ok: int
    errors: dict[str, int]
    seconds: float
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    tokens_per_s_request: float | None
    tokens_per_s_total: float
    requests_per_s: float

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())


def _decode_rate(s: Sample) -> float | None:
    if s.latency is None or s.tokens <= 0:
        return None
    span = s.latency - s.ttft if s.ttft is not None and s.latency > s.ttft else s.latency
    return s.tokens / span if span > 0 else None


def level_result(level: int, samples: Sequence[Sample], seconds: float) -> LevelResult:
    ok = [s for s in samples if s.ok and s.latency is not None]
    latencies = [s.latency for s in ok if s.latency is not None]
    ttfts = [s.ttft for s in ok if s.ttft is not None]
    rates = [r for r in (_decode_rate(s) for s in ok) if r is not None]
    errors = Counter(s.error for s in samples if s.error is not None)
    wall = max(seconds, 1e-9)
    return LevelResult(
        level=level,
        requests=len(samples),
        ok=len(ok),
        errors=dict(sorted(errors.items())),
        seconds=round(seconds, 4),
        latency_p50=_r(percentile(latencies, 50)),
        latency_p95=_r(percentile(latencies, 95)),
        latency_p99=_r(percentile(latencies, 99)),
        ttft_p50=_r(percentile(ttfts, 50)),
        ttft_p95=_r(percentile(ttfts, 95)),
        tokens_per_s_request=_r(statistics.median(rates) if rates else None, 2),
        tokens_per_s_total=round(sum(s.tokens for s in ok) / wall, 2),
        requests_per_s=round(len(ok) / wall, 3),
    )


@dataclass(frozen=True)
class Knee:
    """The highest concurrency within the target, its p95 and throughput, and what that
    throughput serves."""

    level: int
    latency_p95: float
    requests_per_s: float
    developers: int


def holds(result: LevelResult, target_p95: float) -> bool:
    """p95 within the target and at most 1% of the requests failed."""
    if result.requests == 0 or result.latency_p95 is None:
        return False
    within = result.latency_p95 <= target_p95
    return within and result.errors_total <= MAX_ERROR_RATE_AT_KNEE * result.requests


def miss(result: LevelResult, target_p95: float) -> str:
    """Why a level does not hold ('' when it does)."""
    if holds(result, target_p95):
        return ""
    if result.errors_total > MAX_ERROR_RATE_AT_KNEE * result.requests or not result.ok:
        kinds = ", ".join(f"{kind} {n}" for kind, n in result.errors.items())
        return f"{result.errors_total} of {result.requests} requests failed ({kinds})"
    return f"p95 {result.latency_p95:.2f} s is over the {target_p95:g} s target"


def knee(levels: Sequence[LevelResult], target_p95: float) -> Knee | None:
    """The last level of the ramp, in order, before the first one that does not hold."""
    best: LevelResult | None = None
    for result in sorted(levels, key=lambda r: r.level):
        if not holds(result, target_p95):
            break
        best = result
    if best is None or best.latency_p95 is None:
        return None
    return Knee(best.level, best.latency_p95, best.requests_per_s, developers(best.requests_per_s))


def developers(requests_per_s: float) -> int:
    """Active developers a throughput serves at 7 requests/s per 1,000, rounded down to 10."""
    users = requests_per_s / REQUESTS_PER_SECOND_PER_1000_USERS * 1000
    return int(users // 10 * 10)


@dataclass(frozen=True)
class FirstRequest:
    """The first request of a path, sent alone, against the median of the lowest level."""

    latency: float | None
    ttft: float | None
    error: str | None
    steady_p50: float | None

    @property
    def ratio(self) -> float | None:
        if self.latency is None or not self.steady_p50:
            return None
        return round(self.latency / self.steady_p50, 2)

    @property
    def warm(self) -> bool | None:
        """True: the first request was as fast as the steady ones; None: no way to tell."""
        ratio = self.ratio
        return None if ratio is None else ratio <= COLD_START_FACTOR


def first_request(first: Sample, levels: Sequence[LevelResult]) -> FirstRequest:
    lowest = min(levels, key=lambda r: r.level, default=None)
    steady = lowest.latency_p50 if lowest is not None else None
    return FirstRequest(first.latency, first.ttft, first.error, steady)
