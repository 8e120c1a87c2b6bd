"""The cloud-independent preflight checks and the renderer."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from duoctl.preflight.checks import (
    CheckResult,
    check_admin_cidr,
    check_license,
    check_ssh_key,
    domain_plan,
    render,
)
from duoctl.settings import DeploySettings

ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
)


def key_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "key.pub"
    path.write_text(text)
    return str(path)


def test_valid_ed25519_key(tmp_path: Path):
    result = check_ssh_key(key_file(tmp_path, ED25519_KEY + "\n"))
    assert result.ok and "ssh-ed25519" in result.detail


def test_rsa_blob_must_match_its_type(tmp_path: Path):
    blob = base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + b"\x00" * 20).decode()
    assert check_ssh_key(key_file(tmp_path, f"ssh-rsa {blob}")).ok
    mismatch = check_ssh_key(key_file(tmp_path, f"ssh-ed25519 {blob}"))
    assert not mismatch.ok and "does not match its type" in mismatch.detail


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n", "is a private key"),
        ("hello world", "not an OpenSSH public key"),
        ("ssh-ed25519 !!!notbase64", "not valid base64"),
        ("", "not an OpenSSH public key"),
    ],
)
def test_bad_keys_say_how_to_fix(tmp_path: Path, text: str, problem: str):
    result = check_ssh_key(key_file(tmp_path, text))
    assert not result.ok
    assert problem in result.detail
    assert result.fix


def test_missing_key_says_how_to_create_one(tmp_path: Path):
    result = check_ssh_key(str(tmp_path / "nope.pub"))
    assert not result.ok and "ssh-keygen -t ed25519" in result.fix


@pytest.mark.parametrize(
    ("cidr", "ok", "words"),
    [
        ("198.51.100.7/32", True, "1 address"),
        ("203.0.113.0/24", True, "256 address"),
        ("198.51.100.7", False, "no prefix length"),
        ("0.0.0.0/0", False, "whole internet"),
        ("8.0.0.0/8", False, "wider than /16"),
        ("10.1.2.3/32", False, "private"),
        ("203.0.113.7/24", False, "host bits"),
        ("2001:db8::/64", False, "IPv6"),
        ("my-laptop", False, "not a CIDR block"),
    ],
)
def test_admin_cidr(cidr: str, ok: bool, words: str):
    result = check_admin_cidr(cidr)
    assert result.ok is ok
    assert words in result.detail
    assert ok or "--admin-cidr" in result.fix or "/32" in result.fix


def settings(**extra: object) -> DeploySettings:
    base = {
        "cloud": "aws",
        "region": "us-east-1",
        "ssh_public_key_file": "k",
        "admin_cidr": "192.0.2.1/32",
    }
    return DeploySettings(**{**base, **extra})  # type: ignore[arg-type]


def test_domain_plans():
    assert "sslip.io" in domain_plan(settings()).detail
    user = domain_plan(settings(domain="gitlab.example.com"))
    assert "you create its A record" in user.detail and "Let's Encrypt" in user.detail
    managed = domain_plan(settings(domain="gitlab.example.com", managed_zone="Z123456"))
    assert "record created in zone Z123456" in managed.detail


def test_render_text_and_json():
    results = [
        CheckResult("region", True, "us-east-1"),
        CheckResult("gpu quota", False, "0 vCPUs", "line one\nline two", None),
    ]
    text = render(results)
    assert "[ok] region: us-east-1" in text
    assert "[FAIL] gpu quota: 0 vCPUs\n       fix: line one\n       fix: line two" in text
    assert text.endswith("preflight failed: 1 check(s) to fix")
    body = json.loads(render(results, as_json=True))
    assert body["ok"] is False
    assert body["checks"][1] == {
        "name": "gpu quota",
        "ok": False,
        "detail": "0 vCPUs",
        "fix": "line one\nline two",
        "value": None,
    }
    assert render(results[:1]).endswith("preflight passed")


def test_license_file_is_optional_but_must_be_readable(tmp_path: Path) -> None:
    assert check_license(None).ok
    assert "must already hold a license" in check_license(None).detail
    assert "--activation-code-file" in check_license(None).detail
    missing = check_license(str(tmp_path / "none.gitlab-license"))
    assert not missing.ok and "GitLab Duo Enterprise" in (missing.fix or "")
    empty = tmp_path / "empty.gitlab-license"
    empty.write_text("")
    assert not check_license(str(empty)).ok
    good = tmp_path / "duo.gitlab-license"
    good.write_text("eyJkYXRhIjoi...\n")
    assert check_license(str(good)).ok


def test_activation_code_file_is_checked_without_showing_the_code(tmp_path: Path) -> None:
    code = "A1b2C3d4E5f6G7h8J9k0L1m2"
    good = tmp_path / "activation_code"
    good.write_text(code + "\n")
    result = check_license(None, str(good))
    assert result.ok and "activates it online" in result.detail and code not in result.detail
    wrong = tmp_path / "wrong"
    wrong.write_text("not-a-code\n")
    result = check_license(None, str(wrong))
    assert not result.ok and "24 characters" in (result.fix or "")
    assert "not-a-code" not in result.detail
    assert not check_license(None, str(tmp_path / "none")).ok
