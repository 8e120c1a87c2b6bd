"""`duoctl configure`: make GitLab's Duo Self-Hosted settings match a duo.yml file.

Reads the file (every problem reported before any request), reads GitLab's state,
plans, checks the plan's preconditions, then applies it in order, or only prints it
with --dry-run. A second run with the same file changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from duoctl.config import ConfigError, DuoConfig, load_config
from duoctl.gitlab_api import GitLabClient, GitLabError
from duoctl.reconcile import Plan, apply_plan, make_plan
from duoctl.token import TokenFileError, read_token_file

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

VERBS = {"create": "create", "update": "update", "delete": "delete", "assign": "assign"}


class InputError(Exception):
    """A problem with the command line or the environment, found before any request."""


def resolve_url(args: argparse.Namespace, cfg: DuoConfig) -> str:
    url = args.gitlab_url or cfg.gitlab.url or os.environ.get("GITLAB_URL")
    if not url:
        raise InputError(
            "no GitLab URL: pass --gitlab-url, set gitlab.url in the file, or export GITLAB_URL"
        )
    return str(url).rstrip("/")


def resolve_token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            return read_token_file(args.token_file)
        except TokenFileError as exc:
            raise InputError(str(exc)) from exc
    token = os.environ.get("GITLAB_TOKEN", "").strip()
    if not token:
        raise InputError(
            "no GitLab token: pass --token-file FILE (a file holding an administrator's "
            "personal access token with the api scope) or export GITLAB_TOKEN"
        )
    return token


def _describe(change: dict[str, Any]) -> str:
    details = change["details"]
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


def _fail(message: str, as_json: bool, code: int) -> int:
    if as_json:
        print(json.dumps({"error": message}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        for model in cfg.models:
            model.api_key()  # an unset variable or unreadable file is bad input: stop here
        url = resolve_url(args, cfg)
        token = resolve_token(args)
    except ConfigError as exc:
        return _fail(exc.render(), args.json, EXIT_BAD_INPUT)
    except InputError as exc:
        return _fail(str(exc), args.json, EXIT_BAD_INPUT)

    client = GitLabClient(url, token, ca_file=args.ca_file)
    try:
        settings = client.application_settings()
        caps = client.probe()
        state = client.state(caps, settings, cfg.seats)
        plan = make_plan(cfg, caps, state)
        if plan.problems:
            message = "GitLab cannot take this configuration; nothing was changed:\n" + "\n".join(
                f"  - {p}" for p in plan.problems
            )
            return _fail(message, args.json, EXIT_FAILED)
        if not args.dry_run:
            apply_plan(client, caps, state, plan)
    except GitLabError as exc:
        return _fail(str(exc), args.json, EXIT_FAILED)
    finally:
        client.close()

    report = _report(url, caps.version, plan, args.dry_run)
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    return run(args)
