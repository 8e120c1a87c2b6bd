"""Each host listens only where it should: GitLab publicly on 80/443, the gateway and Ollama
on their private address only (never all interfaces), OpenSSH on 22 (as on the VMs, whose
firewall rules limit who reaches it); anything else on loopback only."""

from __future__ import annotations

import os
from typing import Any

testinfra_hosts = ["all"]

GATEWAY_IP = os.environ.get("DUO_SITE_GATEWAY_IP", "10.213.77.20")
OLLAMA_IP = os.environ.get("DUO_SITE_OLLAMA_IP", "10.213.77.30")
SSH = {"0.0.0.0:22", "[::]:22"}
ALLOWED = {
    "site-gitlab": {"0.0.0.0:443", "0.0.0.0:80", *SSH},
    "site-ai-gateway": {f"{GATEWAY_IP}:5052", f"{GATEWAY_IP}:50052", *SSH},
    "site-ollama": {f"{OLLAMA_IP}:11434", *SSH},
}


def listeners(host: Any) -> set[str]:
    out = host.check_output("ss -Hltn")
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def is_loopback(address: str) -> bool:
    return address.startswith(("127.", "[::1]:"))


def test_services_listen_only_where_they_should(host: Any) -> None:
    name = host.check_output("hostname")
    found = listeners(host)
    assert ALLOWED[name] <= found, f"{name}: missing {ALLOWED[name] - found}"
    unexpected = {a for a in found if not is_loopback(a) and a not in ALLOWED[name]}
    assert not unexpected, f"{name} listens beyond its private role: {sorted(unexpected)}"
