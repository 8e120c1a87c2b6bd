"""duoctl verify: rake output parsing (both formats), JUnit reading, hop attribution, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from duoctl import verify
from duoctl.cli import main
from duoctl.verify import (
    HOP_GATEWAY,
    HOP_GITLAB,
    HOP_MODEL,
    HOP_SEAT,
    HOP_TLS,
    Check,
    CommandOutput,
    Report,
    Verifier,
    completion_check,
    junit_checks,
    parse_rake_output,
    render,
)

RULE = "═" * 60
NEWEST_OK = f"""{RULE}
GitLab Duo Self-Hosted Setup Verification
{RULE}
>> System info collected ✔
>> AI Gateway URL configured: http://10.0.2.10:5052 ✔
Verifying license access to code suggestions... ✔
>> AI Gateway server is accessible ✔
   Response time: 12ms
   Health status: Unknown
   mistral-7b-ollama (mistral): http://10.0.3.10:11434/v1 ✔
     Release state: GA | Provider: openai
     API token: Missing
   3 feature settings configured across 1 models ✔
     mistral-7b-ollama: 3 feature(s) assigned (code_generations, code_completions, duo_chat)
     ⚠ Model endpoint returned non-200 status
DIAGNOSTIC SUMMARY (sanitize before sharing with support)
{{"ai_gateway_url": "http://10.0.2.10:5052", "secret": "must not be shown ✗"}}
"""

NEWEST_GATEWAY_DOWN = f"""{RULE}
GitLab Duo Self-Hosted Setup Verification
{RULE}
>> System info collected ✔
>> AI Gateway URL configured: http://10.0.2.10:5052 ✔
Verifying license access to code suggestions... ✔
>> AI Gateway returned HTTP 502 ✗
rake aborted!
Cannot access AI Gateway. Possible causes:
- AI Gateway is not running
- 'ai_gateway_url' has an incorrect value
/opt/gitlab/embedded/service/gitlab-rails/ee/lib/gitlab/duo/verify.rb:98:in `verify_access!'
Tasks: TOP => gitlab:duo:verify_self_hosted_setup
(See full trace by running task with --trace)
"""

NEWEST_CONNECTION_ERROR = """>> AI Gateway URL configured: http://10.0.2.10:5052 ✔
Verifying license access to code suggestions... ✔
   Connection error: Errno::ECONNREFUSED - Failed to open TCP connection to 10.0.2.10:5052
rake aborted!
Cannot access AI Gateway. Possible causes:
"""

NEWEST_MODEL_FAILED = """>> AI Gateway server is accessible ✔
   mistral-7b-ollama (mistral): http://10.0.3.10:11434 ✔
     ✗ Model endpoint failed: Net::OpenTimeout
"""

LEGACY_OK = """This task will help you debug issues with your self-hosted Duo installation.
For additional logs, enable 'expanded_ai_logging' Feature flag

Verifying environmental variables...
>> 'AI_GATEWAY_URL' set to http://10.0.2.10:5052 ✔

Verifying license access to code suggestions...✔
Checking if AI Gateway is accessible...
>> AI Gateway server is accessible ✔
"""

LEGACY_NO_LICENSE = """Verifying environmental variables...
>> 'AI_GATEWAY_URL' set to http://10.0.2.10:5052 ✔

Verifying license access to code suggestions...✗
User root has no access to code suggestions, debugging cause
rake aborted!
License does not provide access to code suggestions, verify your license
Tasks: TOP => gitlab:duo:verify_self_hosted_setup
"""

LEGACY_NO_URL = """Verifying environmental variables...
rake aborted!
Set 'AI_GATEWAY_URL' to point to your AI Gateway Instance
"""


def statuses(checks: list[Check]) -> list[tuple[str, str, str]]:
    return [(c.status, c.name, c.hop) for c in checks]


def test_newest_format_success_gives_one_line_per_mark_and_hides_the_summary() -> None:
    checks = parse_rake_output(NEWEST_OK, 0)
    assert statuses(checks) == [
        ("pass", "System info collected", HOP_GITLAB),
        ("pass", "AI Gateway URL configured: http://10.0.2.10:5052", HOP_GATEWAY),
        ("pass", "Verifying license access to code suggestions", HOP_SEAT),
        ("pass", "AI Gateway server is accessible", HOP_GATEWAY),
        ("pass", "mistral-7b-ollama (mistral): http://10.0.3.10:11434/v1", HOP_MODEL),
        ("pass", "3 feature settings configured across 1 models", HOP_MODEL),
        ("warn", "Model endpoint returned non-200 status", HOP_MODEL),
    ]
    assert not any("secret" in c.name for c in checks)


def test_newest_format_gateway_down_names_the_gateway_hop_and_the_abort_message() -> None:
    checks = parse_rake_output(NEWEST_GATEWAY_DOWN, 1)
    failed = [c for c in checks if c.status == "fail"]
    assert [c.name for c in failed] == [
        "AI Gateway returned HTTP 502",
        "rake aborted: Cannot access AI Gateway. Possible causes:",
    ]
    assert {c.hop for c in failed} == {HOP_GATEWAY}
    assert "AI Gateway is not running" in failed[1].detail
    assert "Tasks:" not in failed[1].detail and ".rb:" not in failed[1].detail


def test_connection_error_line_is_a_gateway_failure() -> None:
    checks = parse_rake_output(NEWEST_CONNECTION_ERROR, 1)
    conn = [c for c in checks if c.name == "AI Gateway connection"]
    assert conn and conn[0].status == "fail" and conn[0].hop == HOP_GATEWAY
    assert "ECONNREFUSED" in conn[0].detail


def test_model_endpoint_failure_is_the_model_hop() -> None:
    checks = parse_rake_output(NEWEST_MODEL_FAILED, 0)
    assert ("fail", "Model endpoint failed: Net::OpenTimeout", HOP_MODEL) in statuses(checks)


def test_legacy_format_success() -> None:
    assert statuses(parse_rake_output(LEGACY_OK, 0)) == [
        ("pass", "'AI_GATEWAY_URL' set to http://10.0.2.10:5052", HOP_GATEWAY),
        ("pass", "Verifying license access to code suggestions", HOP_SEAT),
        ("pass", "AI Gateway server is accessible", HOP_GATEWAY),
    ]


def test_legacy_format_license_failure_is_the_seat_hop() -> None:
    failed = [c for c in parse_rake_output(LEGACY_NO_LICENSE, 1) if c.status == "fail"]
    assert [(c.name, c.hop) for c in failed] == [
        ("Verifying license access to code suggestions", HOP_SEAT),
        (
            "rake aborted: License does not provide access to code suggestions, "
            "verify your license",
            HOP_SEAT,
        ),
    ]


def test_legacy_format_missing_gateway_url() -> None:
    (check,) = parse_rake_output(LEGACY_NO_URL, 1)
    assert (check.status, check.hop) == ("fail", HOP_GATEWAY)
    assert "AI_GATEWAY_URL" in check.name


def test_non_zero_exit_without_abort_message_fails() -> None:
    (check,) = parse_rake_output("sudo: gitlab-rake: command not found", 1)
    assert check.status == "fail" and "exited with code 1" in check.name
    assert "command not found" in check.detail


def test_empty_output_fails() -> None:
    (check,) = parse_rake_output("", 0)
    assert check.status == "fail"


class FakeSsh:
    def __init__(self, result: CommandOutput | Exception) -> None:
        self.result = result
        self.commands: list[str] = []

    def run(self, command: str, timeout: float) -> CommandOutput:
        self.commands.append(command)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_rake_runs_the_task_for_the_user_with_sudo() -> None:
    ssh = FakeSsh(CommandOutput(0, LEGACY_OK, ""))
    checks = verify.rake_checks(ssh, "root")
    assert ssh.commands == ["sudo -n gitlab-rake 'gitlab:duo:verify_self_hosted_setup[root]'"]
    assert all(c.status == "pass" for c in checks)


def test_ssh_failure_is_a_gitlab_failure() -> None:
    (check,) = verify.rake_checks(FakeSsh(TimeoutError("timed out")), "root")
    assert (check.status, check.hop) == ("fail", HOP_GITLAB)
    assert "TimeoutError: timed out" in check.detail


def junit_case(name: str, props: dict[str, str], outcome: str = "") -> str:
    properties = "".join(f'<property name="{k}" value="{v}"/>' for k, v in props.items())
    return f'<testcase name="{name}"><properties>{properties}</properties>{outcome}</testcase>'


PORT_FAILURE = (
    "AssertionError: gateway port 5052 is bound to 0.0.0.0, every interface "
    "(must be the private address 10.0.2.10)&#10;assert not 'gateway port ...'"
)
JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">'
    + junit_case(
        "test_gateway_port_bound_to_private_address[ansible://gateway-vm-http]",
        {
            "check": "The gateway's ports listen on the private address only",
            "hop": HOP_GATEWAY,
            "params": "http",
            "host": "gateway-vm",
        },
        f'<failure message="{PORT_FAILURE}">trace</failure>',
    )
    + junit_case(
        "test_ollama_runs_model_on_gpu[ansible://ollama-vm]",
        {"check": "Ollama runs the model on the GPU", "hop": HOP_MODEL},
        '<skipped type="pytest.skip" message="no NVIDIA GPU on this host (nvidia-smi -L failed)">'
        "/x/test_ollama.py:60: no NVIDIA GPU</skipped>",
    )
    + junit_case(
        "test_gitlab_service_active_and_enabled[ansible://gitlab-vm]",
        {"check": "GitLab's service gitlab-runsvdir is running and enabled", "hop": HOP_GITLAB},
    )
    + junit_case(
        "test_gitlab_certificate_valid_for_domain[ansible://gitlab-vm]",
        {"hop": HOP_TLS},
        '<error message="failed on setup with &quot;Failed: gitlab_domain is not set&quot;">'
        "x</error>",
    )
    + "</testsuite></testsuites>"
)


def test_junit_report_becomes_named_checks() -> None:
    checks = junit_checks(JUNIT)
    assert [(c.status, c.hop, c.host) for c in checks] == [
        ("fail", HOP_GATEWAY, "gateway-vm"),
        ("skip", HOP_MODEL, ""),
        ("pass", HOP_GITLAB, ""),
        ("fail", HOP_TLS, ""),
    ]
    port = checks[0]
    assert port.name == "The gateway's ports listen on the private address only (http)"
    assert port.detail == (
        "gateway port 5052 is bound to 0.0.0.0, every interface "
        "(must be the private address 10.0.2.10)"
    )
    assert checks[1].detail == "no NVIDIA GPU on this host (nvidia-smi -L failed)"
    assert checks[3].name.startswith("test_gitlab_certificate_valid_for_domain")


def test_suite_that_crashed_is_reported() -> None:
    def crashed(inventory: Path, junit: Path) -> tuple[int, str]:
        return 4, "ERROR: file or directory not found: tests/infra"

    (check,) = verify.suite_checks(crashed, Path("inventory.yml"))
    assert check.status == "fail" and "exit 4" in check.detail


def report(*checks: Check, latency: int | None = None) -> Report:
    return Report(list(checks), latency)


def ok(source: str = "testinfra", hop: str = HOP_GITLAB) -> Check:
    return Check(source, "fine", "pass", hop)


def bad(hop: str, name: str = "broken", source: str = "testinfra") -> Check:
    return Check(source, name, "fail", hop, "because")


def test_all_passing_is_verified_with_latency() -> None:
    r = report(ok(), ok("rake"), Check("completion", "code completion", "pass", ""), latency=840)
    assert r.ok
    assert r.verdict() == (
        "Verified: GitLab → gateway → model answered a code completion in 840 ms."
    )


def test_checks_without_completion_do_not_claim_one() -> None:
    assert report(ok(), ok("rake")).verdict() == (
        "Verified: every check passed (rake, testinfra; no completion asked)."
    )


def test_no_check_at_all_is_not_ok() -> None:
    assert not report().ok


@pytest.mark.parametrize(
    ("failures", "hop"),
    [
        ([bad(HOP_MODEL), bad(HOP_MODEL, source="rake")], HOP_MODEL),
        ([bad(HOP_GATEWAY, source="rake"), bad(HOP_MODEL)], HOP_GATEWAY),
        ([bad(HOP_SEAT, source="completion")], HOP_SEAT),
        ([bad(HOP_TLS), bad(HOP_GATEWAY)], HOP_TLS),
        ([bad(HOP_TLS), bad(HOP_GITLAB)], HOP_GITLAB),
    ],
)
def test_broken_hop_is_the_first_along_the_path(failures: list[Check], hop: str) -> None:
    r = report(ok(), *failures, bad("", source="completion"))
    assert r.broken_hops()[0] == hop
    assert r.verdict().startswith(f"Broken hop: {hop}")
    assert "evidence: broken: because" in r.verdict()


def test_only_the_completion_failing_points_at_the_gateway_log() -> None:
    r = report(ok(), ok("rake"), bad("", source="completion"))
    assert r.verdict().startswith("Broken hop: GitLab → gateway → model (only the completion")
    assert "docker logs ai-gateway" in r.verdict()


def test_render_groups_by_source_and_names_each_check() -> None:
    r = report(
        Check("testinfra", "Ollama's service is running", "pass", HOP_MODEL, host="ollama-vm"),
        Check("testinfra", "gateway ports private", "fail", HOP_GATEWAY, "port 5052 on 0.0.0.0"),
        Check("rake", "Model endpoint returned non-200 status", "warn", HOP_MODEL),
        Check("completion", "code completion through GitLab", "pass", "", "812 ms"),
        latency=812,
    )
    r.seconds = {"testinfra": 9.4}
    text = render(r)
    assert "Hosts (testinfra suite tests/infra): 1 passed, 1 failed in 9 s" in text
    assert "  ✔ [ollama-vm] Ollama's service is running" in text
    assert "  ✗ gateway ports private: port 5052 on 0.0.0.0" in text
    assert "1 warnings" in text and "  ⚠ Model endpoint returned non-200 status" in text
    assert "\nBroken hop: GitLab → gateway\n  evidence: gateway ports private" in text


class FakeResponse(requests.Response):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__()
        self.status_code = status
        self._content = (body if isinstance(body, str) else json.dumps(body)).encode()


class FakeSession(requests.Session):
    def __init__(self, answer: FakeResponse | Exception) -> None:
        super().__init__()
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kw: Any) -> Any:  # type: ignore[override]
        self.calls.append({"url": url, "json": json, **kw})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def tick() -> Any:
    times = iter([10.0, 10.25])
    return lambda: next(times)


def test_completion_success_reports_latency_and_text() -> None:
    session = FakeSession(FakeResponse(200, {"choices": [{"text": "    if n < 2:\n"}]}))
    check, latency = completion_check(session, "https://gl.example", "tok", clock=tick())
    assert (check.status, latency) == ("pass", 250)
    assert check.detail == "250 ms, returned 'if n < 2:'"
    call = session.calls[0]
    assert call["url"] == "https://gl.example/api/v4/code_suggestions/completions"
    assert call["headers"] == {"Authorization": "Bearer tok"}
    assert call["json"]["current_file"]["file_name"] == "fibonacci.py"
    assert set(call["json"]["current_file"]) == {
        "file_name",
        "content_above_cursor",
        "content_below_cursor",
    }


@pytest.mark.parametrize(
    ("answer", "hop", "words"),
    [
        (FakeResponse(401, {"message": "401 Unauthorized"}), HOP_SEAT, "no GitLab Duo seat"),
        (FakeResponse(403, {"message": "403 Forbidden"}), HOP_SEAT, "403"),
        (FakeResponse(404, {"message": "404 Not Found"}), HOP_GITLAB, "not available"),
        (FakeResponse(502, "Bad Gateway"), "", "502 Bad Gateway"),
        (FakeResponse(200, {"id": "x"}), HOP_MODEL, "no choices"),
        (FakeResponse(200, {"choices": [{"text": "  "}]}), HOP_MODEL, "empty completion"),
        (requests.exceptions.SSLError("self-signed certificate"), HOP_TLS, "TLS error"),
        (requests.exceptions.ConnectionError("refused"), HOP_GITLAB, "cannot reach"),
        (requests.exceptions.ReadTimeout("slow"), "", "cold model"),
    ],
)
def test_completion_failures_name_their_hop(
    answer: FakeResponse | Exception, hop: str, words: str
) -> None:
    check, _ = completion_check(FakeSession(answer), "https://gl.example", "tok", clock=tick())
    assert (check.status, check.hop) == ("fail", hop)
    assert words in check.detail


def test_verifier_gathers_every_source_even_after_failures(tmp_path: Path) -> None:
    def suite(inventory: Path, junit: Path) -> tuple[int, str]:
        junit.write_text(JUNIT)
        return 1, ""

    verifier = Verifier(
        suite=suite,
        rake=FakeSsh(CommandOutput(1, NEWEST_GATEWAY_DOWN, "")),
        session=FakeSession(FakeResponse(502, "Bad Gateway")),
    )
    result = verifier.run(tmp_path / "inv.yml", "https://gl.example", "tok")
    assert {c.source for c in result.checks} == {"testinfra", "rake", "completion"}
    assert result.broken_hops()[0] == HOP_TLS
    assert not result.ok


def test_missing_token_is_a_failed_completion(tmp_path: Path) -> None:
    verifier = Verifier(suite=None, rake=None, session=FakeSession(FakeResponse(200, {})))
    (check,) = verifier.run(tmp_path / "inv.yml", "https://gl.example", None).checks
    assert check.status == "fail" and "--token-file" in check.detail


def test_bad_inventory_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yml"
    assert main(["verify", "--inventory", str(missing)]) == 2
    assert f"the inventory {missing} does not exist" in capsys.readouterr().err
    no_gitlab = tmp_path / "inv.yml"
    no_gitlab.write_text("all:\n  children:\n    ollama:\n      hosts: {o: {}}\n")
    assert main(["verify", "--inventory", str(no_gitlab)]) == 2
    assert "no host in the group gitlab" in capsys.readouterr().err


def test_token_and_ca_found_in_the_deploy_secrets(tmp_path: Path) -> None:
    """The deployment folder holds the inventory and its secrets/ side by side."""
    inventory = tmp_path / ".deploy" / "aws" / "inventory.yml"
    secrets = tmp_path / ".deploy" / "aws" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "gitlab_admin_token").write_text("glpat-x\n")
    dirs = verify.secrets_dirs(inventory, "aws")
    assert secrets in dirs
    found = verify.find_file(d / "gitlab_admin_token" for d in dirs)
    assert found is not None and verify.read_token(found) == "glpat-x"


def test_run_routes_every_line_to_the_caller(tmp_path: Path) -> None:
    lines: list[str] = []
    missing = verify.VerifyOptions(inventory=tmp_path / "missing.yml", out=lines.append)
    assert verify.run(missing) == 2
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  children:\n    gitlab:\n      hosts: {g: {}}\n")
    # No gitlab_url in the inventory: bad input, reported on stderr, nothing run.
    assert verify.run(verify.VerifyOptions(inventory=inventory, out=lines.append)) == 2
    assert lines == []


def test_unreadable_ca_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  vars: {gitlab_url: 'https://gitlab.example.com'}\n"
        "  children: {gitlab: {hosts: {g: {ansible_host: 203.0.113.10}}}}\n"
    )
    argv = ["verify", "--inventory", str(inventory), "--skip-suite", "--skip-rake"]
    assert main([*argv, "--ca-file", str(tmp_path / "missing.crt")]) == 2
    err = capsys.readouterr().err
    assert "--ca-file: cannot read" in err and "Traceback" not in err


def test_a_named_deployment_is_verified_from_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["verify", "--name", "staging", "--deploy-dir", str(tmp_path), "--skip-suite"]
    assert main(argv) == 2
    assert str(tmp_path / "staging" / "inventory.yml") in capsys.readouterr().err
    assert main(["verify", "--name", "../etc", "--deploy-dir", str(tmp_path)]) == 2
    assert "deployment name '../etc' is not valid" in capsys.readouterr().err
