"""duoctl bench: the saved run (JSON round trip, schema), its samples, and --compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from duoctl.bench import compare, results
from duoctl.bench.load import Ramp
from duoctl.bench.recommend import ServingFacts
from duoctl.bench.results import BenchRun, PathResult
from duoctl.bench.run import assemble
from duoctl.bench.samples import Sample
from duoctl.bench.stats import first_request, knee, level_result
from duoctl.errors import DuoctlError


def path_result(name: str, latencies: dict[int, float], errors: int = 0) -> PathResult:
    levels = []
    for n, latency in latencies.items():
        samples = [Sample(n, 0.1 * i, latency, ttft=latency / 4, tokens=20) for i in range(20)]
        samples += [Sample(n, 0.0, None, error="timeout")] * errors
        levels.append(level_result(n, samples, seconds=20 * latency / n))
    first = first_request(Sample(0, 0.0, 4.2, ttft=3.9, tokens=20), levels)
    return PathResult(
        name, f"http://{name}.test", name == "model", 1.5, first, levels, knee(levels, 1.5), None
    )


def a_run(factor: float = 1.0) -> BenchRun:
    paths = [
        path_result("gitlab", {1: 0.6 * factor, 2: 0.7 * factor, 4: 1.1 * factor, 8: 2.4}),
        path_result("model", {1: 0.3 * factor, 2: 0.35 * factor, 4: 0.5, 8: 0.9}, errors=1),
    ]
    facts = ServingFacts("vllm", parallel=4, gpu="1 x L4", gateway_timeout=120)
    ramp = Ramp(levels=(1, 2, 4, 8), requests=None, level_seconds=60, timeout=30)
    return assemble("staging", facts, "codestral", ramp, paths, "20261201T060000Z")


def test_json_round_trip() -> None:
    run = a_run()
    assert results.load(results.dump(run)) == run
    data = json.loads(results.dump(run))
    assert data["schema"] == "duoctl.bench/1"
    assert list(data)[:1] == ["schema"]
    assert data["knee"]["path"] == "gitlab" and data["knee"]["level"] == 4
    assert set(data["paths"][0]["levels"][0]) == {
        "level",
        "requests",
        "ok",
        "errors",
        "seconds",
        "latency_p50",
        "latency_p95",
        "latency_p99",
        "ttft_p50",
        "ttft_p95",
        "tokens_per_s_request",
        "tokens_per_s_total",
        "requests_per_s",
    }


def test_round_trip_without_a_knee_or_a_path() -> None:
    run = a_run(factor=10)  # every level of the user's path misses the target
    assert run.path("gitlab") is not None and run.path("gitlab").knee is None  # type: ignore[union-attr]
    assert run.knee is None
    assert results.load(results.dump(run)) == run


def test_another_schema_is_refused() -> None:
    data = json.loads(results.dump(a_run()))
    data["schema"] = "duoctl.bench/99"
    with pytest.raises(ValueError, match="schema"):
        results.from_dict(data)


def test_saved_and_loaded_from_its_folder(tmp_path: Path) -> None:
    run = a_run()
    samples = [("gitlab", Sample(0, 0.0, 1.5)), ("model", Sample(2, 0.5, None, error="timeout"))]
    where = results.save(run, samples, tmp_path / "bench" / run.started_at)
    assert results.load_run(where) == run
    assert results.load_run(where / "results.json") == run
    text = (where / "samples.jsonl").read_text()
    assert results.load_samples(text) == samples


def test_a_run_is_never_overwritten(tmp_path: Path) -> None:
    run = a_run()
    first = results.save(run, [], results.run_folder(tmp_path, run.started_at))
    second = results.save(run, [], results.run_folder(tmp_path, run.started_at))
    assert (first.name, second.name) == (run.started_at, f"{run.started_at}-2")


def test_loading_a_missing_or_foreign_run_names_it(tmp_path: Path) -> None:
    with pytest.raises(DuoctlError, match="cannot read the bench run"):
        results.load_run(tmp_path / "nothing")
    (tmp_path / "results.json").write_text('{"knee": 1}')
    with pytest.raises(DuoctlError, match="is not a duoctl bench run"):
        results.load_run(tmp_path)


def test_timestamp_is_a_folder_name() -> None:
    from datetime import UTC, datetime

    assert results.timestamp(datetime(2026, 12, 1, 6, 5, 4, tzinfo=UTC)) == "20261201T060504Z"


def test_compare_per_level_deltas_and_knees() -> None:
    before, after = a_run(factor=1.0), a_run(factor=0.5)
    comparisons = compare.compare(before, after)
    assert [c.path for c in comparisons] == ["gitlab", "model"]
    gitlab = comparisons[0]
    assert [d.level for d in gitlab.levels] == [1, 2, 4, 8]
    one = gitlab.levels[0]
    assert one.before["latency_p50"] == 0.6 and one.after["latency_p50"] == 0.3
    assert one.delta("latency_p50") == pytest.approx(-0.3)
    assert gitlab.knee_before is not None and gitlab.knee_after is not None
    text = compare.render(before, after, comparisons)
    assert "gitlab: knee 4" in text and "0.60 -> 0.30" in text
    data = compare.to_dict(before, after, comparisons)
    assert data["paths"][0]["levels"][0]["delta"]["latency_p50"] == pytest.approx(-0.3)
    json.dumps(data)  # serialisable


def test_compare_only_common_paths_and_levels() -> None:
    before = a_run()
    after = BenchRun(
        "20261201T070000Z",
        "staging",
        "vllm",
        None,
        before.ramp,
        [path_result("model", {2: 0.2, 16: 1.0})],
        [],
    )
    comparisons = compare.compare(before, after)
    assert [c.path for c in comparisons] == ["model"]
    assert [d.level for d in comparisons[0].levels] == [2]


SCHEMA_FILE = Path(__file__).resolve().parents[2] / "scripts/duoctl/bench/schema.json"


def test_the_checked_in_json_schema_is_the_output() -> None:
    """A change to results.json changes scripts/duoctl/bench/schema.json on purpose:
    regenerate it with duoctl.bench.results.json_schema() (sorted keys, indent 2)."""
    assert json.loads(SCHEMA_FILE.read_text()) == results.json_schema()


def test_a_run_validates_against_the_schema() -> None:
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    for run in (a_run(), a_run(factor=10)):
        jsonschema.validate(json.loads(results.dump(run)), schema)
    broken = json.loads(results.dump(a_run()))
    broken["paths"][0]["levels"][0]["requests"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
