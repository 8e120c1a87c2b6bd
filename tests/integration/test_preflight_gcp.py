"""GCP preflight through the real google-cloud-compute REST transport, against its double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from duoctl.preflight import render
from duoctl.preflight.checks import CheckResult
from duoctl.preflight.gcp import ComputeClients, run_checks
from duoctl.settings import DeploySettings
from google.auth.credentials import AnonymousCredentials

from tests.doubles.gcp_compute_api import ComputeWorld, gcp_compute_api

ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
)


@pytest.fixture
def world() -> ComputeWorld:
    return ComputeWorld.default()


@pytest.fixture
def clients(world: ComputeWorld) -> Iterator[ComputeClients]:
    with gcp_compute_api(world) as endpoint:
        yield ComputeClients.connect(AnonymousCredentials(), endpoint)


@pytest.fixture
def settings(tmp_path: Path) -> DeploySettings:
    key = tmp_path / "id_ed25519.pub"
    key.write_text(ED25519_KEY + "\n")
    return DeploySettings(
        cloud="gcp",
        region="europe-west4",
        project="duo-test",
        ssh_public_key_file=str(key),
        admin_cidr="198.51.100.7/32",
    )


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_all_checks_pass_with_quota(clients: ComputeClients, settings: DeploySettings):
    results = run_checks(settings, clients)
    assert all(r.ok for r in results), render(results)
    assert "europe-west4-a" in by_name(results)["machine types"].detail


def test_zero_global_gpu_quota_names_gpus_all_regions(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    world.project_quotas["GPUS_ALL_REGIONS"] = (0.0, 0.0)
    result = by_name(run_checks(settings, clients))["gpu quota GPUS_ALL_REGIONS"]
    assert not result.ok
    assert "limit 0" in result.detail
    assert "iam-admin/quotas?project=duo-test" in result.fix
    assert "--quota-id=GPUS-ALL-REGIONS-per-project" in result.fix
    assert "--dimensions" not in result.fix  # a global quota has no region


def test_regional_t4_quota_in_use_fails(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    world.region_quotas["europe-west4"]["NVIDIA_T4_GPUS"] = (1.0, 1.0)
    result = by_name(run_checks(settings, clients))["gpu quota NVIDIA_T4_GPUS"]
    assert not result.ok
    assert "--dimensions=region=europe-west4 --preferred-value=2" in result.fix


def test_zone_without_t4_names_another_zone(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    world.regions["europe-west4"]["europe-west4-a"].accelerators.clear()
    chosen = settings.model_copy(update={"zone": "europe-west4-a"})
    result = by_name(run_checks(chosen, clients))["machine types"]
    assert not result.ok
    assert "nvidia-tesla-t4 not offered in europe-west4-a" in result.detail
    assert "--zone europe-west4-b" in result.fix
    # Without a zone the first fitting one is chosen.
    assert "europe-west4-b" in by_name(run_checks(settings, clients))["machine types"].detail


def test_no_zone_offers_the_machine_type(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    for zone in world.regions["europe-west4"].values():
        zone.machine_types.discard("c2-standard-4")
    result = by_name(run_checks(settings, clients))["machine types"]
    assert not result.ok
    assert "no zone of europe-west4" in result.detail
    assert "another region" in result.fix


def test_unknown_region_and_project(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    region = by_name(run_checks(settings.model_copy(update={"region": "mars-north1"}), clients))
    assert not region["region"].ok
    assert "gcloud compute regions list" in region["region"].fix
    project = by_name(run_checks(settings.model_copy(update={"project": "nope"}), clients))
    assert not project["gcp project"].ok
    assert "gcloud projects list" in project["gcp project"].fix
    assert world.requests[-1] == "/compute/v1/projects/nope"


def test_cli_without_credentials_names_the_login_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from duoctl import cli

    # A missing credentials file makes google.auth fail at once, before any network lookup.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    key = tmp_path / "id.pub"
    key.write_text(ED25519_KEY)
    argv = ["preflight", "gcp", "--project", "duo-test", "--region", "europe-west4"]
    argv += ["--ssh-key", str(key), "--admin-cidr", "198.51.100.7/32"]
    argv += ["--deploy-dir", str(tmp_path), "--json"]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "gcloud auth application-default login" in out
    assert '"name": "gcp credentials"' in out


def test_expired_credentials_say_log_in_again(world: ComputeWorld, settings: DeploySettings):
    from google.auth import credentials, exceptions

    class Expired(credentials.Credentials):
        def refresh(self, request: object) -> None:
            raise exceptions.RefreshError("invalid_grant: Token has been expired or revoked.")

    with gcp_compute_api(world) as endpoint:
        results = by_name(run_checks(settings, ComputeClients.connect(Expired(), endpoint)))
    assert not results["gcp credentials"].ok
    assert "expired" in results["gcp credentials"].detail
    assert "gcloud auth application-default login" in results["gcp credentials"].fix
    assert world.requests == []  # refused before any request left


def test_g2_needs_the_l4_quota_and_a_zone_with_l4(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    g2 = settings.model_copy(update={"ollama_machine_type": "g2-standard-8"})
    region = world.regions["europe-west4"]
    for zone in region.values():
        zone.machine_types.add("g2-standard-8")
    region["europe-west4-c"].accelerators.add("nvidia-l4")
    world.region_quotas["europe-west4"]["NVIDIA_L4_GPUS"] = (1.0, 0.0)
    results = by_name(run_checks(g2, clients))
    assert all(r.ok for r in results.values()), render(list(results.values()))
    assert "NVIDIA_T4_GPUS" not in str(results)
    assert "needs 1 nvidia-l4" in results["gpu quota NVIDIA_L4_GPUS"].detail
    assert results["machine types"].value == "europe-west4-c"  # the only zone with the L4

    chosen = by_name(run_checks(g2.model_copy(update={"zone": "europe-west4-a"}), clients))
    assert "nvidia-l4 not offered in europe-west4-a" in chosen["machine types"].detail
    assert "--zone europe-west4-c" in chosen["machine types"].fix

    world.region_quotas["europe-west4"]["NVIDIA_L4_GPUS"] = (0.0, 0.0)
    quota = by_name(run_checks(g2, clients))["gpu quota NVIDIA_L4_GPUS"]
    assert not quota.ok
    assert (
        "--quota-id=NVIDIA-L4-GPUS-per-project-region --dimensions=region=europe-west4 "
        "--preferred-value=1" in quota.fix
    )


def test_a2_ultragpu_needs_the_a100_80gb_quota(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    a2 = settings.model_copy(update={"ollama_machine_type": "a2-ultragpu-1g"})
    results = by_name(run_checks(a2, clients))
    quota = results["gpu quota NVIDIA_A100_80GB_GPUS"]
    assert not quota.ok and "no NVIDIA_A100_80GB_GPUS quota in europe-west4" in quota.detail
    assert "--quota-id=NVIDIA-A100-80GB-GPUS-per-project-region" in quota.fix
    machine = results["machine types"]
    assert not machine.ok
    assert "offers all of a2-ultragpu-1g" in machine.detail
    assert machine.detail.endswith("nvidia-a100-80gb")
    assert "accelerator-types list --filter=name=nvidia-a100-80gb" in machine.fix


def test_two_gpus_need_two_in_the_global_quota(
    world: ComputeWorld, clients: ComputeClients, settings: DeploySettings
):
    g2 = settings.model_copy(update={"ollama_machine_type": "g2-standard-24"})
    world.region_quotas["europe-west4"]["NVIDIA_L4_GPUS"] = (4.0, 0.0)
    result = by_name(run_checks(g2, clients))["gpu quota GPUS_ALL_REGIONS"]
    assert not result.ok
    assert "needs 2 nvidia-l4" in result.detail
    assert "--quota-id=GPUS-ALL-REGIONS-per-project --preferred-value=2" in result.fix
