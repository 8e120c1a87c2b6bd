"""GitLab's Prometheus, as the three-host scenarios configure it: the scrape jobs gitlab.rb
gives (rendered into prometheus.yml by `gitlab-ctl reconfigure`) name every private host, and
each target answers from the GitLab host, over the private network, with the metrics its job
is for. The stand-in GitLab package runs no Prometheus: the scrape itself is an HTTP GET from
the GitLab host, which is what Prometheus does."""

from __future__ import annotations

import json
from typing import Any

testinfra_hosts = ["gitlab"]

PROMETHEUS_YML = "/var/opt/gitlab/prometheus/prometheus.yml"
# What each job's targets must serve (node exporter, the gateway's latency histogram, vLLM).
EXPECTED = {
    "duo-node": "node_systemd_unit_state",
    "duo-ai-gateway": "http_request_duration_seconds",
    "duo-vllm": "vllm:num_requests_running",
}


def members(host: Any, group: str) -> list[dict[str, Any]]:
    runner = host.backend.ansible_runner
    return [dict(runner.get_variables(name)) for name in runner.get_hosts(group)]


def scrape_jobs(host: Any) -> dict[str, list[str]]:
    config = json.loads(host.file(PROMETHEUS_YML).content_string)
    return {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }


def fetch(host: Any, url: str) -> str:
    code = (
        "import sys, urllib.request; "
        f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    )
    return str(host.check_output(f"python3 -c {json.dumps(code)}"))


def test_every_private_host_is_a_scrape_target(host: Any) -> None:
    jobs = scrape_jobs(host)
    private = [h["private_ip"] for g in ("ai_gateway", "ollama", "vllm") for h in members(host, g)]
    assert sorted(jobs["duo-node"]) == sorted(f"{ip}:9100" for ip in private)
    [gateway] = members(host, "ai_gateway")
    assert jobs["duo-ai-gateway"] == [f"{gateway['private_ip']}:8082"]
    vllm = members(host, "vllm")
    assert ("duo-vllm" in jobs) == bool(vllm)


def test_each_target_answers_with_its_metrics(host: Any) -> None:
    for job, targets in scrape_jobs(host).items():
        if job not in EXPECTED:
            continue
        for target in targets:
            text = fetch(host, f"http://{target}/metrics")
            assert EXPECTED[job] in text, f"{job}: {target} serves no {EXPECTED[job]}"


def test_the_model_servers_unit_is_reported_active(host: Any) -> None:
    [model] = members(host, "ollama") + members(host, "vllm")
    unit = "ollama.service" if members(host, "ollama") else "vllm.service"
    text = fetch(host, f"http://{model['private_ip']}:9100/metrics")
    active = [
        line
        for line in text.splitlines()
        if line.startswith("node_systemd_unit_state{")
        and f'name="{unit}"' in line
        and 'state="active"' in line
    ]
    assert active and active[0].endswith(" 1"), active


def test_the_alert_rules_are_in_prometheus_settings(host: Any) -> None:
    config = json.loads(host.file(PROMETHEUS_YML).content_string)
    found = host.check_output("ls -1 " + " ".join(config["rule_files"]) + " 2>/dev/null || true")
    assert any(line.endswith("/duo.rules") for line in found.splitlines()), found
