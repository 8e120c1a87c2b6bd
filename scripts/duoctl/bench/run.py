"""The engine over plain base URLs: every path's ramp, its results and its samples.

Nothing here knows about deployments or tunnels; the command gives it the URLs (GitLab's, and
the model's as the local end of its tunnel), so it runs as well against local test servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from duoctl.bench import stats
from duoctl.bench.load import Progress, Ramp, run_path
from duoctl.bench.paths import Clock, Path
from duoctl.bench.prompts import Prompt, load
from duoctl.bench.recommend import ServingFacts, recommendations
from duoctl.bench.results import BenchRun, PathResult, RampSettings, run_knee, timestamp
from duoctl.bench.samples import Sample

Samples = list[tuple[str, Sample]]


@dataclass(frozen=True)
class Target:
    """One path to benchmark at `base_url`; `url` is what the results call it."""

    path: Path
    base_url: str
    url: str | None = None
    verify: bool | str = True


async def _run_all(
    targets: Sequence[Target],
    ramp: Ramp,
    target_p95: float,
    prompts: Sequence[Prompt],
    progress: Callable[[Progress], None] | None,
    clock: Clock,
) -> tuple[list[PathResult], Samples]:
    results: list[PathResult] = []
    samples: Samples = []
    for t in targets:
        done = await run_path(
            t.path,
            t.base_url,
            ramp,
            prompts,
            target_p95,
            verify=t.verify,
            progress=progress,
            clock=clock,
        )
        levels = list(done.levels)
        results.append(
            PathResult(
                path=t.path.name,
                url=t.url or t.base_url,
                streaming=t.path.streaming,
                target_p95=target_p95,
                first_request=stats.first_request(done.first, levels),
                levels=levels,
                knee=stats.knee(levels, target_p95),
                stopped=done.stopped,
            )
        )
        samples += [(t.path.name, s) for s in (done.first, *done.samples)]
    return results, samples


def run_targets(
    targets: Sequence[Target],
    ramp: Ramp,
    target_p95: float,
    *,
    prompts: Sequence[Prompt] | None = None,
    progress: Callable[[Progress], None] | None = None,
    clock: Clock = time.monotonic,
) -> tuple[list[PathResult], Samples]:
    """Each target's ramp in turn, in a fresh event loop."""
    chosen = prompts if prompts is not None else load()
    return asyncio.run(_run_all(targets, ramp, target_p95, chosen, progress, clock))


def assemble(
    deployment: str,
    facts: ServingFacts,
    model: str | None,
    ramp: Ramp,
    paths: list[PathResult],
    started_at: str | None = None,
) -> BenchRun:
    """The run as saved: the figures, the settings and the recommendations."""
    return BenchRun(
        started_at=started_at or timestamp(),
        deployment=deployment,
        serving=facts.serving,
        model=model,
        ramp=RampSettings(
            list(ramp.levels),
            ramp.requests,
            ramp.level_seconds,
            ramp.timeout,
            max(ramp.timeout, ramp.first_timeout),
        ),
        paths=paths,
        recommendations=recommendations(paths, facts),
        knee=run_knee(paths),
    )
