"""The Ansible steps: ansible-playbook on the deploy's inventory; a failure names the host,
the task and the message."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duoctl.pipeline import Context


def tool_path(name: str) -> str:
    """A tool of this Python environment (the venv's ansible-playbook), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


ANSIBLE_TASK = re.compile(r"^TASK \[(?P<task>.+?)\] \**$")
MESSAGE_LIMIT = 600  # characters of a task's failure message in the step's explanation
ANSIBLE_FAILURE = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]]+)\](?P<rest>.*)$")
# Ansible's password lookup holds `<sha1 of the path>.ansible_lockfile` beside a secret while it
# reads or writes it.
LOOKUP_LOCK_GLOB = "*.ansible_lockfile"


def clear_stale_lookup_locks(secrets_dir: Path) -> list[Path]:
    """Remove the password lookup's lock files left in `secrets_dir`; return them.

    A worker stopped by Ctrl-C exits at once (os._exit), so a lock it held stays, and every
    later lookup of that secret fails after 7 s, on every run. Each playbook run of a
    deployment holds the deployment folder's lock, so no lookup of its secrets runs now.
    """
    stale = sorted(secrets_dir.glob(LOOKUP_LOCK_GLOB))
    for lock in stale:
        lock.unlink(missing_ok=True)
    return stale


def _failure_block(lines: list[str], start: int) -> tuple[str, bool]:
    """The first line of the `msg` of the failure at lines[start], and whether it was ignored."""
    rest = lines[start].partition("=>")[2].strip()
    message = ""
    if rest.startswith("{"):  # the default callback: the result as one JSON line
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(rest).get("msg", "")).splitlines()[0]
    offset = start + 1
    while offset < len(lines) and (not lines[offset] or lines[offset].startswith(" ")):
        text = lines[offset].strip()
        if not message and text.startswith("msg:"):
            message = text.removeprefix("msg:").strip().strip("'\"")
            if message in ("", "|-", "|", ">-", ">") and offset + 1 < len(lines):
                message = lines[offset + 1].strip()
            else:  # a long plain message: the yaml callback folds it onto deeper lines
                indent = len(lines[offset]) - len(lines[offset].lstrip())
                following = lines[offset + 1 :]
                for more in following:
                    if not more.strip() or len(more) - len(more.lstrip()) <= indent:
                        break
                    message = f"{message} {more.strip()}"
                message = message.strip("'\"")[:MESSAGE_LIMIT]
        offset += 1
    ignored = offset < len(lines) and lines[offset].startswith("...ignoring")
    return message, ignored


def ansible_failures(lines: list[str]) -> str:
    """One line per failed task of ansible-playbook's output: host, task, first message line."""
    found: list[str] = []
    task = "?"
    for index, line in enumerate(lines):
        if match := ANSIBLE_TASK.match(line):
            task = match["task"]
        elif match := ANSIBLE_FAILURE.match(line):
            message, ignored = _failure_block(lines, index)
            if ignored:
                continue
            kind = "unreachable" if "UNREACHABLE!" in match["rest"] else "failed"
            where = f"{match['host']} {kind} at [{task}]"
            found.append(f"{where}: {message}" if message else where)
    return "\n".join(dict.fromkeys(found))


@dataclass
class PlaybookStep:
    """ansible-playbook PLAYBOOK -i INVENTORY, with the deploy's secrets directory."""

    name: str
    playbook: str  # relative to the repository root
    executable: str | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    private_key: str | None = None  # the deploy's SSH key; None: ssh-agent and ~/.ssh defaults

    def run(self, ctx: Context) -> None:
        root = ctx.paths.repo
        ctx.paths.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for lock in clear_stale_lookup_locks(ctx.paths.secrets_dir):
            ctx.progress.note(f"removed {lock.name}, left by an interrupted run's password lookup")
        extra: dict[str, Any] = {"duo_secrets_dir": str(ctx.paths.secrets_dir.resolve())}
        recorded = ctx.paths.recorded_gitlab_version()
        if recorded:  # upgraded: never back to the bundle's pin (an upgrade step sets its own)
            extra["duo_gitlab_version"] = recorded
        extra.update(self.extra_vars)
        cmd = [self.executable or tool_path("ansible-playbook"), str(root / self.playbook)]
        cmd += ["-i", str(ctx.paths.inventory.resolve()), "-e", json.dumps(extra)]
        if self.private_key:
            cmd += ["--private-key", self.private_key]
        config = root / "ansible" / "ansible.cfg"
        env = {"ANSIBLE_CONFIG": str(config)} if config.exists() else {}
        if ctx.paths.ssh_config.is_file():
            # The deployment's known_hosts and jump host, for any inventory (own hosts too);
            # ssh hands -F on to the ProxyJump connection.
            env["ANSIBLE_SSH_EXTRA_ARGS"] = f"-F {ctx.paths.ssh_config}"
        cwd = config.parent if config.exists() else root
        ctx.run_command(cmd, cwd=cwd, env=env, explain=ansible_failures)
