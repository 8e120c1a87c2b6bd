"""The load generator: one path, a ramp of concurrency levels, every request a `Sample`.

asyncio + httpx: one keep-alive connection per worker (kept from level to level), no proxies
from the environment, no redirects followed, and a guard refusing any request whose origin
is not the target's. Each level runs `level` workers that send one request after the
other until the level's request count is reached or its time is up (no request starts after
that; the ones in flight finish within the request timeout), so a level lasts at most
`level_seconds + timeout`. The ramp stops by itself after its last level, or earlier when a
level is clearly past the knee (see `past_the_knee`).

The first request of a path is sent alone before the ramp, with a longer timeout, and kept
apart (level 0): after a restart it shows whether the model was warmed up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from duoctl.bench.paths import Clock, Path, call
from duoctl.bench.prompts import Prompt
from duoctl.bench.samples import Sample
from duoctl.bench.stats import LevelResult, level_result

DEFAULT_LEVELS = (1, 2, 4, 8, 16, 32)
MIN_REQUESTS = 40  # per level: enough for a p95 that means something
REQUESTS_PER_WORKER = 8


@dataclass(frozen=True)
class Ramp:
    """The concurrency levels and the bounds of each: a request count and a time limit."""

    levels: tuple[int, ...] = DEFAULT_LEVELS
    requests: int | None = None  # per level; None: max(40, 8 x the level)
    level_seconds: float = 60.0
    timeout: float = 30.0
    # The first request may load the model (a cold start takes tens of seconds on a small
    # GPU): it gets longer, so that it is timed rather than cut off.
    first_timeout: float = 180.0

    def requests_at(self, level: int) -> int:
        if self.requests is not None:
            return self.requests
        return max(MIN_REQUESTS, REQUESTS_PER_WORKER * level)


@dataclass(frozen=True)
class Progress:
    """Where a path's run is, for the progress line."""

    path: str
    level: int
    done: int
    total: int
    errors: int
    elapsed: float
    final: bool = False  # the level is over


@dataclass(frozen=True)
class PathRun:
    """Every sample of one path's run, the levels' results, and why it stopped early."""

    first: Sample
    samples: tuple[Sample, ...]
    levels: tuple[LevelResult, ...]
    stopped: str | None


@dataclass
class _Level:
    """One level's count of requests done and in flight, and its deadline."""

    level: int
    total: int
    started: float
    deadline: float
    done: list[Sample] = field(default_factory=list)
    in_flight: int = 0
    errors: int = 0

    def may_issue(self, now: float) -> bool:
        return len(self.done) + self.in_flight < self.total and now < self.deadline

    def progress(self, path: str, now: float, final: bool = False) -> Progress:
        elapsed = now - self.started
        done, total = len(self.done), self.total
        return Progress(path, self.level, done, total, self.errors, elapsed, final)


class OffTargetError(RuntimeError):
    """A request to anything but the target: a bug, never sent."""


def past_the_knee(result: LevelResult, target_p95: float) -> str | None:
    """Why the ramp should not go higher: half the requests failed, or p95 is 4x the target."""
    if result.requests and result.errors_total * 2 >= result.requests:
        return f"{result.errors_total} of {result.requests} requests failed at {result.level}"
    if result.latency_p95 is not None and result.latency_p95 > 4 * target_p95:
        return f"p95 {result.latency_p95:.2f} s at {result.level} is over 4x the target"
    return None


def ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """One TLS context for every client of a path (loading the CAs once): httpx's default
    trusted CAs, or the deployment's private CA file."""
    if verify is False:
        return False
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context()


def client_for(
    base_url: str,
    timeout: float,
    verify: ssl.SSLContext | bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A one-connection HTTP client that can only reach `base_url`'s origin.

    Each worker has its own: httpcore's pool looks at every connection it holds on every
    request, so one shared pool of 32 costs more than 32 pools of one."""
    origin = httpx.URL(base_url)

    async def guard(request: httpx.Request) -> None:
        url = request.url
        if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
            raise OffTargetError(f"refused a request to {url.scheme}://{url.host}:{url.port}")

    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        trust_env=False,
        follow_redirects=False,
        verify=verify,
        event_hooks={"request": [guard]},
        transport=transport,
    )


async def run_path(
    path: Path,
    base_url: str,
    ramp: Ramp,
    prompts: Sequence[Prompt],
    target_p95: float,
    *,
    verify: bool | str = True,
    progress: Callable[[Progress], None] | None = None,
    clock: Clock = time.monotonic,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PathRun:
    """The first request alone, then the ramp; stops early past the knee."""
    if not prompts:
        raise ValueError("no prompts")
    cycle = itertools.cycle(prompts)
    samples: list[Sample] = []
    results: list[LevelResult] = []
    stopped: str | None = None
    origin = clock()
    context = ssl_context(verify) if base_url.startswith("https:") else False
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(client_for(base_url, ramp.timeout, context, transport))
            for _ in range(max(ramp.levels))
        ]
        wait = max(ramp.timeout, ramp.first_timeout)
        first = await call(clients[0], path, next(cycle), 0, origin, wait, clock)
        if progress is not None:
            errors = 0 if first.ok else 1
            progress(Progress(path.name, 0, 1, 1, errors, clock() - origin, final=True))
        for index, level in enumerate(ramp.levels):
            started = clock()
            state = _Level(level, ramp.requests_at(level), started, started + ramp.level_seconds)

            async def worker(client: httpx.AsyncClient, state: _Level = state) -> None:
                while state.may_issue(clock()):
                    state.in_flight += 1
                    try:
                        prompt = next(cycle)
                        sample = await call(
                            client, path, prompt, state.level, origin, ramp.timeout, clock
                        )
                    finally:
                        state.in_flight -= 1
                    state.done.append(sample)
                    state.errors += 0 if sample.ok else 1
                    if progress is not None:
                        progress(state.progress(path.name, clock()))

            await asyncio.gather(*(worker(clients[i]) for i in range(level)))
            if progress is not None:
                progress(state.progress(path.name, clock(), final=True))
            done = state.done
            result = level_result(level, done, clock() - started)
            samples.extend(done)
            results.append(result)
            reason = past_the_knee(result, target_p95)
            if reason and index + 1 < len(ramp.levels):
                stopped = f"stopped before {ramp.levels[index + 1]}: {reason}"
                break
    return PathRun(first, tuple(samples), tuple(results), stopped)
