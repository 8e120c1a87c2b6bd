"""`duoctl preflight aws` against the moto server double (quota patched, Ubuntu AMIs seeded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from duoctl import cli

from tests.doubles.aws_moto_server import AWS_CREDENTIALS, MotoEndpoint, moto_server

# A syntactically valid ed25519 public key (the blob encodes the type name as SSH requires).
ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEndpoint]:
    with moto_server(gpu_vcpu_quota=8) as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """boto3 aimed at moto through its standard variables; returns the SSH key file."""
    for name, value in AWS_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    moto.set_gpu_vcpu_quota(8)
    key = tmp_path / "id_ed25519.pub"
    key.write_text(ED25519_KEY + "\n")
    return key


def preflight(key: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "preflight",
        "aws",
        "--ssh-key",
        str(key),
        "--admin-cidr",
        "198.51.100.7/32",
        "--deploy-dir",
        str(tmp_path / ".deploy"),
        *extra,
    ]


def checks(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    body = json.loads(capsys.readouterr().out)
    return {c["name"]: c for c in body["checks"]}


def test_enough_quota_passes(aws_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = cli.main(preflight(aws_env, tmp_path, "--region", "us-east-1", "--json"))
    result = checks(capsys)
    assert code == 0, result
    assert all(c["ok"] for c in result.values())
    assert "8 vCPUs" in str(result["gpu quota L-DB2E81BA"]["detail"])
    assert "us-east-1a" in str(result["instance types"]["detail"])


def test_zero_quota_fails_with_the_request_command(
    aws_env: Path, moto: MotoEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    moto.set_gpu_vcpu_quota({"eu-west-3": 0, "default": 8})
    code = cli.main(preflight(aws_env, tmp_path, "--region", "eu-west-3"))
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] gpu quota L-DB2E81BA" in out
    assert "0 vCPUs" in out
    assert (
        "aws service-quotas request-service-quota-increase --service-code ec2 "
        "--quota-code L-DB2E81BA --desired-value 4 --region eu-west-3"
    ) in out


def test_zone_without_gpu_type_names_other_zones(
    aws_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # us-east-1e offers no g4dn.xlarge (moto ships AWS's real offering lists).
    code = cli.main(preflight(aws_env, tmp_path, "--region", "us-east-1", "--zone", "us-east-1e"))
    out = capsys.readouterr().out
    assert code == 1
    missing = next(line for line in out.splitlines() if "[FAIL] instance types" in line)
    assert "g4dn.xlarge" in missing
    assert "not offered in us-east-1e" in missing
    assert "--zone us-east-1a" in out


def test_unknown_instance_type_names_other_regions(
    aws_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    saved = tmp_path / ".deploy" / "aws" / "settings.yml"
    saved.parent.mkdir(parents=True)
    saved.write_text("ollama_machine_type: p9.gigantic\n")
    code = cli.main(preflight(aws_env, tmp_path, "--region", "us-east-1", "--json"))
    result = checks(capsys)
    assert code == 1
    assert not result["instance types"]["ok"]
    assert "p9.gigantic" in str(result["instance types"]["detail"])
    assert "us-west-2" in str(result["instance types"]["fix"])


def test_bad_cidr_and_missing_key_fail_with_fixes(
    aws_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # Both are bad input, refused before any check runs or anything is saved.
    argv = preflight(aws_env, tmp_path, "--region", "us-east-1", "--json")
    argv[argv.index("198.51.100.7/32")] = "0.0.0.0/0"
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        "error: invalid deploy settings: --admin-cidr: 0.0.0.0/0 would open SSH to the whole "
        "internet" in captured.err
    )
    assert "\nfix: " in captured.err

    missing = tmp_path / "missing.pub"
    assert cli.main(preflight(missing, tmp_path, "--region", "us-east-1", "--json")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"error: --ssh-key: cannot read {missing}: No such file or directory" in captured.err
    assert "fix: pass the public key file (.pub), e.g. --ssh-key ~/.ssh/id_ed25519.pub" in (
        captured.err
    )
    assert not (tmp_path / ".deploy").exists()


def test_missing_credentials_fail(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
):
    for name in AWS_CREDENTIALS:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = cli.main(preflight(aws_env, tmp_path, "--region", "us-east-1", "--json"))
    result = checks(capsys)
    assert code == 1
    assert "aws configure" in str(result["aws credentials"]["fix"])


def test_managed_zone_must_hold_the_domain(
    aws_env: Path, moto: MotoEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    import boto3

    route53 = boto3.client("route53", region_name="us-east-1")
    zone = route53.create_hosted_zone(Name="example.org", CallerReference=str(tmp_path))
    zone_id = zone["HostedZone"]["Id"].split("/")[-1]
    args = ["--region", "us-east-1", "--managed-zone", zone_id, "--json"]
    assert cli.main(preflight(aws_env, tmp_path, *args, "--domain", "gitlab.example.org")) == 0
    capsys.readouterr()
    assert cli.main(preflight(aws_env, tmp_path, *args, "--domain", "gitlab.other.net")) == 1
    assert "not inside zone example.org" in str(checks(capsys)["domain"]["detail"])


def test_missing_region_is_bad_input(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert cli.main(preflight(aws_env, tmp_path)) == 2
    assert "--region us-east-1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("instance_type", "code", "vcpus"),
    [("g6.2xlarge", "L-DB2E81BA", 8), ("g6e.xlarge", "L-DB2E81BA", 4)],
)
def test_g_family_types_count_against_the_g_quota(
    aws_env: Path,
    moto: MotoEndpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    instance_type: str,
    code: str,
    vcpus: int,
):
    saved = tmp_path / ".deploy" / "aws" / "settings.yml"
    saved.parent.mkdir(parents=True)
    saved.write_text(f"ollama_machine_type: {instance_type}\n")
    moto.set_gpu_vcpu_quota(4)
    code_ok = cli.main(preflight(aws_env, tmp_path, "--region", "us-east-1", "--json"))
    result = checks(capsys)[f"gpu quota {code}"]
    assert f"{instance_type} needs {vcpus}" in str(result["detail"])
    assert (code_ok == 0) == (vcpus <= 4)
    assert result["ok"] == (vcpus <= 4)


def test_p_family_counts_against_the_p_quota(
    aws_env: Path, moto: MotoEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    saved = tmp_path / ".deploy" / "aws" / "settings.yml"
    saved.parent.mkdir(parents=True)
    saved.write_text("ollama_machine_type: p5.4xlarge\n")
    moto.set_quota("L-417A185B", 0)
    code = cli.main(preflight(aws_env, tmp_path, "--region", "us-east-1", "--json"))
    result = checks(capsys)
    assert code == 1
    quota = result["gpu quota L-417A185B"]
    assert "gpu quota L-DB2E81BA" not in result
    assert not quota["ok"]
    assert '"Running On-Demand P instances" in us-east-1: 0 vCPUs' in str(quota["detail"])
    assert "p5.4xlarge needs 16" in str(quota["detail"])
    assert "--quota-code L-417A185B --desired-value 16 --region us-east-1" in str(quota["fix"])
    moto.set_quota("L-417A185B", {"us-east-1": 16, "default": 0})
    assert cli.main(preflight(aws_env, tmp_path, "--region", "us-east-1", "--json")) == 0
    assert checks(capsys)["gpu quota L-417A185B"]["ok"]
