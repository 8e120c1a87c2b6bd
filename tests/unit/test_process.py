"""duoctl.process: a tool's output streamed to the end, and a stop signal forwarded once.

Real child processes (small Python scripts). The test process signals itself from within the
sink (which runs in the main thread), as a terminal's Ctrl-C or a `kill` would.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
from duoctl import process
from duoctl.process import Interrupted

# Traps SIGINT and counts it; after the first one it keeps working until the test lets it go
# (the MARKER file), so a wrongly forwarded second signal would be counted; then it prints
# a lot (all of it must reach the sink), writes the count to MARKER.count and exits with 130
# like a tool stopped by Ctrl-C.
TRAPPING_CHILD = """
import os, signal, sys, time
marker = sys.argv[1]
count = 0
def on_sigint(signum, frame):
    global count
    count += 1
    print(f"child got SIGINT #{count}", flush=True)
signal.signal(signal.SIGINT, on_sigint)
print(f"ready pid={os.getpid()} sid={os.getsid(0)}", flush=True)
deadline = time.monotonic() + 120
while count == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
while not os.path.exists(marker) and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.3)
for i in range(3000):
    print(f"saving {i}")
print(f"child stopped after {count} SIGINT", flush=True)
with open(marker + ".count", "w") as counted:
    counted.write(str(count))
sys.exit(130)
"""

# Ignores SIGINT for a moment (until MARKER exists), then finishes its work and exits 0.
IGNORING_CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.01)
print("finished anyway", flush=True)
"""


@pytest.fixture
def guard() -> Iterator[list[int]]:
    """Handlers that record a stop signal reaching the test process itself (none should while
    `process.run` runs): a broken `run` fails the test instead of stopping pytest."""
    leaked: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        leaked.append(signum)

    saved = {s: signal.signal(s, record) for s in process.STOP_SIGNALS}
    try:
        yield leaked
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _signal_self(*signums: int) -> None:
    for signum in signums:
        os.kill(os.getpid(), signum)


def _handlers() -> dict[int, object]:
    return {s: signal.getsignal(s) for s in process.STOP_SIGNALS}


def _trapping_run(tmp_path: Path, first: int, later: tuple[int, ...]) -> tuple[list[str], int]:
    """Run TRAPPING_CHILD; send `first` when it is ready, `later` once it got its SIGINT."""
    marker = tmp_path / "marker"
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line.startswith("ready"):
            _signal_self(first)
        elif line == "child got SIGINT #1":
            _signal_self(*later)  # not forwarded: the child would count them
            marker.touch()

    with pytest.raises(Interrupted) as caught:
        process.run([sys.executable, "-c", TRAPPING_CHILD, str(marker)], sink)
    assert caught.value.signal == first
    assert caught.value.returncode == 130
    assert caught.value.tool == Path(sys.executable).name
    return seen, len(later)


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_is_forwarded_once_and_the_output_drained(
    tmp_path: Path, guard: list[int], first: signal.Signals
):
    before = _handlers()
    seen, later = _trapping_run(tmp_path, first, (signal.SIGINT, signal.SIGTERM))
    tool = Path(sys.executable).name
    stopping = f"stopping {tool} cleanly (it finishes what it is doing); wait..."
    assert seen.count(stopping) == 1
    assert seen.index(stopping) < seen.index("child got SIGINT #1")
    assert seen.count(f"still waiting for {tool} to stop") == later
    child = [line for line in seen if line.startswith(("saving", "child"))]
    assert child == [
        "child got SIGINT #1",
        *(f"saving {i}" for i in range(3000)),
        "child stopped after 1 SIGINT",
    ]
    assert _handlers() == before
    assert guard == []


def test_the_tool_runs_in_its_own_session(tmp_path: Path, guard: list[int]):
    seen, _ = _trapping_run(tmp_path, signal.SIGINT, ())
    ready = next(line for line in seen if line.startswith("ready"))
    pid, sid = (int(part.split("=")[1]) for part in ready.split()[1:])
    assert sid == pid != os.getsid(0)  # a session (and process group) of its own


def test_a_tool_that_ignores_the_signal_finishes_and_it_is_still_an_interrupt(
    tmp_path: Path, guard: list[int]
):
    marker = tmp_path / "marker"
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line == "ready":
            _signal_self(signal.SIGINT)
        elif line.startswith("stopping"):
            marker.touch()

    with pytest.raises(Interrupted, match="SIGINT received") as caught:
        process.run([sys.executable, "-c", IGNORING_CHILD, str(marker)], sink)
    assert caught.value.returncode == 0
    assert seen[-1] == "finished anyway"
    assert guard == []


def test_a_tool_that_stops_at_once_on_sigint(guard: list[int]):
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line == "ready":
            _signal_self(signal.SIGTERM)

    script = "import time\nprint('ready', flush=True)\ntime.sleep(300)"
    with pytest.raises(Interrupted, match="SIGTERM") as caught:
        process.run([sys.executable, "-c", script], sink)
    assert caught.value.returncode != 0  # Python's own KeyboardInterrupt
    assert any("KeyboardInterrupt" in line for line in seen)  # error output is merged


