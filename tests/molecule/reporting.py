"""Timings of the Molecule scenarios run by this pytest process, printed by conftest.py."""

from __future__ import annotations

from dataclasses import dataclass, field

IDEMPOTENCE_GOAL_SECONDS = 30.0


@dataclass
class ScenarioReport:
    test_id: str
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    failed_stage: str | None = None


REPORTS: list[ScenarioReport] = []
