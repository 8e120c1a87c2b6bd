"""`duoctl verify`: prove that a Duo request goes GitLab -> gateway -> model, or name the hop
that broke.

Three sources of evidence, gathered whatever the others say:
1. the testinfra suite `tests/infra` against the inventory's hosts (pytest in a subprocess,
   its JUnit report read back as one line per check);
2. `sudo gitlab-rake "gitlab:duo:verify_self_hosted_setup[<user>]"` on the GitLab host over SSH,
   its ✔/✗/⚠ lines read back (the 17.9-era and the newest output formats);
3. one real code completion, `POST /api/v4/code_suggestions/completions`, with the automation
   token, timed.
The report lists every check, then names the broken hop from the failures: TLS certificate,
GitLab, GitLab → gateway, gateway → model, seat/license.

The suite runner, the SSH runner and the HTTP session are constructor arguments of `Verifier`,
so tests point them at local targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import requests
import yaml

from duoctl import ssh
from duoctl.token import TokenFileError, read_token_file

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

HOP_TLS = "TLS certificate"
HOP_GITLAB = "GitLab"
HOP_GATEWAY = "GitLab → gateway"
HOP_MODEL = "gateway → model"
HOP_SEAT = "seat/license"
# Along the request's path: GitLab itself, its certificate, the user's seat, then the hops.
HOP_ORDER = (HOP_GITLAB, HOP_TLS, HOP_SEAT, HOP_GATEWAY, HOP_MODEL)

Status = Literal["pass", "fail", "warn", "skip"]
MARKS: dict[str, Status] = {"✔": "pass", "✗": "fail", "⚠": "warn", "⚡": "warn"}
SYMBOL = {"pass": "✔", "fail": "✗", "warn": "⚠", "skip": "-"}
RAKE_TASK = "gitlab:duo:verify_self_hosted_setup"
# The rake task's model lines: "<name> (<family>): <endpoint>".
MODEL_LINE = re.compile(r"^\S.* \([\w-]+\): \S+$")
COMPLETIONS_PATH = "/api/v4/code_suggestions/completions"
COMPLETION_PROMPT = {
    "current_file": {
        "file_name": "fibonacci.py",
        "content_above_cursor": 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
        "content_below_cursor": "",
    },
    "intent": "completion",
    "stream": False,
}


@dataclass
class Check:
    source: str  # testinfra | rake | completion
    name: str
    status: Status
    hop: str
    detail: str = ""
    host: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    completion_latency_ms: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # time each source took

    @property
    def ok(self) -> bool:
        return not self.failures and any(c.status == "pass" for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def broken_hops(self) -> list[str]:
        hops = {c.hop for c in self.failures if c.hop in HOP_ORDER}
        return [h for h in HOP_ORDER if h in hops]

    def verdict(self) -> str:
        if self.ok:
            latency = self.completion_latency_ms
            if latency is None:
                sources = sorted({c.source for c in self.checks})
                return f"Verified: every check passed ({', '.join(sources)}; no completion asked)."
            return f"Verified: GitLab → gateway → model answered a code completion in {latency} ms."
        hops = self.broken_hops()
        if not hops:
            if not self.failures:
                return "Nothing was verified: no check ran."
            return (
                "Broken hop: GitLab → gateway → model (only the completion failed; every other "
                "check passed: read the gateway container's log, `sudo docker logs ai-gateway`, "
                "for the model call)"
            )
        first = hops[0]
        evidence = [c for c in self.failures if c.hop == first]
        lines = [f"Broken hop: {first}" + (f" (also: {', '.join(hops[1:])})" if hops[1:] else "")]
        lines += [f"  evidence: {describe(c)}" for c in evidence[:5]]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "broken_hops": self.broken_hops(),
            "completion_latency_ms": self.completion_latency_ms,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "checks": [asdict(c) for c in self.checks],
        }


def describe(check: Check) -> str:
    where = f"[{check.host}] " if check.host else ""
    return f"{where}{check.name}" + (f": {check.detail}" if check.detail else "")


def render(report: Report) -> str:
    lines: list[str] = []
    titles = {
        "testinfra": "Hosts (testinfra suite tests/infra)",
        "rake": f"GitLab's own check (gitlab-rake {RAKE_TASK})",
        "completion": "End to end (one code completion through GitLab's API)",
    }
    for source, title in titles.items():
        checks = [c for c in report.checks if c.source == source]
        if not checks:
            continue
        counts = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "fail", "warn")}
        summary = ", ".join(
            f"{n} {s}ed" if s != "warn" else f"{n} warnings" for s, n in counts.items() if n
        )
        took = f" in {report.seconds[source]:.0f} s" if source in report.seconds else ""
        lines.append(f"{title}: {summary}{took}")
        lines += [f"  {SYMBOL[c.status]} {describe(c)}" for c in checks]
    lines.append(report.verdict())
    return "\n".join(lines)


# --- the testinfra suite -------------------------------------------------------------------


def junit_checks(xml_text: str) -> list[Check]:
    """One Check per test case of a pytest JUnit report written by the infra suite."""
    root = ET.fromstring(xml_text)  # noqa: S314 - our own pytest's report, not remote input
    checks = []
    for case in root.iter("testcase"):
        props = {str(p.get("name")): str(p.get("value", "")) for p in case.iter("property")}
        name = props.get("check") or str(case.get("name", "?"))
        if props.get("params"):
            name += f" ({props['params']})"
        status: Status = "pass"
        detail = ""
        outcomes: tuple[tuple[str, Status], ...] = (
            ("failure", "fail"),
            ("error", "fail"),
            ("skipped", "skip"),
        )
        for tag, outcome in outcomes:
            element = case.find(tag)
            if element is not None:
                status = outcome
                detail = _first_message(element.get("message") or element.text or "")
                break
        checks.append(
            Check("testinfra", name, status, props.get("hop", ""), detail, props.get("host", ""))
        )
    return checks


def _first_message(message: str) -> str:
    message = re.sub(r'^failed on setup with "', "", message.strip())
    message = re.sub(r"^(AssertionError|Failed|Skipped): ", "", message)
    message = re.sub(r"^.*?\.py:\d+: (Skipped: )?", "", message)
    return message.splitlines()[0].strip() if message else ""


class SuiteRunner(Protocol):
    def __call__(self, inventory: Path, junit: Path) -> tuple[int, str]: ...


@dataclass
class PytestSuite:
    """pytest over tests/infra with testinfra's ansible connection, in a subprocess."""

    suite: Path
    ssh_identity_file: str | None = None
    sudo: bool = True
    timeout: float = 1800

    def __call__(self, inventory: Path, junit: Path) -> tuple[int, str]:
        if importlib.util.find_spec("testinfra") is None:
            return 3, (
                "the infra suite needs pytest-testinfra in duoctl's environment: "
                "`make venv` (or pip install -e '.[dev]')"
            )
        cmd = [sys.executable, "-m", "pytest", str(self.suite), "-q", "-p", "no:cacheprovider"]
        cmd += ["--connection=ansible", f"--ansible-inventory={inventory}", f"--junitxml={junit}"]
        cmd += ["-o", "junit_family=xunit1"]
        if self.sudo:
            cmd.append("--sudo")
        if self.ssh_identity_file:
            cmd.append(f"--ssh-identity-file={self.ssh_identity_file}")
        try:
            # ansible-inventory and friends live beside this interpreter (a venv not activated).
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
            proc = subprocess.run(
                cmd,
                cwd=self.suite.parents[1],
                env={**os.environ, "PATH": path},
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"the infra suite did not finish within {self.timeout:.0f} s"
        return proc.returncode, proc.stdout + proc.stderr


def suite_checks(runner: SuiteRunner, inventory: Path) -> list[Check]:
    with tempfile.TemporaryDirectory(prefix="duo-verify-") as tmp:
        junit = Path(tmp) / "infra.xml"
        code, output = runner(inventory, junit)
        checks = junit_checks(junit.read_text(encoding="utf-8")) if junit.exists() else []
    if not checks or code not in (0, 1):
        tail = " | ".join(line for line in output.strip().splitlines()[-5:])
        checks.append(
            Check("testinfra", "infra suite ran", "fail", HOP_GITLAB, f"exit {code}: {tail}")
        )
    return checks


# --- the rake check ------------------------------------------------------------------------


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
    port: int = 22
    key_file: str | None = None
    connect_timeout: float = 30

    def run(self, command: str, timeout: float) -> CommandOutput:
        client = ssh.connect(self.host, self.port, self.user, self.key_file, self.connect_timeout)
        try:
            _, stdout, stderr = client.exec_command(command, timeout=timeout)
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            return CommandOutput(stdout.channel.recv_exit_status(), out, err)
        finally:
            client.close()


def rake_checks(runner: CommandRunner, user: str, timeout: float = 600) -> list[Check]:
    command = f"sudo -n gitlab-rake '{RAKE_TASK}[{user}]'"
    try:
        result = runner.run(command, timeout)
    except Exception as exc:  # any SSH failure is evidence too: GitLab's host is unreachable
        name = "SSH to the GitLab host"
        return [Check("rake", name, "fail", HOP_GITLAB, f"{type(exc).__name__}: {exc}")]
    return parse_rake_output(result.stdout + "\n" + result.stderr, result.exit_code)


# --- the completion ------------------------------------------------------------------------


def completion_check(
    session: requests.Session,
    gitlab_url: str,
    token: str,
    verify: bool | str = True,
    timeout: float = 180,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Check, int | None]:
    """One code completion through GitLab; the check and its latency in ms."""
    url = gitlab_url.rstrip("/") + COMPLETIONS_PATH
    name = "code completion through GitLab"
    started = clock()
    try:
        resp = session.post(
            url,
            json=COMPLETION_PROMPT,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )
    except requests.exceptions.SSLError as exc:
        return Check("completion", name, "fail", HOP_TLS, f"TLS error from {url}: {exc}"), None
    except requests.exceptions.Timeout:
        detail = f"no answer within {timeout:.0f} s (a cold model? raise the gateway timeout)"
        return Check("completion", name, "fail", "", detail), None
    except requests.exceptions.RequestException as exc:
        return Check("completion", name, "fail", HOP_GITLAB, f"cannot reach {url}: {exc}"), None
    latency = round((clock() - started) * 1000)
    body = resp.text.strip().replace("\n", " ")[:300]
    if resp.status_code in (401, 403):
        detail = (
            f"GitLab answered {resp.status_code} {body}: the token is invalid, its user has no "
            "GitLab Duo seat, or Code Completion is not mapped to a self-hosted model "
            "(seats: and features: in duo.yml, then duoctl configure)"
        )
        return Check("completion", name, "fail", HOP_SEAT, detail), None
    if resp.status_code == 404:
        detail = f"GitLab answered 404 {body}: code suggestions are not available on this instance"
        return Check("completion", name, "fail", HOP_GITLAB, detail), None
    if resp.status_code != 200:
        return Check(
            "completion", name, "fail", "", f"GitLab answered {resp.status_code} {body}"
        ), None
    try:
        text = resp.json()["choices"][0]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Check(
            "completion", name, "fail", HOP_MODEL, f"no choices in the answer: {body}"
        ), None
    if not str(text).strip():
        detail = f"the model returned an empty completion after {latency} ms"
        return Check("completion", name, "fail", HOP_MODEL, detail), latency
    shown = str(text).strip().splitlines()[0][:60]
    return Check("completion", name, "pass", "", f"{latency} ms, returned {shown!r}"), latency


# --- inventory and files -------------------------------------------------------------------


class VerifyInputError(Exception):
    """Bad input: the message names the problem and the fix."""


@dataclass(frozen=True)
class Deployment:
    """What verify needs from the inventory."""

    all_vars: dict[str, Any]
    gitlab_host: dict[str, Any]  # merged variables of the first gitlab host

    @property
    def gitlab_url(self) -> str:
        url = self.all_vars.get("gitlab_url") or ""
        if not url and self.all_vars.get("gitlab_domain"):
            url = f"https://{self.all_vars['gitlab_domain']}"
        return str(url)

    @property
    def cloud(self) -> str:
        return str(self.all_vars.get("duo_cloud") or "")


def load_deployment(path: Path) -> Deployment:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VerifyInputError(
            f"cannot read the inventory {path}: {exc.strerror}. Pass --inventory FILE "
            "(written by `duoctl inventory aws|gcp`, or see inventory/hosts.example.yml)"
        ) from exc
    except yaml.YAMLError as exc:
        raise VerifyInputError(f"{path} is not valid YAML: {exc}") from exc
    top = data.get("all") if isinstance(data, dict) else None
    if not isinstance(top, dict):
        raise VerifyInputError(f"{path} is not an inventory: a top-level `all:` is expected")
    all_vars = dict(top.get("vars") or {})
    group = ((top.get("children") or {}).get("gitlab")) or {}
    hosts = group.get("hosts") or {}
    if not hosts:
        raise VerifyInputError(f"{path} has no host in the group gitlab (all: children: gitlab:)")
    name, host_vars = next(iter(hosts.items()))
    merged = {**all_vars, **(group.get("vars") or {}), **(host_vars or {})}
    merged.setdefault("ansible_host", name)
    return Deployment(all_vars, merged)


def ssh_runner_for(deployment: Deployment, key_file: str | None) -> SshRunner:
    host = deployment.gitlab_host
    return SshRunner(
        host=str(host["ansible_host"]),
        user=str(host.get("ansible_user", "ubuntu")),
        port=int(host.get("ansible_port", 22)),
        key_file=key_file or host.get("ansible_ssh_private_key_file"),
    )


def secrets_dirs(inventory: Path, cloud: str) -> list[Path]:
    """Where the deploy keeps the token and CA files for this inventory, most specific first."""
    dirs = []
    for base in (Path.cwd(), inventory.resolve().parent.parent):
        if cloud:
            dirs.append(base / ".deploy" / cloud / "secrets")
        dirs.append(base / ".deploy" / "secrets")
    return list(dict.fromkeys(dirs))


def find_file(candidates: Iterable[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def read_token(path: Path) -> str:
    try:
        return read_token_file(path)
    except TokenFileError as exc:
        raise VerifyInputError(str(exc)) from exc


def default_inventory() -> Path | None:
    for name in ("aws", "gcp", "hosts"):
        path = Path("inventory") / f"{name}.yml"
        if path.is_file():
            return path
    return None


def repo_suite() -> Path:
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "tests" / "infra" / "conftest.py").is_file():
                return candidate / "tests" / "infra"
    raise VerifyInputError(
        "the infra suite tests/infra was not found: run duoctl verify from the repository checkout"
    )


# --- the command ---------------------------------------------------------------------------


@dataclass
class Verifier:
    """Gathers the three kinds of evidence. Each collaborator can be swapped for a local one."""

    suite: SuiteRunner | None
    rake: CommandRunner | None
    session: requests.Session | None
    rake_user: str = "root"
    completion_timeout: float = 180
    log: Callable[[str], None] = lambda _line: None
    clock: Callable[[], float] = time.monotonic

    def run(
        self, inventory: Path, gitlab_url: str, token: str | None, verify: bool | str = True
    ) -> Report:
        report = Report()
        if self.suite is not None:
            self.log("running the infra suite on the hosts ...")
            started = self.clock()
            report.checks += suite_checks(self.suite, inventory)
            report.seconds["testinfra"] = self.clock() - started
        if self.rake is not None:
            self.log(f"running gitlab-rake {RAKE_TASK}[{self.rake_user}] on the GitLab host ...")
            started = self.clock()
            report.checks += rake_checks(self.rake, self.rake_user)
            report.seconds["rake"] = self.clock() - started
        if self.session is not None:
            self.log(f"asking {gitlab_url} for a code completion ...")
            if token is None:
                report.checks.append(
                    Check(
                        "completion",
                        "code completion through GitLab",
                        "fail",
                        HOP_SEAT,
                        "no automation token: pass --token-file (the deploy writes "
                        ".deploy/<cloud>/secrets/gitlab_admin_token)",
                    )
                )
            else:
                check, latency = completion_check(
                    self.session, gitlab_url, token, verify, self.completion_timeout
                )
                report.checks.append(check)
                report.completion_latency_ms = latency
        return report


def _completion_inputs(
    args: argparse.Namespace, inventory: Path, deployment: Deployment
) -> tuple[str, str | None, bool | str]:
    """GitLab's URL, the automation token and the TLS verification setting for the completion."""
    gitlab_url = args.gitlab_url or deployment.gitlab_url
    if not gitlab_url:
        raise VerifyInputError(f"{inventory} sets neither gitlab_url nor gitlab_domain")
    dirs = secrets_dirs(inventory, deployment.cloud)
    token_file = Path(args.token_file) if args.token_file else None
    token_file = token_file or find_file(d / "gitlab_admin_token" for d in dirs)
    token = read_token(token_file) if token_file else os.environ.get("GITLAB_TOKEN") or None
    ca_file = args.ca_file or find_file(d / "gitlab_ca.crt" for d in dirs)
    return gitlab_url, token, str(ca_file) if ca_file else True


def _print(line: str) -> None:
    print(line, flush=True)


def run(
    inventory: Path,
    *,
    token_file: Path | None = None,
    ca_file: Path | None = None,
    ssh_key: str | None = None,
    out: Callable[[str], None] = _print,
) -> int:
    """`duoctl verify --inventory INVENTORY` for callers that route the output themselves."""
    args = argparse.Namespace(
        inventory=str(inventory),
        token_file=str(token_file) if token_file else None,
        ca_file=str(ca_file) if ca_file else None,
        gitlab_url=None,
        ssh_key=ssh_key,
        user="root",
        timeout=180.0,
        no_sudo=False,
        skip_suite=False,
        skip_rake=False,
        skip_completion=False,
        json=False,
    )
    return main(args, out)


def main(args: argparse.Namespace, out: Callable[[str], None] = _print) -> int:
    try:
        inventory = Path(args.inventory) if args.inventory else default_inventory()
        if inventory is None:
            raise VerifyInputError(
                "no inventory: pass --inventory FILE (inventory/aws.yml after `make deploy-aws`)"
            )
        if not inventory.exists():
            raise VerifyInputError(
                f"the inventory {inventory} does not exist: pass --inventory FILE (written by "
                "`duoctl inventory aws|gcp`, or see inventory/hosts.example.yml)"
            )
        suite = None
        if not args.skip_suite:
            suite = PytestSuite(repo_suite(), args.ssh_key, sudo=not args.no_sudo)
        # The rake check and the completion need the contract's inventory shape; the suite
        # takes any inventory Ansible reads (a Molecule inventory directory too).
        rake: CommandRunner | None = None
        gitlab_url, token = "", None
        tls_verify: bool | str = True
        if not (args.skip_rake and args.skip_completion):
            deployment = load_deployment(inventory)
            if not args.skip_rake:
                rake = ssh_runner_for(deployment, args.ssh_key)
            if not args.skip_completion:
                gitlab_url, token, tls_verify = _completion_inputs(args, inventory, deployment)
    except VerifyInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    log = (lambda _line: None) if args.json else out
    verifier = Verifier(
        suite=suite,
        rake=rake,
        session=None if args.skip_completion else requests.Session(),
        rake_user=args.user,
        completion_timeout=args.timeout,
        log=log,
    )
    report = verifier.run(inventory, gitlab_url, token, tls_verify)
    out(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else render(report))
    return EXIT_OK if report.ok else EXIT_FAILED