def test_without_a_signal_the_exit_code_is_returned_and_handlers_untouched(guard: list[int]):
    before = _handlers()
    seen: list[str] = []
    during: list[dict[int, object]] = []

    def sink(line: str) -> None:
        seen.append(line)
        during.append(_handlers())

    script = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)"
    assert process.run([sys.executable, "-c", script], sink, env={"PYTHONUNBUFFERED": "1"}) == 3
    assert seen == ["out", "err"]
    assert during[0][signal.SIGINT] != before[signal.SIGINT]  # taken over while it ran
    assert _handlers() == before


def test_cwd_and_env_are_passed(tmp_path: Path):
    seen: list[str] = []
    script = "import os\nprint(os.getcwd())\nprint(os.environ.get('DUO_TEST', '-'))"
    env = {**os.environ, "DUO_TEST": "given"}
    assert process.run([sys.executable, "-c", script], seen.append, cwd=tmp_path, env=env) == 0
    assert seen == [str(tmp_path), "given"]


def test_a_tool_that_cannot_start_raises_oserror_and_restores_the_handlers(
    tmp_path: Path, guard: list[int]
):
    before = _handlers()
    with pytest.raises(FileNotFoundError):
        process.run([str(tmp_path / "no-such-tool")], print)
    assert _handlers() == before


def test_a_failing_sink_stops_the_tool_cleanly_before_raising(tmp_path: Path, guard: list[int]):
    marker = tmp_path / "marker"
    marker.touch()  # the child finishes as soon as it got its SIGINT
    pids: list[int] = []

    def sink(line: str) -> None:
        if line.startswith("ready"):
            pids.append(int(line.split()[1].split("=")[1]))
            raise RuntimeError("the sink broke")

    with pytest.raises(RuntimeError, match="the sink broke"):
        process.run([sys.executable, "-c", TRAPPING_CHILD, str(marker)], sink)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # exited and reaped: nothing left behind
    assert guard == []


def test_from_another_thread_it_runs_plainly_in_our_session(guard: list[int]):
    before = _handlers()
    seen: list[str] = []
    codes: list[int] = []
    script = "import os\nprint(os.getsid(0))"

    def work(collect: Callable[[str], None]) -> None:
        codes.append(process.run([sys.executable, "-c", script], collect))

    worker = threading.Thread(target=work, args=(seen.append,))
    worker.start()
    worker.join(timeout=120)
    assert codes == [0]
    assert seen == [str(os.getsid(0))]
    assert _handlers() == before


def test_a_sink_failing_after_the_signal_sends_no_second_sigint(tmp_path: Path, guard: list[int]):
    marker = tmp_path / "marker"

    def sink(line: str) -> None:
        if line.startswith("ready"):
            _signal_self(signal.SIGINT)
        elif line == "child got SIGINT #1":
            marker.touch()
            raise RuntimeError("the sink broke")

    with pytest.raises(RuntimeError, match="the sink broke"):
        process.run([sys.executable, "-c", TRAPPING_CHILD, str(marker)], sink)
    assert (tmp_path / "marker.count").read_text() == "1"
    assert guard == []


# A tool that loses its SIGINT (as ansible-playbook can): it keeps going until SIGTERM.
DEAF_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
def term(signum, frame):
    print("child got SIGTERM", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
time.sleep(120)
"""


def _deaf_tool(tmp_path: Path) -> list[str]:
    """DEAF_CHILD under a name TERMINATE_AFTER knows."""
    tool = tmp_path / "deaf-tool"
    tool.write_text(f"#!{sys.executable}\n{DEAF_CHILD}")
    tool.chmod(0o755)
    return [str(tool)]


def test_a_tool_that_loses_its_sigint_is_terminated_after_its_grace(
    tmp_path: Path, guard: list[int], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(process.TERMINATE_AFTER, "deaf-tool", 0.5)
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line == "ready":
            _signal_self(signal.SIGINT)

    started = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        process.run(_deaf_tool(tmp_path), sink)
    assert caught.value.returncode == 143
    assert time.monotonic() - started < 30
    assert "deaf-tool has not stopped (0.5 s after the interrupt): terminating it" in seen
    assert seen[-1] == "child got SIGTERM"
    assert guard == []


def test_a_second_stop_signal_terminates_such_a_tool_at_once(
    tmp_path: Path, guard: list[int], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(process.TERMINATE_AFTER, "deaf-tool", 600.0)
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line == "ready" or line.startswith("stopping"):
            _signal_self(signal.SIGINT)

    with pytest.raises(Interrupted) as caught:
        process.run(_deaf_tool(tmp_path), sink)
    assert caught.value.returncode == 143
    assert "deaf-tool has not stopped (asked again): terminating it" in seen
    assert guard == []


def test_terraform_is_never_terminated() -> None:
    assert "terraform" not in process.TERMINATE_AFTER


def test_duoctls_own_notes_go_to_the_note_sink_when_given(
    tmp_path: Path, guard: list[int], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(process.TERMINATE_AFTER, "deaf-tool", 0.5)
    seen: list[str] = []
    notes: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line == "ready":
            _signal_self(signal.SIGINT)

    with pytest.raises(Interrupted):
        process.run(_deaf_tool(tmp_path), sink, note=notes.append)
    assert notes == [
        "stopping deaf-tool cleanly (it finishes what it is doing); wait...",
        "deaf-tool has not stopped (0.5 s after the interrupt): terminating it",
    ]
    assert seen == ["ready", "child got SIGTERM"]
