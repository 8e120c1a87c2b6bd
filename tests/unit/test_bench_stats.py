"""duoctl bench: percentiles, a level's figures, the knee, developers served, first request."""

from __future__ import annotations

import pytest
from duoctl.bench.samples import Sample
from duoctl.bench.stats import (
    LevelResult,
    developers,
    first_request,
    knee,
    level_result,
    miss,
    percentile,
)


def level(n: int, p95: float | None, rps: float = 1.0, errors: int = 0, requests: int = 100):
    return LevelResult(
        level=n,
        requests=requests,
        ok=requests - errors,
        errors={"timeout": errors} if errors else {},
        seconds=10.0,
        latency_p50=None if p95 is None else p95 / 2,
        latency_p95=p95,
        latency_p99=p95,
        ttft_p50=None,
        ttft_p95=None,
        tokens_per_s_request=None,
        tokens_per_s_total=0.0,
        requests_per_s=rps,
    )


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0


def test_percentile_of_one_value_and_of_none() -> None:
    assert percentile([0.7], 95) == 0.7
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_level_result_counts_errors_by_kind_and_times_successes_only() -> None:
    samples = [Sample(4, 0.0, 1.0, ttft=0.2, tokens=33) for _ in range(8)]
    samples += [Sample(4, 0.0, None, error="timeout"), Sample(4, 0.0, None, error="a1000")]
    samples += [Sample(4, 0.0, None, error="timeout")]
    r = level_result(4, samples, seconds=4.0)
    assert (r.requests, r.ok, r.errors_total) == (11, 8, 3)
    assert r.errors == {"a1000": 1, "timeout": 2}
    assert r.latency_p50 == r.latency_p95 == r.latency_p99 == 1.0
    assert r.ttft_p50 == 0.2
    assert r.tokens_per_s_request == pytest.approx(33 / 0.8, abs=0.01)  # after the first token
    assert r.tokens_per_s_total == pytest.approx(8 * 33 / 4.0)
    assert r.requests_per_s == 2.0


def test_level_result_without_streaming_rates_tokens_over_latency() -> None:
    r = level_result(1, [Sample(1, 0.0, 0.5, tokens=10)], seconds=0.5)
    assert r.ttft_p50 is None
    assert r.tokens_per_s_request == 20.0


def test_level_result_all_failed() -> None:
    r = level_result(2, [Sample(2, 0.0, None, error="connection")] * 3, seconds=1.0)
    assert r.ok == 0 and r.latency_p95 is None and r.requests_per_s == 0.0


def test_knee_is_the_last_level_within_target_before_the_first_miss() -> None:
    levels = [level(1, 0.5, 2), level(2, 0.8, 3.5), level(4, 1.4, 6), level(8, 2.5, 7)]
    k = knee(levels, target_p95=1.5)
    assert k is not None
    assert (k.level, k.latency_p95, k.requests_per_s) == (4, 1.4, 6)
    assert k.developers == developers(6)


def test_knee_ignores_a_lucky_level_after_a_miss() -> None:
    levels = [level(1, 0.5), level(2, 1.6), level(4, 1.2)]
    k = knee(levels, 1.5)
    assert k is not None and k.level == 1


def test_knee_needs_at_most_one_percent_errors() -> None:
    levels = [level(1, 0.5), level(2, 0.6, errors=2, requests=100)]
    k = knee(levels, 1.5)
    assert k is not None and k.level == 1


def test_no_knee_when_even_one_request_misses() -> None:
    assert knee([level(1, 2.0), level(2, 3.0)], 1.5) is None
    assert knee([level(1, None, errors=100)], 1.5) is None
    assert knee([], 1.5) is None


def test_developers_at_seven_requests_per_second_per_thousand() -> None:
    assert developers(7.0) == 1000
    assert developers(3.5) == 500
    assert developers(1.0) == 140  # 142.8 rounded down to tens
    assert developers(0.0) == 0


def test_first_request_against_the_steady_median() -> None:
    levels = [level(2, 1.0), level(1, 0.8)]  # the lowest level is the steady one: p50 0.4
    cold = first_request(Sample(0, 0.0, 9.0), levels)
    assert (cold.steady_p50, cold.ratio, cold.warm) == (0.4, 22.5, False)
    warm = first_request(Sample(0, 0.0, 0.5), levels)
    assert warm.warm is True
    failed = first_request(Sample(0, 0.0, None, error="timeout"), levels)
    assert failed.warm is None and failed.error == "timeout"


def test_why_a_level_misses() -> None:
    assert miss(level(1, 0.5), 1.5) == ""
    assert miss(level(2, 2.0), 1.5) == "p95 2.00 s is over the 1.5 s target"
    assert miss(level(4, 0.5, errors=2), 1.5) == "2 of 100 requests failed (timeout 2)"
