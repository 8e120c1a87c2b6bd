"""GitLab's bundled Prometheus told to scrape the private hosts, and the alert rules it reads.

gitlab-node1 has node exporter, gateway and vLLM targets; gitlab-node2 none (no scrape
configuration, no rules file). promtool is not available here: the rules file is parsed as
YAML and its structure checked as Prometheus reads it (groups of rules with alert, expr, for,
labels, annotations), and the stand-in's reconfigure renders prometheus.yml from gitlab.rb's
Ruby (a syntax error there would have failed the converge).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

RULES = "/etc/gitlab/duo-prometheus/duo.rules"
NODE = ["10.213.90.20:9100", "10.213.90.30:9100"]
GATEWAY = ["10.213.90.20:8082"]
VLLM = ["10.213.90.30:8000"]
ALERTS = {
    "DuoHostDown": "duo-node",
    "DuoModelServerDown": "duo-node",
    "DuoVllmDown": "duo-vllm",
    "DuoVllmKvCacheNearlyFull": "duo-vllm",
    "DuoGatewayMetricsDown": "duo-ai-gateway",
    "DuoGatewayErrors": "duo-ai-gateway",
    "DuoGatewaySlow": "duo-ai-gateway",
}


@pytest.fixture(scope="module")
def monitored(host: Any) -> bool:
    return str(host.check_output("hostname")) == "gitlab-node1"


def test_scrape_configs_in_gitlab_rb(host: Any, monitored: bool) -> None:
    text = host.file("/etc/gitlab/gitlab.rb").content_string
    if not monitored:
        assert "prometheus[" not in text
        return
    for job, targets in (("duo-node", NODE), ("duo-ai-gateway", GATEWAY), ("duo-vllm", VLLM)):
        quoted = ", ".join(f"'{target}'" for target in targets)
        assert f"'job_name' => '{job}'" in text
        assert f"'targets' => [{quoted}]" in text
    assert (
        "prometheus['rules_files'] = ['/var/opt/gitlab/prometheus/rules/*.rules', "
        "'/etc/gitlab/duo-prometheus/*.rules']" in text
    )


def test_prometheus_yml_rendered_by_reconfigure(host: Any, monitored: bool) -> None:
    rendered = host.file("/var/opt/gitlab/prometheus/prometheus.yml")
    if not monitored:
        assert not rendered.exists
        return
    config = json.loads(rendered.content_string)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["duo-node"]["static_configs"] == [{"targets": NODE}]
    assert jobs["duo-ai-gateway"]["static_configs"] == [{"targets": GATEWAY}]
    assert jobs["duo-vllm"]["metrics_path"] == "/metrics"
    assert "/etc/gitlab/duo-prometheus/*.rules" in config["rule_files"]
    assert "/var/opt/gitlab/prometheus/rules/*.rules" in config["rule_files"]  # Omnibus' own


def test_rules_file_is_valid(host: Any, monitored: bool) -> None:
    rules_file = host.file(RULES)
    if not monitored:
        assert not rules_file.exists
        return
    assert rules_file.mode == 0o644  # read by the gitlab-prometheus user
    document = yaml.safe_load(rules_file.content_string)
    assert set(document) == {"groups"}
    [group] = document["groups"]
    assert group["name"] == "duo-self-hosted"
    found = {}
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert "{{ $labels.instance }}" in rule["annotations"]["summary"]
        expr = " ".join(rule["expr"].split())
        assert expr.count("(") == expr.count(")")
        assert expr.count("{") == expr.count("}")
        found[rule["alert"]] = expr
    assert set(found) == set(ALERTS)
    for alert, job in ALERTS.items():
        assert f'job="{job}"' in found[alert], alert
    # No backslash: PromQL's double-quoted strings take Go's escapes, which refuse "\.".
    assert 'name=~"ollama[.]service|vllm[.]service"' in found["DuoModelServerDown"]
    # Also when systemd no longer lists the unit: seen active lately, not active now.
    assert "unless on (instance, name)" in found["DuoModelServerDown"]
    assert "vllm:kv_cache_usage_perc" in found["DuoVllmKvCacheNearlyFull"]
    assert "> 0.95" in found["DuoVllmKvCacheNearlyFull"]
    # The gateway's one request metric: its latency histogram, status codes grouped (5xx).
    assert (
        'http_request_duration_seconds_count{job="duo-ai-gateway", status="5xx"}'
        in (found["DuoGatewayErrors"])
    )
    assert "histogram_quantile(0.95," in found["DuoGatewaySlow"]
    assert "http_request_duration_seconds_bucket" in found["DuoGatewaySlow"]
    assert found["DuoGatewaySlow"].endswith("> 1.5")
