"""Run a tool (terraform, ansible-playbook) with its output streamed, and stop it cleanly.

`run` starts the tool in its own session, so a terminal's Ctrl-C reaches duoctl only. While
the tool runs, the first SIGINT, SIGTERM or SIGHUP that duoctl receives is forwarded to the
tool once, as SIGINT: Terraform's graceful stop (it finishes the API calls in flight, writes
its state and releases its lock) and ansible-playbook's user interrupt. For Terraform, further
signals are only acknowledged, never forwarded: a second SIGINT would make it exit at once,
which is what leaves the state empty and the lock behind. ansible-playbook can lose that one
SIGINT (its handler raises in whatever its main thread is doing, and a play of the free
strategy has been seen to carry on, waiting an hour for a host that had stopped): when it is
still running `TERMINATE_AFTER` seconds later, or at the next stop signal, it gets SIGTERM,
which it passes on to its workers before it exits; a re-run converges. The output is read to
its end meanwhile (a tool whose output pipe is closed dies of SIGPIPE mid-write), then
`Interrupted` is raised.

Signal handlers can only be set in the main thread: called from another thread, `run` starts
the tool in duoctl's session and process group instead, so a terminal's Ctrl-C reaches the
tool directly, and reads its output to the end all the same.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from queue import SimpleQueue
from types import FrameType

Sink = Callable[[str], None]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Tools that may be terminated when their SIGINT does not stop them: seconds to wait first.
TERMINATE_AFTER: dict[str, float] = {"ansible-playbook": 30.0}


class Interrupted(KeyboardInterrupt):
    """duoctl received a stop signal while `tool` ran; the tool was asked to stop and has exited.

    A KeyboardInterrupt, so that code letting Ctrl-C through lets this through as well.
    """

    def __init__(self, tool: str, signum: int, returncode: int) -> None:
        self.tool = tool
        self.signal = signal.Signals(signum)
        self.returncode = returncode
        super().__init__(
            f"{self.signal.name} received: {tool} was asked to stop and exited "
            f"with code {returncode}"
        )


class _Note(str):
    """duoctl's own message about the stop, among the tool's output lines."""


class _GracefulStop:
    """The signal handler: forwards the first stop signal as SIGINT, acknowledges the rest.

    It runs between two bytecodes of the main thread, possibly inside the sink, so it never
    calls the sink: its notes go through the reentrant SimpleQueue the output goes through.
    """

    def __init__(self, tool: str, terminate_after: float | None = None) -> None:
        self.tool = tool
        self.items: SimpleQueue[str | None] = SimpleQueue()  # output lines, notes; None: end
        self.proc: subprocess.Popen[str] | None = None
        self.signum: int | None = None
        self.terminate_after = terminate_after  # None: never terminated (Terraform)
        self.deadline: float | None = None  # when SIGTERM follows the SIGINT
        self._once = threading.Lock()  # taken by the one SIGINT sent to the tool
        self._terminated = threading.Lock()  # taken by the one SIGTERM

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if self.terminate_after is not None:
                self.terminate("asked again")
            else:
                self.items.put(_Note(f"still waiting for {self.tool} to stop"))
            return
        self.signum = signum
        self.items.put(
            _Note(f"stopping {self.tool} cleanly (it finishes what it is doing); wait...")
        )
        self.forward()

    def forward(self) -> None:
        """Send the tool SIGINT, once (an atomic test-and-set, safe from the handler too)."""
        if self.proc is not None and self._once.acquire(blocking=False):
            if self.terminate_after is not None:
                self.deadline = time.monotonic() + self.terminate_after
            self.proc.send_signal(signal.SIGINT)  # a no-op once the tool has exited

    def wait_limit(self) -> float | None:
        """Seconds the output may stay silent before the tool is terminated; None: no limit."""
        if self.deadline is None or self._terminated.locked():
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def terminate(self, why: str) -> None:
        """Send the tool SIGTERM, once."""
        if self.proc is not None and self._terminated.acquire(blocking=False):
            self.items.put(_Note(f"{self.tool} has not stopped ({why}): terminating it"))
            self.proc.send_signal(signal.SIGTERM)


def run(
    cmd: Sequence[str],
    sink: Sink,
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    note: Sink | None = None,
) -> int:
    """Run `cmd`, handing each line of its output and error output (merged, without the line
    end) to `sink` as it comes; return its exit code. duoctl's own messages about stopping the
    tool go to `note` (shown to the user at once, not as the tool's output), else to `sink`.

    Raises OSError when the tool cannot be started, and `Interrupted` once the tool has exited
    when a stop signal was received while it ran (the sink has then seen all its output).
    """
    tool = Path(cmd[0]).name
    stop = _GracefulStop(tool, TERMINATE_AFTER.get(tool))
    if threading.current_thread() is not threading.main_thread():
        stop.proc = _start(cmd, cwd, env, own_session=False)
        return _drain(stop, sink, note)
    previous = {
        signum: signal.signal(signum, stop)
        for signum in STOP_SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN  # nohup, a background job: keep it
    }
    try:
        stop.proc = _start(cmd, cwd, env, own_session=True)
        if stop.signum is not None:  # received while the tool was being started
            stop.forward()
        code = _drain(stop, sink, note)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if stop.signum is not None:
        raise Interrupted(stop.tool, stop.signum, code)
    return code


def _start(
    cmd: Sequence[str], cwd: str | Path | None, env: Mapping[str, str] | None, own_session: bool
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=own_session,
    )


def _drain(stop: _GracefulStop, sink: Sink, note: Sink | None = None) -> int:
    """Hand every line (and the notes of the signal handler) to `sink`; wait for the exit.

    A thread reads the pipe, so a note shows while the tool is silent. Should the sink fail,
    the tool is stopped the graceful way too, and its output read to the end before raising.
    """
    proc, items = stop.proc, stop.items
    assert proc is not None and proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        try:
            for line in stdout:
                items.put(line.rstrip("\n"))
        finally:
            items.put(None)

    reader = threading.Thread(target=read, name=f"{stop.tool} output", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = items.get(timeout=stop.wait_limit())
            except queue.Empty:  # the SIGINT has not stopped it in time
                stop.terminate(f"{stop.terminate_after:g} s after the interrupt")
                continue
            if item is None:
                break
            (note if note is not None and isinstance(item, _Note) else sink)(item)
    except BaseException:
        stop.forward()
        raise
    finally:
        code = proc.wait()
        reader.join()
        stdout.close()
    return code
