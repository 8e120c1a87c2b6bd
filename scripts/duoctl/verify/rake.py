"""Evidence 2: `gitlab-rake gitlab:duo:verify_self_hosted_setup[<user>]` on the GitLab host,
its check lines read back (the 17.9-era and the newest output formats)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from duoctl import ssh
from duoctl.deployment import check_user
from duoctl.verify.report import (
    HOP_GATEWAY,
    HOP_GITLAB,
    HOP_MODEL,
    HOP_SEAT,
    RAKE_TASK,
    Check,
    Status,
)

MARKS: dict[str, Status] = {"✔": "pass", "✗": "fail", "⚠": "warn", "⚡": "warn"}
# The rake task's model lines: "<name> (<family>): <endpoint>".
MODEL_LINE = re.compile(r"^\S.* \([\w-]+\): \S+$")


@dataclass(frozen=True)
class CommandOutput:
    exit_code: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    def run(self, command: str, timeout: float) -> CommandOutput: ...


def rake_hop(text: str) -> str:
    lower = text.lower()
    if any(w in lower for w in ("license", "code suggestions", "seat", "has no access")):
        return HOP_SEAT
    if MODEL_LINE.match(text):
        return HOP_MODEL
    if "ai gateway" in lower or "ai_gateway" in lower or "aigw" in lower:
        return HOP_GATEWAY
    if any(w in lower for w in ("model", "feature setting", "endpoint")):
        return HOP_MODEL
    return HOP_GITLAB


def _strip_marks(line: str) -> str:
    for mark in MARKS:
        line = line.replace(mark, "")
    return line.strip().removeprefix(">>").strip().rstrip(".").strip()


def parse_rake_output(output: str, exit_code: int) -> list[Check]:
    """The rake task's ✔/✗/⚠ lines as checks, plus its abort message when it raised."""
    checks: list[Check] = []
    lines = output.splitlines()
    abort: list[str] = []
    in_abort = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("DIAGNOSTIC SUMMARY"):
            break  # a JSON dump for support follows: not evidence, and not for the screen
        if line.startswith("rake aborted!"):
            in_abort = True
            continue
        if in_abort:
            if line.startswith(("Tasks:", "(See full trace")) or re.match(r"^/\S+:\d+:in ", line):
                in_abort = False
            elif line:
                abort.append(line)
            continue
        mark = next((m for m in MARKS if m in line), None)
        if mark:
            text = _strip_marks(line)
            checks.append(Check("rake", text, MARKS[mark], rake_hop(text)))
        elif line.startswith("Connection error:"):
            checks.append(Check("rake", "AI Gateway connection", "fail", HOP_GATEWAY, line))
    if abort:
        message = abort[0]
        detail = " ".join(abort[1:])
        checks.append(
            Check("rake", f"rake aborted: {message}", "fail", rake_hop(" ".join(abort)), detail)
        )
    elif exit_code != 0:
        tail = " | ".join(lines[-3:]) if lines else ""
        checks.append(
            Check("rake", f"gitlab-rake exited with code {exit_code}", "fail", HOP_GITLAB, tail)
        )
    if not checks:
        checks.append(
            Check("rake", "rake printed no check", "fail", HOP_GITLAB, output.strip()[-300:])
        )
    return checks


@dataclass
class SshRunner:
    """Runs one command on a host over SSH with paramiko (key file, agent or ~/.ssh keys)."""

    host: str
    user: str
    known_hosts: Path  # the deployment's: the same host keys as the SSH wait and Ansible
    port: int = 22
    key_file: str | None = None
    connect_timeout: float = 30

    def run(self, command: str, timeout: float) -> CommandOutput:
        client = ssh.connect(
            self.host, self.port, self.user, self.key_file, self.connect_timeout, self.known_hosts
        )
        try:
            _, stdout, stderr = client.exec_command(command, timeout=timeout)
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            return CommandOutput(stdout.channel.recv_exit_status(), out, err)
        finally:
            client.close()


def rake_checks(runner: CommandRunner, user: str, timeout: float = 600) -> list[Check]:
    command = f"sudo -n gitlab-rake {shlex.quote(f'{RAKE_TASK}[{check_user(user)}]')}"
    try:
        result = runner.run(command, timeout)
    except Exception as exc:  # any SSH failure is evidence too: GitLab's host is unreachable
        name = "SSH to the GitLab host"
        return [Check("rake", name, "fail", HOP_GITLAB, f"{type(exc).__name__}: {exc}")]
    return parse_rake_output(result.stdout + "\n" + result.stderr, result.exit_code)
