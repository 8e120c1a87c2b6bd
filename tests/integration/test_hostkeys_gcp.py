"""Google Cloud host keys: read from the VM's guest attributes (namespace hostkeys/) through the
google-cloud-compute REST transport, against the Compute API double."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from duoctl.hostkeys import gcp_host_keys
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.doubles.gcp_compute_api import ComputeWorld, gcp_compute_api

ZONE = "europe-west4-a"


def blob(key_type: str) -> str:
    name = key_type.encode()
    return base64.b64encode(len(name).to_bytes(4, "big") + name + b"k" * 32).decode()


@pytest.fixture
def world() -> ComputeWorld:
    return ComputeWorld.default()


@pytest.fixture
def instances(world: ComputeWorld) -> Iterator[compute_v1.InstancesClient]:
    with gcp_compute_api(world) as endpoint:
        yield compute_v1.InstancesClient(
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
            transport="rest",
        )


def test_published_keys_are_read_and_checked(
    world: ComputeWorld, instances: compute_v1.InstancesClient
) -> None:
    world.guest_attributes[(ZONE, "duo-gitlab")] = {
        "hostkeys/ssh-ed25519": blob("ssh-ed25519"),
        "hostkeys/ecdsa-sha2-nistp256": blob("ecdsa-sha2-nistp256"),
        "hostkeys/ssh-rsa": blob("ssh-ed25519"),  # a blob of another type: dropped
        "other/ssh-ed25519": blob("ssh-ed25519"),  # another namespace: not asked for
    }
    keys = gcp_host_keys(instances, "duo-test", ZONE, "duo-gitlab")
    assert sorted(k.key_type for k in keys) == ["ecdsa-sha2-nistp256", "ssh-ed25519"]
    assert world.requests[-1].endswith("/instances/duo-gitlab/getGuestAttributes")


def test_nothing_published_yet_is_an_error_the_ssh_wait_retries(
    instances: compute_v1.InstancesClient,
) -> None:
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        gcp_host_keys(instances, "duo-test", ZONE, "duo-ollama")
