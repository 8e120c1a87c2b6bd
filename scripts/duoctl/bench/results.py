"""A bench run as data, its JSON form (schema `duoctl.bench/1`) and its folder.

A run is saved in `<deployment folder>/bench/<timestamp>/` (`-2`, `-3`... for a second run
within the same second): `results.json` (the run, below), `samples.jsonl` (every request, one
JSON object a line: path, level, started, latency, ttft, tokens, error, status) and
`chart.png`. `load(dump(run)) == run`.

results.json, schema `duoctl.bench/1` (fields are only ever added within a schema version;
the JSON Schema is bench/schema.json):

    schema            "duoctl.bench/1"
    started_at        ISO 8601 UTC time the run started
    deployment        the deployment's name
    serving           "ollama" | "vllm"
    model             the model's name on its server, or null
    ramp              {levels: [int], requests: int | null (null: max(40, 8 x level)),
                       level_seconds, timeout, first_timeout}
    paths             one per benchmarked path:
      path            "gitlab" (the user's path) | "model" (the model alone)
      url             the URL benchmarked (the model: its private endpoint, reached by tunnel)
      streaming       whether answers were streamed (time to first token measured)
      target_p95      seconds
      first_request   {latency, ttft, error, steady_p50}: the path's first request, alone
      levels          [{level, requests, ok, errors: {kind: count}, seconds, latency_p50,
                        latency_p95, latency_p99, ttft_p50, ttft_p95, tokens_per_s_request,
                        tokens_per_s_total, requests_per_s}]; times in seconds
      knee            {level, latency_p95, requests_per_s, developers} | null
      stopped         why the ramp stopped before its last level, or null
    knee              the run's knee in one place (what `duoctl status` shows): the user's
                      path's when it was measured, else the model's; {path, level,
                      latency_p95, requests_per_s, developers} | null
    recommendations   [str]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from duoctl.bench.samples import Sample
from duoctl.bench.stats import FirstRequest, Knee, LevelResult
from duoctl.errors import DuoctlError

SCHEMA = "duoctl.bench/1"
RESULTS = "results.json"
SAMPLES = "samples.jsonl"
CHART = "chart.png"


@dataclass(frozen=True)
class RampSettings:
    levels: list[int]
    requests: int | None
    level_seconds: float
    timeout: float
    first_timeout: float = 180.0


@dataclass(frozen=True)
class PathResult:
    path: str
    url: str
    streaming: bool
    target_p95: float
    first_request: FirstRequest
    levels: list[LevelResult]
    knee: Knee | None
    stopped: str | None


@dataclass(frozen=True)
class RunKnee:
    path: str
    level: int
    latency_p95: float
    requests_per_s: float
    developers: int


def run_knee(paths: list[PathResult]) -> RunKnee | None:
    """The user's path's knee when it was measured, else the model's."""
    for name in ("gitlab", "model"):
        p = next((p for p in paths if p.path == name), None)
        if p is not None:
            k = p.knee
            if k is None:
                return None
            return RunKnee(name, k.level, k.latency_p95, k.requests_per_s, k.developers)
    return None


@dataclass(frozen=True)
class BenchRun:
    started_at: str
    deployment: str
    serving: str
    model: str | None
    ramp: RampSettings
    paths: list[PathResult]
    recommendations: list[str]
    knee: RunKnee | None = None
    schema: str = SCHEMA

    def path(self, name: str) -> PathResult | None:
        return next((p for p in self.paths if p.path == name), None)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of results.json (checked in as bench/schema.json; a test keeps the
    two equal, so a change to the output is a change to that file, on purpose)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(BenchRun).json_schema(mode="serialization")
    schema["title"] = f"duoctl bench results ({SCHEMA})"
    schema["properties"]["schema"] = {"const": SCHEMA, "title": "Schema"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def to_dict(run: BenchRun) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    return {"schema": data.pop("schema"), **data}


def dump(run: BenchRun) -> str:
    return json.dumps(to_dict(run), indent=2) + "\n"


def from_dict(data: Mapping[str, Any]) -> BenchRun:
    if data.get("schema") != SCHEMA:
        raise ValueError(f"schema {data.get('schema')!r} is not {SCHEMA}")
    paths = [
        PathResult(
            path=p["path"],
            url=p["url"],
            streaming=p["streaming"],
            target_p95=p["target_p95"],
            first_request=FirstRequest(**p["first_request"]),
            levels=[LevelResult(**level) for level in p["levels"]],
            knee=Knee(**p["knee"]) if p.get("knee") else None,
            stopped=p.get("stopped"),
        )
        for p in data["paths"]
    ]
    return BenchRun(
        started_at=data["started_at"],
        deployment=data["deployment"],
        serving=data["serving"],
        model=data.get("model"),
        ramp=RampSettings(**data["ramp"]),
        paths=paths,
        recommendations=list(data.get("recommendations", [])),
        knee=RunKnee(**data["knee"]) if data.get("knee") else None,
    )


def load(text: str) -> BenchRun:
    return from_dict(json.loads(text))


def dump_samples(samples: Iterable[tuple[str, Sample]]) -> str:
    return "".join(
        json.dumps({"path": path, **dataclasses.asdict(s)}) + "\n" for path, s in samples
    )


def load_samples(text: str) -> list[tuple[str, Sample]]:
    out = []
    for line in text.splitlines():
        if line.strip():
            item = json.loads(line)
            out.append((item.pop("path"), Sample(**item)))
    return out


def timestamp(now: datetime | None = None) -> str:
    """The folder name of a run: UTC, sortable, no characters a shell would mind."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def run_folder(bench_dir: Path, started_at: str) -> Path:
    """<bench_dir>/<started_at>/, or <started_at>-2/, -3/... when a run of the same second
    is there already (a run is never overwritten)."""
    candidate, n = bench_dir / started_at, 1
    while candidate.exists():
        n += 1
        candidate = bench_dir / f"{started_at}-{n}"
    return candidate


def save(run: BenchRun, samples: Iterable[tuple[str, Sample]], folder: Path) -> Path:
    """Write results.json and samples.jsonl into `folder` (made); returns the folder."""
    folder.mkdir(parents=True, exist_ok=False)
    (folder / RESULTS).write_text(dump(run), encoding="utf-8")
    (folder / SAMPLES).write_text(dump_samples(samples), encoding="utf-8")
    return folder


def load_run(where: Path) -> BenchRun:
    """A saved run from its folder or its results.json; DuoctlError naming what is wrong."""
    file = where / RESULTS if where.is_dir() else where
    fix = "pass a run folder of <deploy-dir>/<name>/bench/ (or its results.json)"
    try:
        return load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DuoctlError(f"cannot read the bench run {file}: {exc.strerror}", fix) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DuoctlError(f"{file} is not a duoctl bench run ({exc})", fix) from None
