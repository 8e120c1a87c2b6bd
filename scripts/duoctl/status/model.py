"""The status report: one pydantic model, which is also the `--json` schema (version 1).

The schema is checked in beside this module (schema.json, written by `python -m
duoctl.status.model`) and a test compares the two: a change to the JSON output is a change
to that file, made on purpose. Fields are only ever added; a removal or a change of meaning
raises SCHEMA_VERSION.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1
SCHEMA_FILE = Path(__file__).with_name("schema.json")

State = Literal["up", "down", "unknown"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Service(_Model):
    """One service on a host: up, down (with the reason), or unknown (not checked)."""

    name: str
    state: State
    detail: str = ""


class HostStatus(_Model):
    """A host as SSH finds it (through the jump host for the private ones)."""

    name: str
    group: str  # gitlab, ai_gateway, ollama or vllm
    address: str
    state: State  # up: SSH answered
    reason: str = ""
    services: list[Service] = Field(default_factory=list)


class Versions(_Model):
    gitlab: str | None = None
    gateway_image: str | None = None  # the image reference the container runs (tag)
    gateway_digest: str | None = None  # repository digest of that image, when it has one
    model_server: str | None = None  # e.g. "ollama 0.6.2", "vllm 0.9.1"
    models: list[str] = Field(default_factory=list)  # what the model server serves


class GitLabModel(_Model):
    name: str
    family: str
    identifier: str
    endpoint: str | None = None


class FeatureMapping(_Model):
    feature: str
    provider: str
    model: str | None = None


class Seats(_Model):
    purchased: int
    assigned: int


class GitLabView(_Model):
    """What GitLab holds, through its GraphQL API (the configure queries)."""

    state: State
    reason: str = ""
    url: str | None = None
    version: str | None = None
    gateway_url: str | None = None
    models: list[GitLabModel] = Field(default_factory=list)
    features: list[FeatureMapping] = Field(default_factory=list)
    seats: Seats | None = None  # GitLab Duo Enterprise; None: no such add-on


class LastVerify(_Model):
    status: str  # done, failed, interrupted
    finished_at: str | None = None
    age_seconds: float | None = None
    age: str | None = None


class LastBench(_Model):
    run: str  # the bench/<run>/ folder
    age_seconds: float | None = None
    age: str | None = None
    knee: Any = None  # as results.json gives it


class GpuVm(_Model):
    """The cloud's view of the model server's VM (read-only API call)."""

    instance: str | None = None
    machine_type: str | None = None
    state: str  # the cloud's word: running, stopped, terminated...; unknown
    up: State
    reason: str = ""
    stopped_by_schedule: bool = False


class Cost(_Model):
    machine_type: str | None = None
    hourly_usd: float | None = None
    monthly_usd: float | None = None
    note: str = ""


class MonitoringTarget(_Model):
    """One scrape target of GitLab's Prometheus (GET /api/v1/targets, activeTargets)."""

    job: str
    instance: str
    health: State  # Prometheus' word: up, down, unknown (not scraped yet)
    last_error: str = ""


class MonitoringAlert(_Model):
    """One active alert of GitLab's Prometheus (GET /api/v1/alerts)."""

    name: str  # the alertname label
    instance: str = ""
    severity: str = ""
    state: Literal["pending", "firing"]
    summary: str = ""
    active_at: str | None = None


class Monitoring(_Model):
    """GitLab's bundled Prometheus, asked on the GitLab host (localhost:9090): what it scrapes
    and which alerts are active. up: it answered and every target is up, no alert firing;
    down: a target is down or an alert fires; unknown: it did not answer (reason)."""

    state: State
    reason: str = ""
    targets: list[MonitoringTarget] = Field(default_factory=list)
    alerts: list[MonitoringAlert] = Field(default_factory=list)


class StatusReport(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    target: str  # aws, gcp or hosts
    serving: str
    checked_at: str
    seconds: float
    ok: bool  # nothing is down
    down: list[str] = Field(default_factory=list)  # what is down, one line each
    versions: Versions
    hosts: list[HostStatus]
    gitlab: GitLabView
    verify: LastVerify | None = None
    bench: LastBench | None = None
    gpu_vm: GpuVm | None = None  # None: own hosts
    cost: Cost | None = None
    monitoring: Monitoring | None = None  # None: no GitLab host in the deployment


def json_schema() -> dict[str, Any]:
    return StatusReport.model_json_schema()


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
