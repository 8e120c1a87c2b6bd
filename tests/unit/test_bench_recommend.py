"""duoctl bench: the recommendations (printed, never applied) and the readable report."""

from __future__ import annotations

from duoctl.bench import report
from duoctl.bench.load import Ramp
from duoctl.bench.recommend import ServingFacts, plateau, recommendations
from duoctl.bench.results import PathResult
from duoctl.bench.run import assemble
from duoctl.bench.samples import Sample
from duoctl.bench.stats import LevelResult, first_request, knee, level_result


def lvl(
    n: int, latency: float, total_tps: float, req_tps: float, errors: dict[str, int] | None = None
) -> LevelResult:
    return LevelResult(
        n,
        50,
        50 - sum((errors or {}).values()),
        errors or {},
        10.0,
        latency,
        latency * 1.2,
        latency * 1.3,
        0.1,
        0.2,
        req_tps,
        total_tps,
        n / latency,
    )


def path(name: str, levels: list[LevelResult], first: float = 0.5) -> PathResult:
    fr = first_request(Sample(0, 0.0, first), levels)
    return PathResult(
        name, "http://x.test", name == "model", 1.5, fr, levels, knee(levels, 1.5), None
    )


def test_gpu_is_the_limit_when_each_request_slows_down() -> None:
    model = path(
        "model",
        [lvl(1, 0.5, 40, 40), lvl(2, 0.6, 70, 35), lvl(4, 1.0, 95, 20), lvl(8, 2.0, 97, 10)],
    )
    assert plateau(model.levels) is not None and plateau(model.levels).level == 4  # type: ignore[union-attr]
    text = " ".join(recommendations([model], ServingFacts("vllm", 8, "1 x T4")))
    assert "the GPU (1 x T4) is the limit" in text and "--max-num-seqs (now 8)" in text


def test_the_server_slots_are_the_limit_when_requests_queue_at_full_speed() -> None:
    model = path(
        "model",
        [lvl(1, 0.5, 40, 40), lvl(2, 0.5, 80, 40), lvl(4, 1.0, 82, 40), lvl(8, 2.0, 82, 40)],
    )
    text = " ".join(recommendations([model], ServingFacts("ollama", 2)))
    assert "OLLAMA_NUM_PARALLEL is the limit" in text and "to 4" in text


def test_still_growing_asks_for_a_higher_ramp() -> None:
    model = path("model", [lvl(1, 0.5, 40, 40), lvl(2, 0.5, 80, 40)])
    text = " ".join(recommendations([model], ServingFacts("ollama", 4)))
    assert "still grew up to concurrency 2" in text


def test_gateway_timeout_from_a1000_and_slow_answers() -> None:
    user = path("gitlab", [lvl(1, 0.8, 10, 10), lvl(2, 30.0, 10, 5, {"a1000": 3})])
    text = " ".join(recommendations([user], ServingFacts("ollama", gateway_timeout=60)))
    assert "3 A1000 or timed-out completions at concurrency 2" in text
    assert "gateway.timeout_seconds" in text
    slow = path("gitlab", [lvl(1, 40.0, 10, 10)])
    text = " ".join(recommendations([slow], ServingFacts("ollama", gateway_timeout=60)))
    assert "set gateway.timeout_seconds to 110" in text  # p99 52 s, twice that, in tens
    fine = path("gitlab", [lvl(1, 0.5, 10, 10)])
    assert "is ample" in " ".join(recommendations([fine], ServingFacts("ollama")))


def test_gitlab_rate_limit_and_gateway_hop() -> None:
    user = path("gitlab", [lvl(1, 0.8, 10, 10), lvl(2, 2.0, 10, 10, {"rate_limited": 30})])
    model = path("model", [lvl(1, 0.3, 40, 40), lvl(2, 0.4, 80, 40)])
    text = " ".join(recommendations([user, model], ServingFacts("ollama")))
    assert "GitLab refused 30 completions with 429" in text
    assert "knee is at 1 through GitLab and 2 for the model alone" in text


def test_cold_first_request() -> None:
    user = path("gitlab", [lvl(1, 0.5, 10, 10)], first=12.0)
    text = " ".join(recommendations([user], ServingFacts("ollama")))
    assert "first request took 12.00 s against a steady 0.50 s" in text


def test_report_table() -> None:
    levels = [
        level_result(n, [Sample(n, 0, 0.2 * n, ttft=0.05, tokens=10)] * 5, 1.0)
        for n in (1, 2, 4, 8)
    ]
    levels.append(level_result(16, [Sample(16, 0, None, error="timeout")] * 3, 1.0))
    p = PathResult(
        "model",
        "http://10.0.3.10:8000/v1",
        True,
        1.5,
        first_request(Sample(0, 0, 0.25), levels),
        levels,
        knee(levels, 1.5),
        "stopped before 32: 3 of 3 requests failed at 16",
    )
    run = assemble("staging", ServingFacts("vllm", 4), "codestral", Ramp(), [p])
    text = report.render(run)
    assert "the model alone (http://10.0.3.10:8000/v1)" in text
    assert "knee: 4 concurrent requests (p95 0.80 s <= 1.5 s" in text
    assert "active developers at 7 requests/s per 1,000" in text
    assert "first request: 0.25 s against a steady median of 0.20 s (warm)" in text
    assert "timeout:3" in text and "stopped before 32" in text
    assert "; at 8: p95 1.60 s is over the 1.5 s target" in text
    assert "recommendations (not applied):" in text
