"""The deploy as resumable steps: order, state file, progress, logs and the final summary.

A step is any object with a `name` and a `run(ctx)` that raises `StepFailed` (or any exception)
on failure. `Pipeline` runs a list of them in order and records each completion in
`.deploy/<cloud>/state.json`, so a re-run resumes at the first step not done; `--from STEP`
forces a restart there, and changed inputs (settings or inventory) discard the record.
The concrete steps and their assembly live in `duoctl.deploy`.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from duoctl import process
from duoctl.folder import DeploymentFolder

TAIL_LINES = 15
STATE_VERSION = 1


class StepFailed(Exception):
    """A step could not finish; the message says what broke and how to fix it."""


class RunResult(enum.Enum):
    """How a pipeline run ended; true only for DONE."""

    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: the tool was stopped cleanly

    def __bool__(self) -> bool:
        return self is RunResult.DONE


class Step(Protocol):
    name: str

    def run(self, ctx: Context) -> None: ...


def fmt_seconds(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {sec:02d}s"


class Progress:
    """Shows the running step with its elapsed time and the tail of the tool's output.

    On a terminal the status line ticks every second; otherwise (CI, a pipe) a "still running"
    line is printed every `quiet_interval` seconds. Everything also goes to the log file.
    """

    def __init__(
        self,
        log_file: Path,
        stream: TextIO | None = None,
        tick: float = 1.0,
        quiet_interval: float = 30.0,
    ) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.log_file = log_file
        self.tick = tick
        self.quiet_interval = quiet_interval
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._lock = threading.Lock()
        self._label = ""
        self._started = 0.0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def _log(self, text: str) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(text if text.endswith("\n") else text + "\n")

    def _print(self, text: str) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A message for the user (printed and logged)."""
        self._print(text)
        self._log(text)

    def tail(self) -> list[str]:
        with self._lock:
            return list(self._tail)

    def output(self, line: str) -> None:
        """One line of a tool's output: logged in full, kept for the tail."""
        line = line.rstrip("\n")
        self._log(line)
        with self._lock:
            self._tail.append(line)
        if self.tty:
            self._draw()

    def _status(self) -> str:
        elapsed = fmt_seconds(time.monotonic() - self._started)
        last = self._tail[-1].strip() if self._tail else ""
        return f"{self._label} {elapsed}" + (f" | {last}" if last else "")

    def _draw(self) -> None:
        with self._lock:
            width = 120
            self.stream.write("\r\033[K" + self._status()[:width])
            self.stream.flush()

    def _tick(self) -> None:
        last_quiet = time.monotonic()
        while not self._stop.wait(self.tick):
            if self.tty:
                self._draw()
            elif time.monotonic() - last_quiet >= self.quiet_interval:
                last_quiet = time.monotonic()
                with self._lock:
                    status = self._status()
                self._print(f"{status} (still running)")

    def start(self, label: str) -> None:
        with self._lock:
            self._label = label
            self._tail.clear()
            self._started = time.monotonic()
        self.note(f"{label} ...")
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join()
            self._ticker = None
        if self.tty:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()


@dataclass
class Context:
    """What a step sees: the target, its paths and settings, data kept between runs, output."""

    target: str  # aws | gcp | hosts
    paths: DeploymentFolder
    progress: Progress
    settings: Any = None  # duoctl.settings.DeploySettings for a cloud, None for own hosts
    data: dict[str, Any] = field(default_factory=dict)  # saved in the state file

    def run_command(
        self,
        cmd: Sequence[str],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        explain: Callable[[list[str]], str] | None = None,
    ) -> None:
        """Run a tool, streaming its output to the progress tail and the log; raise on failure.

        Ctrl-C stops the tool cleanly and raises `process.Interrupted` once it has exited.
        `explain` turns the tool's whole output into the failure's explanation (which host,
        which task, why), added to "exited with code N".
        """
        self.progress.note(f"$ {' '.join(cmd)}")
        lines: list[str] = []

        def sink(line: str) -> None:
            self.progress.output(line)
            if explain is not None:
                lines.append(line)

        try:
            code = process.run(
                cmd, sink, cwd=cwd, env={**os.environ, **(env or {})}, note=self.progress.note
            )
        except OSError as exc:
            raise StepFailed(f"cannot run {cmd[0]}: {exc}") from exc
        if code != 0:
            explanation = explain(lines) if explain is not None else ""
            raise StepFailed(
                f"{Path(cmd[0]).name} exited with code {code}"
                + (f"\n{explanation}" if explanation else "")
            )


