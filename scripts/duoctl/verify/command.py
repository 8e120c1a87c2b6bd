"""`duoctl verify`: gather the three kinds of evidence, print the report, exit 0 only when
every check passed."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from duoctl.configure import InputError, check_ca_file
from duoctl.deployment import check_user
from duoctl.errors import DuoctlError
from duoctl.verify.completion import completion_check
from duoctl.verify.inputs import (
    Deployment,
    VerifyInputError,
    default_inventory,
    find_file,
    load_deployment,
    read_token,
    repo_suite,
    secrets_dirs,
    ssh_runner_for,
)
from duoctl.verify.rake import CommandRunner, rake_checks
from duoctl.verify.report import HOP_SEAT, RAKE_TASK, Check, Report, render
from duoctl.verify.schedule import stopped_by_schedule
from duoctl.verify.suite import PytestSuite, SuiteRunner, suite_checks

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


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


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class VerifyOptions:
    """What `duoctl verify` takes. `progress` receives what it is doing meanwhile (default:
    `out` too, nothing with json)."""

    inventory: Path | None = None  # None: .deploy/aws (or gcp)/inventory.yml
    token_file: Path | None = None
    ca_file: str | None = None
    gitlab_url: str | None = None
    ssh_key: str | None = None
    known_hosts: Path | None = None  # None: known_hosts beside the inventory
    user: str = "root"
    timeout: float = 180.0
    sudo: bool = True
    suite: bool = True
    rake: bool = True
    completion: bool = True
    json: bool = False
    allow_http: bool = False
    out: Callable[[str], None] = _print
    progress: Callable[[str], None] | None = None
    cloud_client: Callable[[], Any] | None = None  # tests: the GPU VM's cloud API client


def _completion_inputs(
    options: VerifyOptions, inventory: Path, deployment: Deployment
) -> tuple[str, str | None, bool | str]:
    """GitLab's URL, the automation token and the TLS verification setting for the completion."""
    gitlab_url = options.gitlab_url or deployment.gitlab_url
    if not gitlab_url:
        raise VerifyInputError(f"{inventory} sets neither gitlab_url nor gitlab_domain")
    if not gitlab_url.startswith("https://") and not options.allow_http:
        raise VerifyInputError(
            f"{gitlab_url} is not an https:// URL: the token would cross the network in clear; "
            "use GitLab's https:// URL, or pass --allow-http for a lab GitLab without TLS"
        )
    dirs = secrets_dirs(inventory, deployment.cloud)
    token_file = options.token_file or find_file(d / "gitlab_admin_token" for d in dirs)
    token = read_token(token_file) if token_file else os.environ.get("GITLAB_TOKEN") or None
    ca_file = options.ca_file or find_file(d / "gitlab_ca.crt" for d in dirs)
    try:
        check_ca_file(str(ca_file) if ca_file else None)
    except InputError as exc:
        raise VerifyInputError(str(exc)) from None
    return gitlab_url, token, str(ca_file) if ca_file else True


def run(options: VerifyOptions) -> int:
    """`duoctl verify`: the report goes to `options.out`; exit 0 only when every check passed."""
    out = options.out
    try:
        check_user(options.user)
        inventory = options.inventory or default_inventory()
        if inventory is None:
            raise VerifyInputError(
                "no inventory: pass --inventory FILE (.deploy/aws/inventory.yml after "
                "`make deploy-aws`)"
            )
        if not inventory.exists():
            raise VerifyInputError(
                f"the inventory {inventory} does not exist: pass --inventory FILE (written by "
                "`duoctl inventory aws|gcp`, or see inventory/hosts.example.yml)"
            )
        suite = (
            PytestSuite(repo_suite(), options.ssh_key, sudo=options.sudo) if options.suite else None
        )
        # The rake check and the completion need the contract's inventory shape; the suite
        # takes any inventory Ansible reads (a Molecule inventory directory too).
        rake: CommandRunner | None = None
        gitlab_url, token = "", None
        tls_verify: bool | str = True
        if options.rake or options.completion:
            deployment = load_deployment(inventory)
            if options.rake:
                known_hosts = options.known_hosts or inventory.absolute().parent / "known_hosts"
                rake = ssh_runner_for(deployment, options.ssh_key, known_hosts)
            if options.completion:
                gitlab_url, token, tls_verify = _completion_inputs(options, inventory, deployment)
    except (VerifyInputError, DuoctlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # A GPU VM its office hours have stopped is not a failure: said, and nothing else runs.
    stopped = stopped_by_schedule(inventory, options.cloud_client)
    if stopped:
        document = {"ok": True, "gpu_vm_stopped_by_schedule": True, "detail": stopped}
        out(json.dumps(document, indent=2, ensure_ascii=False) if options.json else stopped)
        return EXIT_OK
    log = options.progress or ((lambda _line: None) if options.json else out)
    verifier = Verifier(
        suite=suite,
        rake=rake,
        session=requests.Session() if options.completion else None,
        rake_user=options.user,
        completion_timeout=options.timeout,
        log=log,
    )
    report = verifier.run(inventory, gitlab_url, token, tls_verify)
    out(
        json.dumps(report.to_json(), indent=2, ensure_ascii=False)
        if options.json
        else render(report)
    )
    return EXIT_OK if report.ok else EXIT_FAILED
