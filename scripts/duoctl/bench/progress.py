"""The progress line on stderr while a ramp runs: rewritten in place on a terminal, one line
per level otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from duoctl.bench.load import Progress

NAMES = {"gitlab": "user's path", "model": "model alone"}


class ProgressLine:
    def __init__(self, stream: TextIO | None = None, interval: float = 0.25) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if not p.final and (not self.tty or now - self._last < self.interval):
            return
        self._last = now
        errors = f", {p.errors} errors" if p.errors else ""
        where = f"concurrency {p.level}" if p.level else "first request"
        text = (
            f"bench {NAMES.get(p.path, p.path)}: {where}, "
            f"{p.done}/{p.total} requests{errors}, {p.elapsed:.0f} s"
        )
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if p.final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
