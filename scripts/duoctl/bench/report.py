"""The readable form of a run: one table per path, the knee, the first request, advice."""

from __future__ import annotations

from duoctl.bench.results import BenchRun, PathResult
from duoctl.bench.stats import LevelResult, miss

TITLES = {"gitlab": "the user's path: GitLab code completions", "model": "the model alone"}
HEADER = (
    f"{'conc':>5} {'reqs':>5} {'errors':<22} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} "
    f"{'ttft p50':>8} {'tok/s/req':>9} {'tok/s':>7} {'req/s':>7}"
)


def _s(value: float | None, width: int, digits: int = 2) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def errors_text(result: LevelResult) -> str:
    if not result.errors:
        return "0"
    return " ".join(f"{kind}:{n}" for kind, n in result.errors.items())


def row(result: LevelResult) -> str:
    return (
        f"{result.level:>5} {result.requests:>5} {errors_text(result):<22} "
        f"{_s(result.latency_p50, 7)} {_s(result.latency_p95, 7)} {_s(result.latency_p99, 7)} "
        f"{_s(result.ttft_p50, 8)} {_s(result.tokens_per_s_request, 9, 1)} "
        f"{result.tokens_per_s_total:>7.1f} {result.requests_per_s:>7.2f}"
    )


def knee_text(p: PathResult) -> str:
    first_miss = next((r for r in p.levels if miss(r, p.target_p95)), None)
    after = f"; at {first_miss.level}: {miss(first_miss, p.target_p95)}" if first_miss else ""
    if p.knee is None:
        return f"knee: none{after}"
    k = p.knee
    return (
        f"knee: {k.level} concurrent requests (p95 {k.latency_p95:.2f} s <= "
        f"{p.target_p95:g} s, {k.requests_per_s:.1f} requests/s): about {k.developers:,} "
        f"active developers at 7 requests/s per 1,000{after}"
    )


def first_text(p: PathResult) -> str:
    f = p.first_request
    if f.error:
        return f"first request: failed ({f.error})"
    if f.latency is None:
        return "first request: no answer"
    steady = f" against a steady median of {f.steady_p50:.2f} s" if f.steady_p50 else ""
    verdict = {True: " (warm)", False: " (cold: warm-up not working?)", None: ""}[f.warm]
    return f"first request: {f.latency:.2f} s{steady}{verdict}"


def path_text(p: PathResult) -> list[str]:
    lines = [f"{TITLES.get(p.path, p.path)} ({p.url})", HEADER]
    lines += [row(r) for r in p.levels]
    lines += [knee_text(p), first_text(p)]
    if p.stopped:
        lines.append(p.stopped)
    return lines


def render(run: BenchRun) -> str:
    model = f", model {run.model}" if run.model else ""
    lines = [f"duoctl bench {run.deployment} ({run.serving}{model}), {run.started_at}", ""]
    for p in run.paths:
        lines += [*path_text(p), ""]
    if run.recommendations:
        lines.append("recommendations (not applied):")
        lines += [f"  - {text}" for text in run.recommendations]
    return "\n".join(lines).rstrip() + "\n"
