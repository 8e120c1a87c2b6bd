"""Benchmark: duoctl bench's load generator is not the bottleneck.

Starts a null server on loopback in its own process (asyncio, HTTP/1.1 keep-alive, answers
at once: GitLab's completion JSON, or a short OpenAI-compatible event stream) and runs the
bench engine against it at a few concurrency levels. The rate it reaches is the most the
harness can measure on this machine: a real stack answering slower than that is measured,
not the harness. Goal: at least 500 requests/s at every level, on both paths. The
harness's own CPU time is shown too: on a shared machine the wall-clock rate moves with the
neighbours' load.
Run it with `.venv/bin/python -m tests.benchmarks.bench_harness`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import time
from dataclasses import dataclass

from duoctl.bench.load import Ramp
from duoctl.bench.paths import GitLabPath, ModelPath
from duoctl.bench.run import Target, run_targets

GOAL_REQUESTS_PER_S = 500
LEVELS = (16, 32, 64)
REQUESTS_PER_LEVEL = 4000

_JSON = json.dumps({"choices": [{"text": "return total", "index": 0}]}).encode()
_SSE = (
    b"".join(
        b"data: " + json.dumps({"choices": [{"index": 0, "text": w}]}).encode() + b"\n\n"
        for w in ("return", " total", "\n")
    )
    + b"data: [DONE]\n\n"
)


def _response(body: bytes, kind: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\n"
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


RESPONSES = {
    b"/api/v4/code_suggestions/completions": _response(_JSON, b"application/json"),
    b"/v1/completions": _response(_SSE, b"text/event-stream"),
}


class NullProtocol(asyncio.Protocol):
    """HTTP/1.1 just enough for the bench: request line, headers, Content-Length body."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            path = head.split(b" ", 2)[1]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(RESPONSES.get(path, b"HTTP/1.1 404 Not Found\r\n\r\n"))


def serve(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(NullProtocol, sock=sock)
        await server.serve_forever()

    asyncio.run(main())


@dataclass
class Figure:
    path: str
    level: int
    requests: int
    seconds: float
    requests_per_s: float
    cpu_seconds: float  # the harness process's CPU time for the level (the server's excluded)

    @property
    def requests_per_cpu_s(self) -> float:
        return self.requests / self.cpu_seconds if self.cpu_seconds else 0.0


def measure() -> list[Figure]:
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = multiprocessing.get_context("fork").Process(target=serve, args=(sock,), daemon=True)
    server.start()
    sock.close()
    figures = []
    try:
        ramp = Ramp(levels=LEVELS, requests=REQUESTS_PER_LEVEL, level_seconds=60, timeout=10)
        targets = [Target(GitLabPath("null"), url), Target(ModelPath("null"), url)]
        for target in targets:
            for level in LEVELS:
                one = Ramp((level,), ramp.requests, ramp.level_seconds, ramp.timeout)
                cpu = time.process_time()
                (result,), _ = run_targets([target], one, target_p95=1.5)
                cpu = time.process_time() - cpu
                r = result.levels[0]
                if r.errors:
                    raise RuntimeError(f"{target.path.name} at {r.level}: errors {r.errors}")
                figures.append(
                    Figure(result.path, r.level, r.requests, r.seconds, r.requests_per_s, cpu)
                )
    finally:
        server.terminate()
        server.join(5)
    return figures


def report(figures: list[Figure]) -> str:
    lines = [
        f"duoctl bench harness against a null server on loopback ({REQUESTS_PER_LEVEL} "
        "requests per level)"
    ]
    lines += [
        f"  {f.path:6s} concurrency {f.level:3d}: {f.requests_per_s:7.0f} requests/s "
        f"({f.requests} in {f.seconds:.2f} s; {f.requests_per_cpu_s:5.0f} per CPU second "
        "of the harness)"
        for f in figures
    ]
    worst = min((f.requests_per_s for f in figures), default=0.0)
    met = "met" if worst >= GOAL_REQUESTS_PER_S else "NOT met"
    lines.append(
        f"  goal (>= {GOAL_REQUESTS_PER_S} requests/s at every level, both paths): {met} "
        f"(lowest {worst:.0f})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
