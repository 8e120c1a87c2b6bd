"""Checks the nvidia_driver role's skip path: a host without an NVIDIA PCI device is left alone."""

from __future__ import annotations

from typing import Any


def test_host_has_no_nvidia_device(host: Any) -> None:
    found = host.run("grep -l -x -s 0x10de /sys/bus/pci/devices/*/vendor")
    assert found.stdout.strip() == ""


def test_no_driver_package_installed(host: Any) -> None:
    installed = host.check_output("dpkg-query -W -f '${Package}\\n' | grep -c nvidia || true")
    assert installed == "0"
    assert not host.exists("nvidia-smi")
