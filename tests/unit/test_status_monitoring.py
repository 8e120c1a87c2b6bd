"""duoctl status, monitoring: GitLab's Prometheus answers (recorded in the shapes of
https://prometheus.io/docs/prometheus/latest/querying/api/) read into the report, the `down`
lines, what the screen shows, and the check over a fake GitLab host."""

from __future__ import annotations

import json
import shlex
from typing import Any

from duoctl.status import command, monitoring
from duoctl.status.model import (
    HostStatus,
    Monitoring,
    MonitoringAlert,
    MonitoringTarget,
)
from duoctl.status.render import MONITORING_LINES, monitoring_lines, render
from duoctl.verify.rake import CommandOutput

from tests.unit.test_status import report  # a healthy deployment's full report


def target(job: str, instance: str, health: str = "up", error: str = "") -> dict[str, Any]:
    """An activeTargets item of GET /api/v1/targets?state=active."""
    return {
        "discoveredLabels": {
            "__address__": instance,
            "__metrics_path__": "/metrics",
            "__scheme__": "http",
            "job": job,
        },
        "labels": {"instance": instance, "job": job},
        "scrapePool": job,
        "scrapeUrl": f"http://{instance}/metrics",
        "globalUrl": f"http://{instance}/metrics",
        "lastError": error,
        "lastScrape": "2026-12-01T06:00:01.123456789Z",
        "lastScrapeDuration": 0.0043,
        "health": health,
        "scrapeInterval": "30s",
        "scrapeTimeout": "10s",
    }


REFUSED = (
    'Get "http://10.0.3.10:9100/metrics": dial tcp 10.0.3.10:9100: connect: connection refused'
)
TARGETS_UP = [
    target("duo-node", "10.0.2.10:9100"),
    target("duo-node", "10.0.3.10:9100"),
    target("duo-ai-gateway", "10.0.2.10:8082"),
]
HOST_DOWN_ALERT = {
    "labels": {
        "alertname": "DuoHostDown",
        "instance": "10.0.3.10:9100",
        "job": "duo-node",
        "severity": "critical",
    },
    "annotations": {
        "summary": "10.0.3.10:9100: the node exporter does not answer (host down or unreachable)"
    },
    "state": "firing",
    "activeAt": "2026-12-01T05:50:12.60602144Z",
    "value": "0e+00",
}
SLOW_ALERT = {
    "labels": {"alertname": "DuoGatewaySlow", "instance": "10.0.2.10:8082", "severity": "warning"},
    "annotations": {"summary": "10.0.2.10:8082: the gateway's p95 latency is over 1.5 s"},
    "state": "pending",
    "activeAt": "2026-12-01T05:59:00Z",
    "value": "2.1e+00",
}


