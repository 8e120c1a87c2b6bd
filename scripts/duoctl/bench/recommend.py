"""What the figures suggest changing; printed, never applied.

- the model server's concurrency (Ollama's OLLAMA_NUM_PARALLEL, vLLM's --max-num-seqs): from
  where the model alone stops gaining throughput as concurrency doubles, and whether each
  request then slows down (the GPU computes for all of them: the GPU type is the limit) or
  not (requests wait for a slot: the server's concurrency is the limit);
- the gateway timeout (duo.yml gateway.timeout_seconds): timeouts and A1000 errors, or the
  slowest answers seen, against the timeout in effect;
- GitLab and the AI gateway: a knee through GitLab well below the model's, and GitLab's own
  per-user rate limit on code completions (HTTP 429);
- the warm-up: the first request of a path against its steady median.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from duoctl.bench.results import PathResult
from duoctl.bench.samples import A1000, RATE_LIMITED, TIMEOUT
from duoctl.bench.stats import LevelResult

PLATEAU_GAIN = 1.15  # doubling concurrency gains less than 15% throughput: a plateau
SLOWDOWN = 0.6  # each request decodes at under 60% of its speed alone: the GPU is busy
GATEWAY_CONCURRENCY = 40  # GitLab's figure for one 2 vCPU / 8 GB AI gateway


@dataclass(frozen=True)
class ServingFacts:
    """What is deployed, as far as the deployment folder says (None: not known)."""

    serving: str  # ollama | vllm
    parallel: int | None = None  # OLLAMA_NUM_PARALLEL or --max-num-seqs in effect
    gpu: str | None = None  # e.g. "1 x T4"
    gateway_timeout: int | None = None  # seconds

    @property
    def knob(self) -> str:
        return "--max-num-seqs" if self.serving == "vllm" else "OLLAMA_NUM_PARALLEL"


def plateau(levels: Sequence[LevelResult]) -> LevelResult | None:
    """The level after which more concurrency stops adding output throughput."""
    ordered = [r for r in sorted(levels, key=lambda r: r.level) if r.ok]
    for low, high in itertools.pairwise(ordered):
        if low.tokens_per_s_total > 0 and (
            high.tokens_per_s_total < PLATEAU_GAIN * low.tokens_per_s_total
        ):
            return low
    return None


def serving_concurrency(model: PathResult, facts: ServingFacts) -> list[str]:
    levels = [r for r in model.levels if r.ok]
    top = plateau(levels)
    now = f" (now {facts.parallel})" if facts.parallel else ""
    gpu = f" ({facts.gpu})" if facts.gpu else ""
    if top is None or not levels:
        if not levels:
            return []
        highest = max(levels, key=lambda r: r.level)
        return [
            f"{facts.knob}{now}: throughput still grew up to concurrency {highest.level}; "
            "run a higher ramp (--levels) to find where it stops"
        ]
    alone = min(levels, key=lambda r: r.level).tokens_per_s_request
    at_top = top.tokens_per_s_request
    total = f"{top.tokens_per_s_total:.0f} output tokens/s"
    if alone and at_top is not None and at_top < SLOWDOWN * alone:
        return [
            f"the GPU{gpu} is the limit: output stops growing at concurrency {top.level} "
            f"({total}) and each request decodes at {at_top:.0f} tokens/s against {alone:.0f} "
            f"alone; raising {facts.knob}{now} past {top.level} adds queueing, not "
            "throughput; a larger GPU (or more of them) moves the knee"
        ]
    if facts.parallel and top.level >= facts.parallel:
        return [
            f"{facts.knob} is the limit: output stops growing at concurrency {top.level} "
            f"({total}) while each request still decodes at full speed; raise {facts.knob}"
            f"{now} to {2 * facts.parallel} if the GPU's memory allows (duoctl.serving's "
            "arithmetic: the cache of each sequence must fit)"
        ]
    return [
        f"output stops growing at concurrency {top.level} ({total}); {facts.knob}{now} "
        f"above {top.level} would only queue"
    ]


def gateway_timeout(paths: Sequence[PathResult], facts: ServingFacts) -> list[str]:
    timeout = facts.gateway_timeout or 60
    late = {
        r.level: r.errors.get(A1000, 0) + r.errors.get(TIMEOUT, 0)
        for p in paths
        for r in p.levels
        if p.path == "gitlab"
    }
    late = {level: n for level, n in late.items() if n}
    worst = max((r.latency_p99 or 0 for p in paths for r in p.levels), default=0.0)
    if late:
        first = min(late)
        return [
            f"gateway timeout ({timeout} s): {late[first]} A1000 or timed-out completions at "
            f"concurrency {first}; stay below it, or raise gateway.timeout_seconds in duo.yml "
            "(GitLab 18.7 or later; 60 to 600) and run duoctl configure"
        ]
    if worst and worst * 2 > timeout:
        need = min(600, max(60, math.ceil(worst * 2 / 10) * 10))
        return [
            f"gateway timeout ({timeout} s): the slowest answers took {worst:.1f} s (p99); "
            f"set gateway.timeout_seconds to {need} in duo.yml so a busy hour stays within it"
        ]
    if worst:
        return [f"gateway timeout ({timeout} s) is ample: the slowest p99 was {worst:.1f} s"]
    return []


def gitlab_hop(user: PathResult, model: PathResult | None) -> list[str]:
    out = []
    limited = sum(r.errors.get(RATE_LIMITED, 0) for r in user.levels)
    if limited:
        out.append(
            f"GitLab refused {limited} completions with 429: it rate-limits code completions "
            "per user (60 a minute by default), and the bench sends them all with one token; "
            "the user's path above that rate measures the limit, not the stack (the model "
            "path shows what the model serves)"
        )
    if model and user.knee and model.knee and user.knee.level < model.knee.level:
        out.append(
            f"GitLab and the AI gateway are the limit before the model: the knee is at "
            f"{user.knee.level} through GitLab and {model.knee.level} for the model alone; "
            f"one 2 vCPU / 8 GB gateway handles about {GATEWAY_CONCURRENCY} concurrent "
            "requests: check its CPU, give it more, or run more gateways"
        )
    return out


def warm_up(paths: Sequence[PathResult]) -> list[str]:
    out = []
    for p in paths[:1]:  # the run's first request only: the others follow a warm model
        first = p.first_request
        if first.error:
            out.append(f"the run's first request failed ({first.error}): look at the warm-up")
        elif first.warm is False and first.latency is not None and first.steady_p50:
            out.append(
                f"the run's first request took {first.latency:.2f} s against a steady "
                f"{first.steady_p50:.2f} s: right after a restart this means the warm-up did "
                "not load the model (Ollama: OLLAMA_KEEP_ALIVE=-1 and the role's warm-up "
                "request; vLLM: its warm-up at start)"
            )
    return out


def recommendations(paths: Sequence[PathResult], facts: ServingFacts) -> list[str]:
    by_name = {p.path: p for p in paths}
    model, user = by_name.get("model"), by_name.get("gitlab")
    out: list[str] = []
    if model:
        out += serving_concurrency(model, facts)
    out += gateway_timeout(paths, facts)
    if user:
        out += gitlab_hop(user, model)
    out += warm_up(paths)
    return out
