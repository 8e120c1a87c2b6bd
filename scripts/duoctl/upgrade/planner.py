"""The upgrade plan: from the running GitLab version to the target, through the required stops.

`plan(current, target, stops)` returns the hops in order, the target last. A hop at a stop
GitLab wants at its newest patch (`latest_patch`) names the minor only; the newest patch is
found on the GitLab host when the hop runs. Every hop moves the AI gateway to the newest
existing `self-hosted-vX.Y.*-ee` image of the hop's X.Y (the ai_gateway role resolves it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from duoctl.errors import EXIT_BAD_INPUT, EXIT_OK, DuoctlError
from duoctl.upgrade.required_stops import STOPS

# GitLab releases a minor a month: X.0 to X.11, then the next major.
LAST_MINOR = 11
VERSION = re.compile(r"^v?(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)(?:-ee(?:\.\d+)?)?$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str, what: str = "version") -> Version:
        match = VERSION.match(text.strip())
        if match is None:
            raise DuoctlError(
                f"{what} {text!r} is not a GitLab release version",
                "give it as X.Y.Z, for example 18.2.1 (a -ee suffix is accepted)",
            )
        version = cls(int(match["major"]), int(match["minor"]), int(match["patch"]))
        if version.minor > LAST_MINOR:
            raise DuoctlError(
                f"{what} {text!r} does not exist: GitLab's minor versions run from "
                f"{version.major}.0 to {version.major}.{LAST_MINOR}",
                "check the version on https://about.gitlab.com/releases/",
            )
        return version

    @property
    def minor_key(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Stop:
    """A required upgrade stop: the version the docs name (the least patch for latest_patch)."""

    version: Version
    latest_patch: bool = False
    condition: str = ""  # non-empty: required only for such instances
    by_rule: bool = False  # derived from the x.2/x.5/x.8/x.11 rule, not listed


@dataclass(frozen=True)
class StopList:
    stops: tuple[Stop, ...]
    source: str
    rule_from: Version | None = None
    rule_minors: tuple[int, ...] = ()

    @property
    def listed_major(self) -> int:
        return max(s.version.major for s in self.stops)

    @property
    def horizon_major(self) -> int:
        """The newest major the list speaks for: the last listed, plus one by the rule."""
        return self.listed_major + (1 if self.rule_minors else 0)

    def with_rule(self) -> list[Stop]:
        """The listed stops, then those of the majors the rule covers beyond the list."""
        extra = [
            Stop(Version(major, minor, 0), latest_patch=True, by_rule=True)
            for major in range(self.listed_major + 1, self.horizon_major + 1)
            for minor in self.rule_minors
        ]
        return sorted([*self.stops, *extra], key=lambda s: s.version)


@dataclass(frozen=True)
class Hop:
    """One upgrade: GitLab to `version` (its newest patch when `latest_patch`)."""

    version: Version
    latest_patch: bool = False
    reason: str = ""

    @property
    def label(self) -> str:
        """The version as the plan shows it: 18.2.x for a newest-patch hop."""
        if self.latest_patch:
            return f"{self.version.major}.{self.version.minor}.x"
        return str(self.version)

    @property
    def gateway_tag_pattern(self) -> str:
        return f"self-hosted-v{self.version.major}.{self.version.minor}.*-ee"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": str(self.version),
            "latest_patch": self.latest_patch,
            "reason": self.reason,
            "gateway_tag": self.gateway_tag_pattern,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hop:
        return cls(
            Version.parse(str(data["version"])),
            bool(data.get("latest_patch")),
            str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class Plan:
    current: Version
    target: Version
    hops: tuple[Hop, ...]
    skipped: tuple[Stop, ...] = field(default=())  # conditional stops left out
    source: str = ""

    def render(self, gateway: Mapping[tuple[int, int], str] | None = None) -> str:
        """The plan; `gateway` names each X.Y's gateway tag when the registry was read."""
        lines = [
            f"Upgrade plan: GitLab {self.current} -> {self.target}, {len(self.hops)} hop(s) "
            f"(required stops from {self.source})"
        ]
        width = len(str(len(self.hops)))
        for index, hop in enumerate(self.hops, start=1):
            image = (gateway or {}).get(hop.version.minor_key) or (
                f"{hop.gateway_tag_pattern} (newest existing)"
            )
            lines.append(
                f"  {index:>{width}}. GitLab {hop.label:<9} {hop.reason}\n"
                f"  {'':>{width}}  AI gateway {image}"
            )
        for stop in self.skipped:
            lines.append(
                f"  skipped: {stop.version} (required only for {stop.condition}; "
                "--all-stops stops there too)"
            )
        if any(hop.latest_patch for hop in self.hops):
            lines.append(
                "  X.Y.x: the newest X.Y patch in GitLab's package repository, read on the "
                "GitLab host when the hop runs."
            )
        return "\n".join(lines)