def answer(data: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """One answer as the fetch script prints it: the HTTP status and Prometheus' envelope."""
    return {"status": status, "body": json.dumps({"status": "success", "data": data})}


def answers(targets: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "targets": answer({"activeTargets": targets, "droppedTargets": []}),
        "alerts": answer({"alerts": alerts}),
    }


def test_all_targets_up_and_no_alert_is_up() -> None:
    found = monitoring.monitoring_of(answers(TARGETS_UP, []))
    assert found.state == "up" and found.reason == "" and found.alerts == []
    assert [(t.job, t.instance, t.health) for t in found.targets] == [
        ("duo-ai-gateway", "10.0.2.10:8082", "up"),
        ("duo-node", "10.0.2.10:9100", "up"),
        ("duo-node", "10.0.3.10:9100", "up"),
    ]
    assert monitoring.down_lines(found) == []


def test_a_target_down_and_its_alert_firing_are_down_a_pending_one_is_not() -> None:
    targets = [*TARGETS_UP[:1], target("duo-node", "10.0.3.10:9100", "down", REFUSED)]
    found = monitoring.monitoring_of(answers(targets, [SLOW_ALERT, HOST_DOWN_ALERT]))
    assert found.state == "down"
    assert found.targets[1] == MonitoringTarget(
        job="duo-node", instance="10.0.3.10:9100", health="down", last_error=REFUSED
    )
    assert found.alerts == [
        MonitoringAlert(
            name="DuoHostDown",
            instance="10.0.3.10:9100",
            severity="critical",
            state="firing",
            summary="10.0.3.10:9100: the node exporter does not answer (host down or unreachable)",
            active_at="2026-12-01T05:50:12.60602144Z",
        ),
        MonitoringAlert(
            name="DuoGatewaySlow",
            instance="10.0.2.10:8082",
            severity="warning",
            state="pending",
            summary="10.0.2.10:8082: the gateway's p95 latency is over 1.5 s",
            active_at="2026-12-01T05:59:00Z",
        ),
    ]
    assert monitoring.down_lines(found) == [
        f"monitoring: duo-node target 10.0.3.10:9100 is down: {REFUSED}",
        "monitoring: alert DuoHostDown firing (critical): 10.0.3.10:9100: the node exporter "
        "does not answer (host down or unreachable)",
    ]


def test_odd_items_are_read_as_far_as_they_go() -> None:
    unknown = {"labels": {}, "scrapeUrl": "http://10.0.9.9:9100/metrics", "health": "unknown"}
    inactive = {**HOST_DOWN_ALERT, "state": "inactive"}
    found = monitoring.monitoring_of(answers([unknown, "junk"], [inactive, 7]))  # type: ignore[list-item]
    assert found.state == "up" and found.alerts == []
    assert found.targets == [
        MonitoringTarget(job="?", instance="http://10.0.9.9:9100/metrics", health="unknown")
    ]
    assert monitoring.down_lines(found) == []  # not scraped yet is not down


def test_prometheus_not_answering_is_unknown_with_the_reason_never_down() -> None:
    refused = {"error": "ConnectionRefusedError: [Errno 111] Connection refused"}
    found = monitoring.monitoring_of({"targets": refused, "alerts": refused})
    assert found == Monitoring(
        state="unknown",
        reason="Prometheus (http://localhost:9090 on the GitLab host): "
        "ConnectionRefusedError: [Errno 111] Connection refused",
    )
    assert monitoring.down_lines(found) == []
    error = {
        "status": 422,
        "body": json.dumps({"status": "error", "errorType": "execution", "error": "boom"}),
    }
    half = monitoring.monitoring_of(
        {"targets": answer({"activeTargets": TARGETS_UP}), "alerts": error}
    )
    assert half.state == "unknown" and len(half.targets) == 3
    assert half.reason.endswith("alerts: HTTP 422: " + error["body"][:120])
    said = monitoring.monitoring_of(
        {"targets": {"status": 200, "body": '{"status": "error", "error": "no"}'}, "alerts": {}}
    )
    assert said.reason.endswith("targets: Prometheus says no; alerts: no answer")
    html = monitoring.monitoring_of({"targets": {"status": 200, "body": "<html>"}})
    assert "targets: the answer is not JSON" in html.reason


class HostRemote:
    """The GitLab host: one command's output, or an exception."""

    def __init__(self, output: CommandOutput | Exception) -> None:
        self.output = output
        self.commands: list[str] = []

    def run(self, command: str) -> CommandOutput:
        self.commands.append(command)
        if isinstance(self.output, Exception):
            raise self.output
        return self.output

    def http_get(
        self, host: str, port: int, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        raise AssertionError("Prometheus is asked from the host, by python3")


def test_the_check_asks_python3_on_the_host_and_never_raises() -> None:
    remote = HostRemote(CommandOutput(0, json.dumps(answers(TARGETS_UP, [])) + "\n", ""))
    assert monitoring.monitoring_view(remote, 6).state == "up"
    argv = shlex.split(remote.commands[0])
    assert argv[:2] == ["python3", "-c"] and argv[2] == monitoring.FETCH
    assert argv[3:] == [
        "http://localhost:9090",
        "4.5",
        "/api/v1/targets?state=active",
        "/api/v1/alerts",
    ]
    assert monitoring.request_timeout(2) == 1.0
    missing = monitoring.monitoring_view(
        HostRemote(CommandOutput(127, "", "python3: not found")), 6
    )
    assert missing == Monitoring(
        state="unknown", reason="cannot ask Prometheus: python3: not found"
    )
    late = monitoring.monitoring_view(HostRemote(TimeoutError("timed out")), 6)
    assert late.reason == "cannot ask Prometheus: TimeoutError: timed out"
    damaged = monitoring.monitoring_view(HostRemote(CommandOutput(0, "{", "")), 6)
    assert damaged.state == "unknown" and damaged.reason.startswith("cannot ask Prometheus")


def test_the_report_takes_what_the_gitlab_hosts_check_found_or_says_why_not() -> None:
    hosts = report().hosts
    found = Monitoring(state="up")
    assert command.monitoring_of(hosts, [found], "late") is found
    late = command.monitoring_of(hosts, [], "no answer within 8 s")
    assert late == Monitoring(state="unknown", reason="Prometheus: no answer within 8 s")
    hosts[0] = HostStatus(
        name="gitlab-vm", group="gitlab", address="203.0.113.10", state="down", reason="SSH"
    )
    gone = command.monitoring_of(hosts, [], "late")
    assert gone is not None and gone.reason == (
        "not asked: the GitLab host (gitlab-vm) does not answer over SSH"
    )
    assert command.monitoring_of(hosts[1:], [], "late") is None


def test_down_list_holds_the_monitoring_lines() -> None:
    targets = [target("duo-node", "10.0.3.10:9100", "down", REFUSED)]
    found = monitoring.monitoring_of(answers(targets, [HOST_DOWN_ALERT]))
    down = command.down_list(report(monitoring=found))
    assert [line.split(":")[0:2] for line in down] == [
        ["monitoring", " duo-node target 10.0.3.10"],
        ["monitoring", " alert DuoHostDown firing (critical)"],
    ]
    unknown = Monitoring(state="unknown", reason="Prometheus: refused")
    assert command.down_list(report(monitoring=unknown)) == []


def test_the_screen_shows_monitoring_in_one_line_when_all_is_well() -> None:
    text = render(report(monitoring=monitoring.monitoring_of(answers(TARGETS_UP, []))))
    assert "\nMonitoring      3/3 targets up; no alert firing\n" in text
    assert len(text.splitlines()) <= 40


def test_the_screen_shows_each_target_down_and_each_alert() -> None:
    targets = [*TARGETS_UP[:2], target("duo-node", "10.0.3.10:9100", "down", REFUSED)]
    found = monitoring.monitoring_of(answers(targets, [HOST_DOWN_ALERT, SLOW_ALERT]))
    assert monitoring_lines(found) == [
        "Monitoring      2/3 targets up; 1 alert firing, 1 pending",
        f"        DOWN  duo-node 10.0.3.10:9100: {REFUSED}",
        "        FIRING  DuoHostDown (critical): 10.0.3.10:9100: the node exporter does not "
        "answer (host down or unreachable)",
        "        pending  DuoGatewaySlow (warning): 10.0.2.10:8082: the gateway's p95 latency "
        "is over 1.5 s",
    ]
    many = [target("duo-node", f"10.0.3.{n}:9100", "down") for n in range(12)]
    lines = monitoring_lines(monitoring.monitoring_of(answers(many, [])))
    assert lines[0] == "Monitoring      0/12 targets up; no alert firing"
    assert len(lines) == 1 + MONITORING_LINES
    assert lines[-1] == "        and 5 more (--json)"


def test_the_screen_says_why_monitoring_is_unknown() -> None:
    unknown = Monitoring(state="unknown", reason="Prometheus (...): refused")
    assert monitoring_lines(unknown) == ["Monitoring      unknown: Prometheus (...): refused"]
    half = Monitoring(
        state="unknown",
        reason="Prometheus (...): alerts: HTTP 503",
        targets=[MonitoringTarget(job="duo-node", instance="10.0.2.10:9100", health="up")],
    )
    assert monitoring_lines(half) == [
        "Monitoring      1/1 targets up; no alert firing",
        "        ?     Prometheus (...): alerts: HTTP 503",
    ]
    assert "Monitoring" not in render(report())  # no GitLab host checked: no line
