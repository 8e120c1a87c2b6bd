"""Checks the gitlab role's result in its test containers (stand-in gitlab-ee package).

gitlab-node1 uses selfsigned TLS (a private CA the role makes) and a license file;
gitlab-node2 uses custom TLS (the user's certificate, key and CA), no license, and a TLS
agent platform URL (no DUO_AGENT_PLATFORM_SERVICE_SECURE).

The role ran three times: converge, idempotence, and side_effect.yml's verbose converge, in
which gitlab-node1's license file is installed (and loaded) again and gitlab-node2's token is
replaced, the controller having lost it (test_secrets.py checks that run's output).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


@dataclass(frozen=True)
class Expected:
    domain: str
    ca_on_host: str
    secrets: Path
    license: bool
    agent_platform_secure: bool
    token_replaced: bool  # by the side effect's run


EXPECTED = {
    "gitlab-node1": Expected(
        "gitlab.duo.test", "/etc/gitlab/ssl/duo-ca.crt", EPHEMERAL / "secrets", True, False, False
    ),
    "gitlab-node2": Expected(
        "gitlab2.duo.test",
        "/etc/gitlab/trusted-certs/duo-custom-ca.crt",
        EPHEMERAL / "secrets2",
        False,
        True,
        True,
    ),
}


@pytest.fixture(scope="module")
def expected(host: Any) -> Expected:
    return EXPECTED[host.check_output("hostname")]


def calls(host: Any) -> list[str]:
    """The stand-in's calls made by the role's runs: test_backup.py's restore drill (which
    starts with a backup, and reconfigures) may have run before this file."""
    lines = host.file("/var/log/gitlab/standin/calls.log").content_string.splitlines()
    backups = [i for i, line in enumerate(lines) if line.startswith("gitlab-backup")]
    return lines[: backups[0]] if backups else lines


def curl(expected: Expected) -> str:
    return f"curl -sS --resolve {expected.domain}:443:127.0.0.1 --cacert {expected.ca_on_host}"


def test_pinned_package_installed_and_held(host: Any) -> None:
    assert host.package("gitlab-ee").version == "19.4.1-ee.0"
    assert "hold" in host.check_output("dpkg --get-selections gitlab-ee")


def test_gitlab_rb_is_private_and_configured(host: Any, expected: Expected) -> None:
    rb = host.file("/etc/gitlab/gitlab.rb")
    assert rb.mode == 0o600
    text = rb.content_string
    assert f"external_url 'https://{expected.domain}'" in text
    assert "letsencrypt['enable'] = false" in text
    assert f"nginx['ssl_certificate'] = '/etc/gitlab/ssl/{expected.domain}.crt'" in text
    assert "gitlab_rails['initial_root_password'] = 'molecule-root-password" in text
    assert ("initial_license_file" in text) == expected.license


def test_agent_platform_env_only_for_a_plain_url(host: Any, expected: Expected) -> None:
    text = host.file("/etc/gitlab/gitlab.rb").content_string
    env = host.file("/opt/gitlab/etc/gitlab-rails/env/DUO_AGENT_PLATFORM_SERVICE_SECURE")
    if expected.agent_platform_secure:
        assert "DUO_AGENT_PLATFORM_SERVICE_SECURE" not in text
        assert not env.exists
    else:
        assert "'DUO_AGENT_PLATFORM_SERVICE_SECURE' => false" in text
        assert env.content_string.strip() == "false"


def test_reconfigured_once_across_three_runs(host: Any, expected: Expected) -> None:
    log = calls(host)
    assert log.count("gitlab-ctl reconfigure") == 1
    # Loaded when installed: by the first run, and by the side effect's run.
    assert log.count("gitlab-rake gitlab:license:load") == (2 if expected.license else 0)
    assert log.count("gitlab-rails runner /usr/local/lib/duo-gitlab/admin_token.rb") == 3


def test_readiness_over_https_with_the_ca(host: Any, expected: Expected) -> None:
    body = host.check_output(f"{curl(expected)} https://{expected.domain}/-/readiness")
    assert json.loads(body)["status"] == "ok"


def test_http_redirects_to_https(host: Any, expected: Expected) -> None:
    out = host.check_output("curl -sS -o /dev/null -w '%{redirect_url}' http://127.0.0.1/")
    assert out.startswith(f"https://{expected.domain}/")


def test_certificate_names_the_domain_and_keys_are_private(host: Any, expected: Expected) -> None:
    cert = f"/etc/gitlab/ssl/{expected.domain}.crt"
    assert f"DNS:{expected.domain}" in host.check_output(f"openssl x509 -in {cert} -noout -text")
    assert host.file(f"/etc/gitlab/ssl/{expected.domain}.key").mode == 0o600
    if expected.ca_on_host.startswith("/etc/gitlab/ssl/"):
        assert host.file("/etc/gitlab/ssl/duo-ca.key").mode == 0o600


def test_custom_certificate_is_the_users(host: Any, expected: Expected) -> None:
    if expected.license:
        pytest.skip("selfsigned host")
    user_cert = (EPHEMERAL / "artifacts" / "custom" / "gitlab2.crt").read_text()
    assert host.file(f"/etc/gitlab/ssl/{expected.domain}.crt").content_string == user_cert


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_token_on_controller_is_private_and_active(host: Any, expected: Expected) -> None:
    token_file = expected.secrets / "gitlab_admin_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token.startswith("glpat-")
    tokens = json.loads(host.file("/var/opt/gitlab/standin/tokens.json").content_string)
    held = tokens[digest(token)]
    assert held["scopes"] == ["api"]
    assert not held["revoked"]
    if expected.token_replaced:  # the controller lost it before the side effect's run
        replaced = (expected.secrets / "gitlab_admin_token.replaced").read_text().strip()
        assert replaced != token
        assert tokens[digest(replaced)]["revoked"]
        assert len(tokens) == 2
    else:
        assert len(tokens) == 1  # the later runs kept it


def test_ca_certificate_copied_to_controller(host: Any, expected: Expected) -> None:
    ca = (expected.secrets / "gitlab_ca.crt").read_text()
    assert ca == host.file(expected.ca_on_host).content_string
