"""Each host listens only where it should: GitLab publicly on 80/443, the gateway and the model
server (Ollama or vLLM) on their private address only (never all interfaces), OpenSSH on 22 (as
on the VMs, whose firewall rules limit who reaches it); anything else on loopback only.

The addresses and ports come from the scenario's inventory (private_ip, gateway_url,
model_endpoint), so the same test serves the site and site-vllm scenarios."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

testinfra_hosts = ["all"]

SSH = {"0.0.0.0:22", "[::]:22"}


def allowed(host_vars: dict[str, Any]) -> set[str]:
    groups, address = set(host_vars["group_names"]), host_vars.get("private_ip")
    if "gitlab" in groups:
        return {"0.0.0.0:443", "0.0.0.0:80", *SSH}
    # GitLab's Prometheus scrapes the node exporter on both private hosts, and the gateway's
    # metrics (node_exporter_port, ai_gateway_metrics_port: the roles' defaults).
    node_exporter = f"{address}:9100"
    if "ai_gateway" in groups:
        grpc = str(host_vars["gateway_agent_platform_address"]).rpartition(":")[2]
        api = f"{address}:{urlsplit(host_vars['gateway_url']).port}"
        return {api, f"{address}:{grpc}", f"{address}:8082", node_exporter, *SSH}
    return {f"{address}:{urlsplit(host_vars['model_endpoint']).port}", node_exporter, *SSH}


def listeners(host: Any) -> set[str]:
    out = host.check_output("ss -Hltn")
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def is_loopback(address: str) -> bool:
    return address.startswith(("127.", "[::1]:"))


def test_services_listen_only_where_they_should(host: Any) -> None:
    name = host.check_output("hostname")
    wanted = allowed(host.ansible.get_variables())
    found = listeners(host)
    assert wanted <= found, f"{name}: missing {wanted - found}"
    unexpected = {a for a in found if not is_loopback(a) and a not in wanted}
    assert not unexpected, f"{name} listens beyond its private role: {sorted(unexpected)}"
