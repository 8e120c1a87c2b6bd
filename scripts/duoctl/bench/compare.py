"""Two saved runs side by side: per path and concurrency level, what moved, and the knee."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from duoctl.bench.results import BenchRun
from duoctl.bench.stats import Knee

FIELDS: tuple[str, ...] = (
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "ttft_p50",
    "requests_per_s",
    "tokens_per_s_total",
)


@dataclass(frozen=True)
class LevelDelta:
    level: int
    before: dict[str, float | None]
    after: dict[str, float | None]
    errors_before: int
    errors_after: int

    def delta(self, name: str) -> float | None:
        a, b = self.before.get(name), self.after.get(name)
        return None if a is None or b is None else round(b - a, 4)


@dataclass(frozen=True)
class PathComparison:
    path: str
    levels: list[LevelDelta]
    knee_before: Knee | None
    knee_after: Knee | None


def compare(before: BenchRun, after: BenchRun) -> list[PathComparison]:
    """The paths both runs measured; per level both ran, the figures before and after."""
    out = []
    for old in before.paths:
        new = after.path(old.path)
        if new is None:
            continue
        new_levels = {r.level: r for r in new.levels}
        deltas = []
        for r in old.levels:
            n = new_levels.get(r.level)
            if n is None:
                continue
            deltas.append(
                LevelDelta(
                    r.level,
                    {f: getattr(r, f) for f in FIELDS},
                    {f: getattr(n, f) for f in FIELDS},
                    r.errors_total,
                    n.errors_total,
                )
            )
        out.append(PathComparison(old.path, deltas, old.knee, new.knee))
    return out


def _knee(k: Knee | None) -> str:
    return "none" if k is None else f"{k.level} (about {k.developers:,} developers)"


def _cell(d: LevelDelta, name: str) -> str:
    a, b = d.before.get(name), d.after.get(name)
    if a is None or b is None:
        return f"{'-':>18}"
    return f"{a:>7.2f} -> {b:<7.2f}"


def render(before: BenchRun, after: BenchRun, comparisons: list[PathComparison]) -> str:
    lines = [f"duoctl bench --compare {before.started_at} -> {after.started_at}", ""]
    if not comparisons:
        lines.append("the two runs have no path in common")
    for c in comparisons:
        lines.append(f"{c.path}: knee {_knee(c.knee_before)} -> {_knee(c.knee_after)}")
        lines.append(f"{'conc':>5} {'p50 s':>18} {'p95 s':>18} {'req/s':>18} {'tok/s':>18} errors")
        for d in c.levels:
            lines.append(
                f"{d.level:>5} {_cell(d, 'latency_p50')} {_cell(d, 'latency_p95')} "
                f"{_cell(d, 'requests_per_s')} {_cell(d, 'tokens_per_s_total')} "
                f"{d.errors_before} -> {d.errors_after}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_dict(before: BenchRun, after: BenchRun, comparisons: list[PathComparison]) -> dict[str, Any]:
    """--json: {before, after (started_at), paths: [{path, knee_before, knee_after, levels:
    [{level, before, after, delta, errors_before, errors_after}]}]}."""

    def knee(k: Knee | None) -> dict[str, Any] | None:
        return (
            None
            if k is None
            else {
                "level": k.level,
                "latency_p95": k.latency_p95,
                "requests_per_s": k.requests_per_s,
                "developers": k.developers,
            }
        )

    return {
        "before": before.started_at,
        "after": after.started_at,
        "paths": [
            {
                "path": c.path,
                "knee_before": knee(c.knee_before),
                "knee_after": knee(c.knee_after),
                "levels": [
                    {
                        "level": d.level,
                        "before": d.before,
                        "after": d.after,
                        "delta": {f: d.delta(f) for f in FIELDS},
                        "errors_before": d.errors_before,
                        "errors_after": d.errors_after,
                    }
                    for d in c.levels
                ],
            }
            for c in comparisons
        ],
    }
