"""The node_exporter role on a Debian 12 container, from the real Debian package.

prepare.yml downloaded prometheus-node-exporter with apt on the controller and fed it to the
role through node_exporter_package_file (the air-gapped source); the systemd collector reports
a stand-in model server unit (duo-test-model.service) and ssh.service.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

PORT = 9100


@pytest.fixture(scope="module")
def address(host: Any) -> str:
    return str(host.ansible("setup")["ansible_facts"]["ansible_default_ipv4"]["address"])


def metrics(host: Any, address: str) -> str:
    return str(host.check_output(f"curl -sS --max-time 5 http://{address}:{PORT}/metrics"))


def test_debian_package_installed(host: Any) -> None:
    package = host.package("prometheus-node-exporter")
    assert package.is_installed
    assert package.version.startswith("1.")


def test_service_enabled_and_running_unprivileged(host: Any) -> None:
    service = host.service("prometheus-node-exporter")
    assert service.is_enabled
    assert service.is_running
    pid = host.check_output("systemctl show -p MainPID --value prometheus-node-exporter")
    assert host.check_output(f"stat -c %U /proc/{pid}") == "prometheus"


def test_listens_on_the_private_address_only(host: Any, address: str) -> None:
    listening = host.check_output(f"ss -Hltn 'sport = :{PORT}'").splitlines()
    assert [line.split()[3] for line in listening] == [f"{address}:{PORT}"]
    refused = host.run(f"curl -sS --max-time 5 http://127.0.0.1:{PORT}/metrics")
    assert refused.rc != 0


def test_serves_machine_metrics(host: Any, address: str) -> None:
    text = metrics(host, address)
    for name in (
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
    ):
        assert f"\n{name}" in text or text.startswith(name), name


def unit_active(text: str, unit: str) -> float:
    labels = rf'[^}}]*name="{re.escape(unit)}"[^}}]*state="active"[^}}]*'
    pattern = rf"^node_systemd_unit_state\{{{labels}\}} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no active state of {unit}"
    return float(match.group(1))


def test_systemd_collector_reports_only_the_listed_units(host: Any, address: str) -> None:
    text = metrics(host, address)
    assert unit_active(text, "duo-test-model.service") == 1
    assert unit_active(text, "ssh.service") == 1
    names = set(re.findall(r'node_systemd_unit_state\{[^}]*name="([^"]+)"', text))
    assert names == {"duo-test-model.service", "ssh.service"}


def test_a_stopped_unit_reports_inactive(host: Any, address: str) -> None:
    with host.sudo():
        host.check_output("systemctl stop duo-test-model.service")
    try:
        assert unit_active(metrics(host, address), "duo-test-model.service") == 0
    finally:
        with host.sudo():
            host.check_output("systemctl start duo-test-model.service")
