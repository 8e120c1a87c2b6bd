"""Command-line entry point: argument parsing and exit codes only.

Every subcommand is a thin call into a module of this package. Exit codes:
0 success, 1 the operation failed, 2 bad input (nothing was changed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from duoctl import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _add_configure(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "configure",
        help="Configure GitLab Duo Self-Hosted through the GitLab API from a YAML file",
    )
    p.add_argument("--config", required=True, help="duo.yml describing the desired state")
    p.add_argument("--gitlab-url", help="overrides gitlab.url in the file and $GITLAB_URL")
    p.add_argument(
        "--token-file",
        help="file holding an admin personal access token (default: $GITLAB_TOKEN)",
    )
    p.add_argument("--ca-file", help="CA bundle for a GitLab with a private CA")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run_configure)


def _run_configure(args: argparse.Namespace) -> int:
    from duoctl import configure

    return configure.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duoctl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"duoctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
