"""Checks the gitlab role's result in its test container (stand-in gitlab-ee package)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

DOMAIN = "gitlab.duo.test"
SECRETS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
CURL = f"curl -sS --resolve {DOMAIN}:443:127.0.0.1 --cacert /etc/gitlab/ssl/duo-ca.crt"


def calls(host: Any) -> list[str]:
    return host.file("/var/log/gitlab/standin/calls.log").content_string.splitlines()


def test_pinned_package_installed_and_held(host: Any) -> None:
    assert host.package("gitlab-ee").version == "18.6.1-ee.0"
    assert "hold" in host.check_output("dpkg --get-selections gitlab-ee")


def test_gitlab_rb_is_private_and_configured(host: Any) -> None:
    rb = host.file("/etc/gitlab/gitlab.rb")
    assert rb.mode == 0o600
    text = rb.content_string
    assert f"external_url 'https://{DOMAIN}'" in text
    assert "letsencrypt['enable'] = false" in text
    assert "'DUO_AGENT_PLATFORM_SERVICE_SECURE' => false" in text
    assert "gitlab_rails['initial_root_password'] = 'molecule-root-password'" in text


def test_rails_env_rendered_by_reconfigure(host: Any) -> None:
    env = host.file("/opt/gitlab/etc/gitlab-rails/env/DUO_AGENT_PLATFORM_SERVICE_SECURE")
    assert env.content_string.strip() == "false"


def test_reconfigured_once_across_two_runs(host: Any) -> None:
    log = calls(host)
    assert log.count("gitlab-ctl reconfigure") == 1
    assert log.count("gitlab-rake gitlab:license:load") == 1
    assert log.count("gitlab-rails runner /etc/gitlab/duo/admin_token.rb") == 2


def test_readiness_over_https_with_the_private_ca(host: Any) -> None:
    body = host.check_output(f"{CURL} https://{DOMAIN}/-/readiness")
    assert json.loads(body)["status"] == "ok"


def test_http_redirects_to_https(host: Any) -> None:
    out = host.check_output("curl -sS -o /dev/null -w '%{redirect_url}' http://127.0.0.1/")
    assert out.startswith(f"https://{DOMAIN}/")


def test_certificate_names_the_domain_and_key_is_private(host: Any) -> None:
    text = host.check_output(f"openssl x509 -in /etc/gitlab/ssl/{DOMAIN}.crt -noout -text")
    assert f"DNS:{DOMAIN}" in text
    assert host.file(f"/etc/gitlab/ssl/{DOMAIN}.key").mode == 0o600
    assert host.file("/etc/gitlab/ssl/duo-ca.key").mode == 0o600


def test_token_on_controller_is_private_and_active(host: Any) -> None:
    token_file = SECRETS / "gitlab_admin_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token.startswith("glpat-")
    tokens = json.loads(host.file("/var/opt/gitlab/standin/tokens.json").content_string)
    held = tokens[hashlib.sha256(token.encode()).hexdigest()]
    assert held["scopes"] == ["api"]
    assert not held["revoked"]
    assert len(tokens) == 1  # the second run kept it


def test_ca_certificate_copied_to_controller(host: Any) -> None:
    ca = (SECRETS / "gitlab_ca.crt").read_text()
    assert ca == host.file("/etc/gitlab/ssl/duo-ca.crt").content_string
