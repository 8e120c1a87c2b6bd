"""`duoctl status`: one screen on a deployment, read-only (see command.py)."""

from duoctl.status.options import StatusOptions


def run(options: StatusOptions) -> int:
    from duoctl.status.command import run as run_status

    return run_status(options)


__all__ = ["StatusOptions", "run"]
