"""Checks the common role's result inside its test container."""

from __future__ import annotations

from typing import Any


def test_base_packages_installed(host: Any) -> None:
    for name in ("ca-certificates", "curl", "gnupg", "systemd-timesyncd"):
        assert host.package(name).is_installed, name


def test_hosts_entry_maps_domain_to_private_address(host: Any) -> None:
    hosts = host.file("/etc/hosts").content_string
    assert "192.0.2.10 gitlab.example.test" in hosts
    assert host.run("getent hosts gitlab.example.test").stdout.split()[0] == "192.0.2.10"


def test_hostname_is_inventory_name(host: Any) -> None:
    assert host.check_output("hostname") == "common-node1"


def test_time_sync_configured_and_enabled(host: Any) -> None:
    conf = host.file("/etc/systemd/timesyncd.conf.d/duo.conf")
    assert conf.mode == 0o644
    assert "NTP=ntp.example.test" in conf.content_string
    assert host.service("systemd-timesyncd").is_enabled
