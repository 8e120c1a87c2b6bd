"""The GitLab host: its service, its certificate, its secrets, and its way to the gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.checks import certificate_problems, describe_answer, secret_mode_problem
from tests.infra.conftest import (
    group_hosts,
    hop,
    http,
    private_address,
    service_port,
    skip_unless_present,
    var,
)

testinfra_hosts = ["gitlab"]
HOP = "GitLab"

# The CA that signs GitLab's certificate when it is not a public one, per gitlab_tls_mode
# (the gitlab role's vars/main.yml); letsencrypt must verify against the host's system store.
PRIVATE_CA = {
    "selfsigned": "/etc/gitlab/ssl/duo-ca.crt",
    "custom": "/etc/gitlab/trusted-certs/duo-custom-ca.crt",
}

# Prints GitLab's leaf certificate (PEM), then one JSON line: the verification error or "".
FETCH_CERTIFICATE = r"""
import json, socket, ssl, sys
address, domain, cafile = sys.argv[1:4]

def handshake(ctx):
    with socket.create_connection((address, 443), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname=domain) as tls:
            return tls.getpeercert(True)

loose = ssl.create_default_context()
loose.check_hostname = False
loose.verify_mode = ssl.CERT_NONE
print(ssl.DER_cert_to_PEM_cert(handshake(loose)))
try:
    handshake(ssl.create_default_context(cafile=cafile or None))
    error = ""
except ssl.SSLError as exc:
    error = getattr(exc, "verify_message", None) or str(exc)
print(json.dumps({"verify_error": error}))
"""


def tls_mode(host: Any) -> str:
    """gitlab_tls_mode from the inventory, else as GitLab is configured (the deploy passes it
    with -e): Let's Encrypt on in gitlab.rb, else the role's private CA, else custom."""
    explicit = var(host, "gitlab_tls_mode")
    if explicit:
        return str(explicit)
    config = host.run("grep -E \"^letsencrypt\\['enable'\\]\" /etc/gitlab/gitlab.rb").stdout
    if "true" in config:
        return "letsencrypt"
    return "selfsigned" if host.file(PRIVATE_CA["selfsigned"]).exists else "custom"


def test_gitlab_service_active_and_enabled(host: Any) -> None:
    """GitLab's service gitlab-runsvdir is running and enabled."""
    service = host.service("gitlab-runsvdir")
    assert service.is_running, "GitLab service gitlab-runsvdir is not running"
    assert service.is_enabled, "GitLab service gitlab-runsvdir is not enabled at boot"


@hop("TLS certificate")
def test_gitlab_certificate_valid_for_domain(
    host: Any, gitlab_domain: str, record_property: Any
) -> None:
    """GitLab's certificate is valid for its domain and trusted as its TLS mode says."""
    mode = tls_mode(host)
    cafile = PRIVATE_CA.get(mode, "")
    if cafile and not host.file(cafile).exists:
        cafile = ""  # custom mode with a publicly trusted certificate
    out = host.run("python3 -c %s %s %s %s", FETCH_CERTIFICATE, "127.0.0.1", gitlab_domain, cafile)
    if out.rc != 0:
        record_property("hop", HOP)  # no answer at all: GitLab is down, not its certificate
        error_line = (out.stderr.strip().splitlines() or [""])[-1]
        pytest.fail(f"GitLab does not answer TLS on port 443 ({error_line})")
    problems = certificate_problems(out.stdout, gitlab_domain, self_signed_allowed=bool(cafile))
    error = json.loads(out.stdout.strip().splitlines()[-1])["verify_error"]
    if error:
        trust = f"the private CA {cafile}" if cafile else "the public CAs of the host"
        problems.append(
            f"GitLab's certificate for {gitlab_domain} is not trusted by {trust}: {error}"
        )
    assert not problems, "; ".join(problems) + f" (gitlab_tls_mode: {mode})"


# Secret files on the GitLab host; None: required, else why it may be absent.
GITLAB_SECRETS = {
    "/etc/gitlab/gitlab.rb": None,
    "/etc/gitlab/gitlab-secrets.json": "written by the first reconfigure",
    "/etc/gitlab/initial_root_password": "GitLab removes it after 24 h",
    "/etc/gitlab/Gitlab.gitlab-license": "no license file was given",
    "/etc/gitlab/duo": "the role's work folder, made by the gitlab role",
}


@pytest.mark.parametrize("path", list(GITLAB_SECRETS))
def test_gitlab_secret_not_readable_by_others(host: Any, path: str) -> None:
    """GitLab's secret files are readable by their owner only."""
    why_optional = GITLAB_SECRETS[path]
    if why_optional is None:
        assert host.file(path).exists, f"{path} is missing: GitLab is not configured"
    else:
        skip_unless_present(host, path, why_optional)
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


@hop("GitLab → gateway")
def test_gitlab_reaches_gateway(host: Any) -> None:
    """GitLab reaches the gateway's /monitoring/healthz (what the rake check probes)."""
    url = var(host, "gateway_url")
    if not url:
        gateways = group_hosts(host, "ai_gateway")
        if not gateways:
            pytest.skip("no gateway_url in the inventory and no ai_gateway host to derive it")
        port = service_port(gateways[0], "ai_gateway_http_port")
        url = f"http://{private_address(gateways[0])}:{port}"
    result = http(host, f"{str(url).rstrip('/')}/monitoring/healthz")
    assert result.get("status") == 200, (
        f"GitLab cannot reach the gateway at {url}/monitoring/healthz: {describe_answer(result)} "
        "(check the gateway container and the firewall rule from GitLab to port 5052)"
    )
