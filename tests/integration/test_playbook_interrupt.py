"""Ctrl-C while a real ansible-playbook reads a secret through the password lookup, then the
re-run: the lookup's lock file the interrupted worker left must not fail every later run.

The playbook runs on localhost (connection: local) instead of over SSH: what matters here
happens on the controller, where the lookup and its lock live. The secret is a FIFO in the
first run, so the worker is certainly inside the lookup, holding the lock, when the SIGINT
comes; in production that is a matter of timing (seen at the gitlab role's first task).
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from duoctl import process
from duoctl.deploy.playbooks import PlaybookStep
from duoctl.folder import DeploymentFolder
from duoctl.pipeline import Context, Progress

PLAYBOOK = """\
- name: Read a secret the way the deployment's playbooks do
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Look the secret up
      ansible.builtin.debug:
        msg: >-
          {{ lookup('ansible.builtin.password', duo_secrets_dir ~ '/secret', length=16)
             | length }}
"""


def interrupt_when(path_glob: Path, signals: list[float]) -> threading.Thread:
    """Send this process SIGINT (a terminal's Ctrl-C reaching duoctl) once a lock file exists."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if list(path_glob.parent.glob(path_glob.name)):
                signals.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_an_interrupted_lookup_leaves_its_lock_and_the_rerun_removes_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "playbooks").mkdir(parents=True)
    (repo / "playbooks" / "read.yml").write_text(PLAYBOOK)
    folder = DeploymentFolder.of(tmp_path / ".deploy", "own", repo)
    folder.root.mkdir(parents=True)
    folder.inventory.write_text("all:\n  hosts:\n    localhost:\n")
    folder.secrets_dir.mkdir(mode=0o700)
    os.mkfifo(folder.secrets_dir / "secret")  # no writer: the lookup blocks holding its lock
    out = io.StringIO()
    ctx = Context("hosts", folder, Progress(folder.log_file, out))
    step = PlaybookStep("site", "playbooks/read.yml")

    sent: list[float] = []
    watcher = interrupt_when(folder.secrets_dir / "*.ansible_lockfile", sent)
    with pytest.raises(process.Interrupted):
        step.run(ctx)
    watcher.join()
    assert sent, "the lookup never took its lock"
    # Ansible's worker exits at once on the interrupt: its lock stays behind.
    [lock] = folder.secrets_dir.glob("*.ansible_lockfile")

    (folder.secrets_dir / "secret").unlink()
    step.run(ctx)  # without the clean-up: "Password lookup cannot get the lock in 7 seconds"

    assert not list(folder.secrets_dir.glob("*.ansible_lockfile"))
    assert len((folder.secrets_dir / "secret").read_text().strip()) == 16
    log = folder.log_file.read_text()
    assert f"removed {lock.name}, left by an interrupted run's password lookup" in log
