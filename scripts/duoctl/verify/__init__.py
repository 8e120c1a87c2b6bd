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

Modules: report (checks, verdict, rendering), suite, rake, completion (the three sources),
inputs (inventory and files), command (the CLI entry point).
"""

from duoctl.verify.command import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Verifier, VerifyOptions, run
from duoctl.verify.completion import COMPLETIONS_PATH, completion_check
from duoctl.verify.inputs import (
    Deployment,
    VerifyInputError,
    find_file,
    load_deployment,
    read_token,
    secrets_dirs,
    ssh_runner_for,
)
from duoctl.verify.rake import CommandOutput, SshRunner, parse_rake_output, rake_checks
from duoctl.verify.report import (
    HOP_GATEWAY,
    HOP_GITLAB,
    HOP_MODEL,
    HOP_ORDER,
    HOP_SEAT,
    HOP_TLS,
    Check,
    Report,
    render,
)
from duoctl.verify.suite import PytestSuite, junit_checks, suite_checks

__all__ = [
    "COMPLETIONS_PATH",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "HOP_GATEWAY",
    "HOP_GITLAB",
    "HOP_MODEL",
    "HOP_ORDER",
    "HOP_SEAT",
    "HOP_TLS",
    "Check",
    "CommandOutput",
    "Deployment",
    "PytestSuite",
    "Report",
    "SshRunner",
    "Verifier",
    "VerifyInputError",
    "VerifyOptions",
    "completion_check",
    "find_file",
    "junit_checks",
    "load_deployment",
    "parse_rake_output",
    "rake_checks",
    "read_token",
    "render",
    "run",
    "secrets_dirs",
    "ssh_runner_for",
    "suite_checks",
]