class DeployState:
    """The state file: inputs of the last run, the steps done (with their time), step data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inputs: dict[str, Any] = {}
        self.steps: dict[str, dict[str, Any]] = {}
        self.data: dict[str, Any] = {}
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("version") == STATE_VERSION:
                self.inputs = saved.get("inputs", {})
                self.steps = saved.get("steps", {})
                self.data = saved.get("data", {})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": STATE_VERSION, "inputs": self.inputs, "steps": self.steps}
        body["data"] = self.data
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)

    def done(self, name: str) -> bool:
        return self.steps.get(name, {}).get("status") == "done"


def inputs_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two input fingerprints."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Pipeline:
    """Runs steps in order, skipping those recorded as done, and prints the summary."""

    def __init__(self, steps: Sequence[Step], ctx: Context, command: str) -> None:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique: {names}")
        self.steps = list(steps)
        self.ctx = ctx
        self.command = command  # how the user re-runs this deploy, for messages
        self.state = DeployState(ctx.paths.state_file)
        self._wall_start = time.monotonic()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def _apply_inputs(self, inputs: Mapping[str, Any]) -> None:
        changes = inputs_changes(self.state.inputs, inputs)
        if self.state.steps and changes:
            self.ctx.progress.note(
                "The inputs changed since the last run ("
                + "; ".join(changes)
                + "): the recorded steps are discarded and every step runs again."
            )
            self.state.steps = {}
        self.state.inputs = dict(inputs)

    def _apply_from(self, from_step: str | None) -> None:
        if from_step is None:
            return
        if from_step not in self.names:
            raise ValueError(f"unknown step {from_step!r}; the steps are: {', '.join(self.names)}")
        for name in self.names[self.names.index(from_step) :]:
            self.state.steps.pop(name, None)

    def run(self, inputs: Mapping[str, Any], from_step: str | None = None) -> RunResult:
        """Run what is left to do; the result is true only when every step is done."""
        self._apply_from(from_step)  # raises on an unknown name before anything changes
        self._apply_inputs(inputs)
        self.ctx.data = self.state.data
        self._wall_start = time.monotonic()
        progress = self.ctx.progress
        progress.note(f"=== {self.command}: {datetime.now(UTC).isoformat(timespec='seconds')}")
        total = len(self.steps)
        for index, step in enumerate(self.steps, start=1):
            label = f"[{index}/{total}] {step.name}"
            if self.state.done(step.name):
                recorded = fmt_seconds(self.state.steps[step.name].get("seconds", 0))
                progress.note(f"{label}: done in an earlier run ({recorded}), skipped")
                continue
            result = self._run_step(step, label)
            if result is not RunResult.DONE:
                return result
        self._summary()
        return RunResult.DONE

    def _run_step(self, step: Step, label: str) -> RunResult:
        progress = self.ctx.progress
        started = time.monotonic()
        progress.start(label)
        try:
            step.run(self.ctx)
        except (Exception, KeyboardInterrupt) as exc:  # the run stops; a re-run resumes here
            progress.stop()
            seconds = time.monotonic() - started
            result = (
                RunResult.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunResult.FAILED
            )
            self.state.steps[step.name] = {"status": result.value, "seconds": seconds}
            self.state.save()
            self._report_failure(step.name, label, exc, seconds)
            return result
        progress.stop()
        seconds = time.monotonic() - started
        self.state.steps[step.name] = {
            "status": "done",
            "seconds": round(seconds, 1),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.state.save()
        progress.note(f"{label}: done in {fmt_seconds(seconds)}")
        return RunResult.DONE

    def _report_failure(
        self, name: str, label: str, exc: Exception | KeyboardInterrupt, seconds: float
    ) -> None:
        progress = self.ctx.progress
        if isinstance(exc, KeyboardInterrupt):
            tool = exc.tool if isinstance(exc, process.Interrupted) else None
            stopped = f": {tool} stopped cleanly" if tool else ""
            advice = (
                f"Interrupted during {name} after {fmt_seconds(seconds)}{stopped}; "
                f"run `{self.command}` again: it resumes at {name}."
            )
        else:
            reason = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
            progress.note(f"{label}: FAILED after {fmt_seconds(seconds)}: {reason}")
            advice = f"Fix the cause and run `{self.command}` again: it resumes at {name}."
        tail = progress.tail()
        if tail:
            progress.note("last output:\n" + "\n".join(f"  | {line}" for line in tail))
        progress.note(f"Full log: {self.ctx.paths.log_file}\n{advice}")

    def _summary(self) -> None:
        paths = self.ctx.paths
        url = self.ctx.data.get("gitlab_url", "(see the inventory: gitlab_url)")
        total = sum(float(s.get("seconds", 0)) for s in self.state.steps.values())
        lines = [
            f"Deploy complete: {fmt_seconds(total)} in all "
            f"({fmt_seconds(time.monotonic() - self._wall_start)} in this run).",
            f"  GitLab:        {url}",
            "  user:          root",
            f"  root password: {paths.root_password_file}",
            f"  admin token:   {paths.admin_token_file}",
            f"  full log:      {paths.log_file}",
            "Step times:",
        ]
        width = max((len(n) for n in self.names), default=0)
        lines += [
            f"  {name:{width}s}  {fmt_seconds(float(self.state.steps[name].get('seconds', 0)))}"
            for name in self.names
        ]
        self.ctx.progress.note("\n".join(lines))
