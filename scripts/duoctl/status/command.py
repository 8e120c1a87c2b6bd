"""`duoctl status` (being written)."""

from __future__ import annotations

from duoctl.errors import DuoctlError
from duoctl.status.options import StatusOptions


def run(options: StatusOptions) -> int:
    raise DuoctlError("duoctl status is not finished yet", "use duoctl verify meanwhile")