class AlreadyCurrent(DuoctlError):
    """The target is the running version: nothing to do (exit 0)."""

    def __init__(self, version: Version) -> None:
        super().__init__(f"GitLab is already at {version}: nothing to upgrade", "", EXIT_OK)


def _stop(entry: Any, where: str) -> Stop:
    if not isinstance(entry, dict) or "version" not in entry:
        raise DuoctlError(
            f"{where}: each stop must be a mapping with a version (got {entry!r})",
            'write it as {"version": "17.3.7", "latest_patch": true}',
        )
    unknown = set(entry) - {"version", "latest_patch", "condition"}
    if unknown:
        raise DuoctlError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} in stop {entry['version']}",
            "a stop has version, latest_patch (true/false) and condition (text) only",
        )
    return Stop(
        Version.parse(str(entry["version"]), f"{where}: stop"),
        latest_patch=bool(entry.get("latest_patch", False)),
        condition=str(entry.get("condition") or ""),
    )


def stop_list(data: Any, where: str = "the built-in upgrade stops") -> StopList:
    """A StopList from data of the required_stops shape; bad data is named with the fix."""
    if not isinstance(data, dict) or not isinstance(data.get("stops"), list) or not data["stops"]:
        raise DuoctlError(
            f"{where}: expected a mapping with a non-empty 'stops' list",
            "copy the shape of duoctl/upgrade/required_stops.py (source, rule, stops)",
        )
    stops = tuple(sorted((_stop(e, where) for e in data["stops"]), key=lambda s: s.version))
    rule = data.get("rule") or {}
    if not isinstance(rule, dict):
        raise DuoctlError(f"{where}: 'rule' must be a mapping", 'e.g. {"from": "17.5", ...}')
    minors = tuple(int(m) for m in rule.get("minors", []))
    if any(not 0 <= m <= LAST_MINOR for m in minors):
        raise DuoctlError(f"{where}: rule minors must be 0 to {LAST_MINOR}", "fix the rule")
    rule_from = Version.parse(f"{rule['from']}.0", f"{where}: rule") if "from" in rule else None
    return StopList(stops, str(data.get("source", where)), rule_from, minors)


def load_stops(path: Path | None) -> StopList:
    """The built-in stops, or those of a JSON/YAML file (the same shape)."""
    if path is None:
        return stop_list(STOPS)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DuoctlError(
            f"cannot read the upgrade stops file {path}: {exc.strerror}",
            "pass --upgrade-stops with a readable JSON file",
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DuoctlError(
            f"the upgrade stops file {path} is not valid JSON/YAML: {exc}",
            "fix its syntax (the shape of duoctl/upgrade/required_stops.py)",
        ) from None
    return stop_list(data, str(path))


def plan(
    current: Version, target: Version, stops: StopList | None = None, all_stops: bool = False
) -> Plan:
    """The hops from `current` to `target`; refusals are DuoctlError (exit 2) or AlreadyCurrent."""
    stops = stops or stop_list(STOPS)
    if target == current:
        raise AlreadyCurrent(current)
    if target < current:
        raise DuoctlError(
            f"GitLab {target} is older than the running {current}: GitLab cannot be downgraded",
            "give a newer --gitlab-version; going back means restoring a backup taken before "
            "the upgrade",
            EXIT_BAD_INPUT,
        )
    first = stops.stops[0].version
    if current.major < first.major:
        raise DuoctlError(
            f"the running GitLab {current} is older than the upgrade stops duoctl knows "
            f"(from {first})",
            f"upgrade it to {first} by hand first (see GitLab's documentation archives)",
        )
    if target.major > stops.horizon_major:
        raise DuoctlError(
            f"GitLab {target} is past what the upgrade stops cover (GitLab "
            f"{stops.horizon_major} at most; stops from {stops.source})",
            "check GitLab's upgrade paths page for the newer required stops and pass them with "
            "--upgrade-stops FILE",
        )
    hops: list[Hop] = []
    skipped: list[Stop] = []
    for stop in stops.with_rule():
        if not (current < stop.version and stop.version.minor_key < target.minor_key):
            continue
        if stop.condition and not all_stops:
            skipped.append(stop)
            continue
        reason = (
            f"required stop by the x.{'/x.'.join(map(str, stops.rule_minors))} rule "
            f"(GitLab {stop.version.major} is not in the list yet)"
            if stop.by_rule
            else "required stop" + (f" ({stop.condition})" if stop.condition else "")
        )
        hops.append(Hop(stop.version, stop.latest_patch, reason))
    hops.append(Hop(target, False, "target"))
    return Plan(current, target, tuple(hops), tuple(skipped), stops.source)
