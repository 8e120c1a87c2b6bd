"""The GitLab host: its service, its certificate, its secrets, and its way to the gateway."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.checks import certificate_problems, describe_answer, secret_mode_problem
from tests.infra.conftest import group_hosts, http, private_address, skip_unless_present, var

testinfra_hosts = ["gitlab"]
HOP = "GitLab"

# gitlab_tls_mode values under which a self-signed certificate is expected.
SELF_SIGNED_MODES = {"self_signed", "self-signed", "selfsigned"}

FETCH_CERTIFICATE = r"""
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection((sys.argv[1], 443), timeout=15) as raw:
    with ctx.wrap_socket(raw, server_hostname=sys.argv[2]) as tls:
        print(ssl.DER_cert_to_PEM_cert(tls.getpeercert(True)))
"""


def tls_mode(host: Any) -> str:
    return str(var(host, "gitlab_tls_mode", "gitlab", default="letsencrypt"))


def test_gitlab_service_active_and_enabled(host: Any) -> None:
    """GitLab's service gitlab-runsvdir is running and enabled."""
    service = host.service("gitlab-runsvdir")
    assert service.is_running, "GitLab service gitlab-runsvdir is not running"
    assert service.is_enabled, "GitLab service gitlab-runsvdir is not enabled at boot"


@pytest.mark.hop("TLS certificate")
def test_gitlab_certificate_valid_for_domain(host: Any, gitlab_domain: str) -> None:
    """GitLab's certificate is valid for its domain and self-signed only if the TLS mode says so."""
    mode = tls_mode(host)
    out = host.run("python3 -c %s %s %s", FETCH_CERTIFICATE, "127.0.0.1", gitlab_domain)
    assert out.rc == 0, f"GitLab does not answer TLS on port 443: {out.stderr.strip()[-300:]}"
    problems = certificate_problems(out.stdout, gitlab_domain, mode in SELF_SIGNED_MODES)
    assert not problems, "; ".join(problems) + f" (gitlab_tls_mode: {mode})"


@pytest.mark.parametrize(
    ("path", "required"),
    [
        ("/etc/gitlab/gitlab.rb", True),
        ("/etc/gitlab/gitlab-secrets.json", False),
        ("/etc/gitlab/initial_root_password", False),
    ],
)
def test_gitlab_secret_not_readable_by_others(host: Any, path: str, required: bool) -> None:
    """GitLab's secret files are readable by their owner only."""
    if required:
        assert host.file(path).exists, f"{path} is missing: GitLab is not configured"
    else:
        skip_unless_present(host, path, "GitLab creates it on demand or removes it after 24 h")
    file = host.file(path)
    problem = secret_mode_problem(path, file.mode, file.user)
    assert not problem, problem


def test_gitlab_tls_keys_not_readable_by_others(host: Any) -> None:
    """GitLab's TLS private keys are readable by their owner only."""
    keys = host.run("find /etc/gitlab/ssl -maxdepth 2 -type f -name '*.key'").stdout.split()
    problems = []
    for path in keys:
        file = host.file(path)
        problem = secret_mode_problem(path, file.mode, file.user)
        if problem:
            problems.append(problem)
    assert not problems, "; ".join(problems)


@pytest.mark.hop("GitLab → gateway")
def test_gitlab_reaches_gateway(host: Any) -> None:
    """GitLab reaches the gateway's /monitoring/healthz (what the rake check probes)."""
    url = var(host, "gateway_url")
    if not url:
        gateways = group_hosts(host, "ai_gateway")
        if not gateways:
            pytest.skip("no gateway_url in the inventory and no ai_gateway host to derive it")
        port = var(gateways[0], "ai_gateway_http_port", "ai_gateway", 5052)
        url = f"http://{private_address(gateways[0])}:{port}"
    result = http(host, f"{str(url).rstrip('/')}/monitoring/healthz")
    assert result.get("status") == 200, (
        f"GitLab cannot reach the gateway at {url}/monitoring/healthz: {describe_answer(result)} "
        "(check the gateway container and the firewall rule from GitLab to port 5052)"
    )
