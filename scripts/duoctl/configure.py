"""`duoctl configure`: make GitLab's Duo Self-Hosted settings match a duo.yml file.

Reads the file (every problem reported before any request), reads GitLab's state,
plans, checks the plan's preconditions, then applies it in order, or only prints it
with --dry-run. A second run with the same file changes nothing.

Without an active GitLab Duo Enterprise add-on, an activation code (from a file or
$GITLAB_ACTIVATION_CODE) activates the subscription first; GitLab provisions the add-on
during that call, and the rest is then read, planned and applied. The code never appears
in output.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from duoctl.config import (
    ACTIVATION_CODE_ENV,
    ActivationCode,
    ActivationCodeError,
    ConfigError,
    DuoConfig,
    check_activation_code,
    load_config,
    read_activation_code_file,
)
from duoctl.errors import DuoctlError
from duoctl.gitlab_api import (
    DUO_ENTERPRISE,
    REDACTED,
    Capabilities,
    GitLabClient,
    GitLabError,
    describe_license,
)
from duoctl.reconcile import (
    Plan,
    activation_problems,
    apply_activation,
    apply_plan,
    make_plan,
    plan_activation,
)
from duoctl.token import TokenFileError, read_token_file

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

VERBS = {
    "activate": "activate",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "assign": "assign",
}
AFTER_ACTIVATION = (
    "the other changes are planned once the subscription is activated: GitLab shows its "
    "GitLab Duo settings only with an active GitLab Duo Enterprise add-on"
)


class InputError(DuoctlError):
    """A problem with the command line or the environment, found before any request."""


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class ConfigureOptions:
    """What `duoctl configure` takes: the desired state (a file, or a configuration built in
    Python by the deploy) and how to reach GitLab."""

    config: Path | DuoConfig
    gitlab_url: str | None = None
    token_file: Path | None = None  # None: $GITLAB_TOKEN
    ca_file: str | None = None
    activation_code_file: str | None = None
    dry_run: bool = False
    json: bool = False
    allow_http: bool = False  # send the token to a GitLab without TLS (labs only)
    out: Callable[[str], None] = _print


def resolve_url(options: ConfigureOptions, cfg: DuoConfig) -> str:
    url = options.gitlab_url or cfg.gitlab.url or os.environ.get("GITLAB_URL")
    if not url:
        raise InputError(
            "no GitLab URL: pass --gitlab-url, set gitlab.url in the file, or export GITLAB_URL"
        )
    if urlsplit(str(url)).scheme != "https" and not options.allow_http:
        raise InputError(
            f"{url} is not an https:// URL: the admin token would cross the network in clear. "
            "Use GitLab's https:// URL, or pass --allow-http for a lab GitLab without TLS"
        )
    return str(url).rstrip("/")


def check_ca_file(path: str | None) -> None:
    """A CA bundle that cannot be read is bad input, named before any request."""
    if path is None:
        return
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise InputError(
            f"--ca-file: cannot read {path}: {exc.strerror}; pass GitLab's CA certificate "
            "(a deployment with a private CA keeps it in .deploy/<name>/secrets/gitlab_ca.crt)"
        ) from None


def resolve_token(options: ConfigureOptions) -> str:
    if options.token_file:
        try:
            return read_token_file(options.token_file)
        except TokenFileError as exc:
            raise InputError(str(exc)) from exc
    token = os.environ.get("GITLAB_TOKEN", "").strip()
    if not token:
        raise InputError(
            "no GitLab token: pass --token-file FILE (a file holding an administrator's "
            "personal access token with the api scope) or export GITLAB_TOKEN"
        )
    return token


def resolve_activation_code(options: ConfigureOptions, cfg: DuoConfig) -> ActivationCode | None:
    """--activation-code-file, else license.activation_code_file, else $GITLAB_ACTIVATION_CODE.

    Read and checked before any request, like the token; None when none is given.
    """
    path = options.activation_code_file
    try:
        if path:
            return ActivationCode(read_activation_code_file(path), f"--activation-code-file {path}")
        if cfg.license.activation_code_file:
            return cfg.license.activation_code()
        if ACTIVATION_CODE_ENV in os.environ:
            source = f"${ACTIVATION_CODE_ENV}"
            return ActivationCode(
                check_activation_code(os.environ[ACTIVATION_CODE_ENV], source), source
            )
    except ActivationCodeError as exc:
        raise InputError(str(exc)) from None
    return None


def _describe(change: dict[str, Any]) -> str:
    details = change["details"]
    if change["kind"] == "license":
        return (
            f"subscription with the activation code from {details['code_from']} "
            f"(now: {details['current']})"
        )
    if change["kind"] == "allowlist":
        return f"outbound allowlist: add {', '.join(details['add'])}"
    if change["kind"] == "settings":
        return f"{change['target']}: {details['from']} -> {details['to']} ({details['why']})"
    if change["kind"] == "gateway":
        parts = [f"{k} {v['from']!r} -> {v['to']!r}" for k, v in details.items()]
        return f"gateway settings: {', '.join(parts)}"
    if change["kind"] == "model":
        if change["action"] == "update":
            parts = [
                k if v == "changed" else f"{k} {v['from']!r} -> {v['to']!r}"
                for k, v in details.items()
            ]
            return f"model {change['target']}: {', '.join(parts)}"
        shown = ", ".join(f"{k}={v}" for k, v in details.items())
        return f"model {change['target']} ({shown})"
    if change["kind"] == "feature":
        return f"feature {change['target']}: {details['from']} -> {details['to']}"
    return f"GitLab Duo Enterprise seat for {change['target']}"


def render_text(report: dict[str, Any]) -> str:
    lines = [f"GitLab {report['gitlab_version']} at {report['gitlab_url']}"]
    lines += [f"warning: {w}" for w in report["warnings"]]
    if not report["changes"]:
        lines.append("no changes: GitLab already matches the configuration")
        return "\n".join(lines)
    prefix = "would " if report["dry_run"] else ""
    for change in report["changes"]:
        verb = prefix + VERBS[change["action"]]
        lines.append(f"  {verb:15s} {_describe(change)}")
    count = len(report["changes"])
    lines.append(
        f"dry run: {count} change(s) planned, nothing changed"
        if report["dry_run"]
        else f"{count} change(s) applied"
    )
    return "\n".join(lines)


def _report(url: str, version: str, plan: Plan, dry_run: bool) -> dict[str, Any]:
    return {
        "gitlab_url": url,
        "gitlab_version": version,
        "dry_run": dry_run,
        "changed": bool(plan.changes) and not dry_run,
        "changes": [c.public() for c in plan.changes],
        "warnings": plan.warnings,
    }


def _fail(message: str, options: ConfigureOptions, code: int) -> int:
    if options.json:
        options.out(json.dumps({"error": message}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def _problems(problems: list[str], activated: bool) -> str:
    done = (
        "the subscription was activated, nothing else was changed"
        if activated
        else "nothing was changed"
    )
    return f"GitLab cannot take this configuration; {done}:\n" + "\n".join(
        f"  - {p}" for p in problems
    )


def _reread(client: GitLabClient) -> tuple[dict[str, Any], Capabilities]:
    """After an activation: read again what the add-on changes (its purchase, settings)."""
    settings = client.application_settings()
    caps = client.probe()
    if caps.purchase(DUO_ENTERPRISE) is None:
        raise GitLabError(
            f"the subscription was activated ({describe_license(caps.license)}) but has no "
            f"GitLab Duo Enterprise add-on with seats: add GitLab Duo Enterprise to the "
            f"subscription in the Customers Portal, synchronize it in Admin > Subscription, "
            f"then run again. Nothing else was changed."
        )
    return settings, caps


def for_instance(cfg: DuoConfig, caps: Capabilities) -> DuoConfig:
    """The configuration as this GitLab takes it: a Bedrock model given a region (and no
    endpoint) gets that region's runtime URL where every model needs an endpoint (before
    19.x); from 19.x it is registered with provider bedrock and no endpoint."""
    models = [
        m.model_copy(update={"endpoint": m.endpoint_for(caps.endpoint_required)})
        for m in cfg.models
    ]
    return cfg.model_copy(update={"models": models})


def run(options: ConfigureOptions) -> int:
    """`duoctl configure`: exit 0 when GitLab matches (or would), 1 on failure, 2 bad input."""
    try:
        cfg = (
            options.config if isinstance(options.config, DuoConfig) else load_config(options.config)
        )
        for model in cfg.models:
            model.api_key()  # an unset variable or unreadable file is bad input: stop here
        code = resolve_activation_code(options, cfg)
        url = resolve_url(options, cfg)
        check_ca_file(options.ca_file)
        token = resolve_token(options)
    except ConfigError as exc:
        return _fail(exc.render(), options, EXIT_BAD_INPUT)
    except InputError as exc:
        return _fail(str(exc), options, EXIT_BAD_INPUT)

    client = GitLabClient(url, token, ca_file=options.ca_file)
    activated = False
    try:
        settings = client.application_settings()
        caps = client.probe()
        cfg = for_instance(cfg, caps)
        activation = plan_activation(caps, code)
        if activation is not None:
            early = activation_problems(cfg, caps)
            if early:
                return _fail(_problems(early, False), options, EXIT_FAILED)
            if options.dry_run:
                plan = Plan(changes=[activation], warnings=[AFTER_ACTIVATION])
                report = _report(url, caps.version, plan, dry_run=True)
                options.out(json.dumps(report, indent=2) if options.json else render_text(report))
                return EXIT_OK
            apply_activation(client, activation)
            activated = True
            settings, caps = _reread(client)
            cfg = for_instance(cfg, caps)
        state = client.state(caps, settings, cfg.seats)
        plan = make_plan(cfg, caps, state)
        if plan.problems:
            return _fail(_problems(plan.problems, activated), options, EXIT_FAILED)
        if not options.dry_run:
            apply_plan(client, caps, state, plan)
        if activation is not None:
            plan.changes.insert(0, activation)
    except GitLabError as exc:
        message = str(exc)
        if code is not None:
            message = message.replace(code.value, REDACTED)
        if activated and "subscription was activated" not in message:
            message += " (The subscription was activated before this failure; run again.)"
        return _fail(message, options, EXIT_FAILED)
    finally:
        client.close()

    report = _report(url, caps.version, plan, options.dry_run)
    options.out(json.dumps(report, indent=2) if options.json else render_text(report))
    return EXIT_OK
