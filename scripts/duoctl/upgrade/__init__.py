"""`duoctl upgrade`: GitLab through its required upgrade stops, the AI gateway along.

planner: the stops (required_stops, overridable) and the hops; command: the CLI's entry;
steps: what one hop runs; gitlab: the version and migrations read from GitLab's API.
"""

from duoctl.upgrade.command import UpgradeOptions, main

__all__ = ["UpgradeOptions", "main"]
