"""The moto double's EC2 additions (tests/doubles/aws_ec2_extras.py), through boto3: Elastic IPs
from a test range, and GetConsoleOutput in EC2's shape (on the wire `Output` is base64; boto3
hands it back decoded, by botocore's own handler)."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.handlers import decode_console_output

from tests.doubles.aws_ec2_extras import set_console_output, set_elastic_ip_range
from tests.doubles.aws_moto_server import AWS_CREDENTIALS, UBUNTU_NOBLE_AMIS, moto_server

RANGE = "10.213.250.0/29"  # hosts .1-.6; .1 is the gateway's


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Any]:
    with moto_server() as url:
        yield url


@pytest.fixture
def ec2(endpoint: Any) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def ec2_raw(ec2: Any) -> Any:
    """The same client without botocore's base64 decoding of Output: what EC2 sends."""
    ec2.meta.events.unregister("after-call.ec2.GetConsoleOutput", decode_console_output)
    return ec2


def launch(ec2: Any) -> str:
    answer = ec2.run_instances(
        ImageId=UBUNTU_NOBLE_AMIS[-1]["ami_id"], InstanceType="t3.micro", MinCount=1, MaxCount=1
    )
    return str(answer["Instances"][0]["InstanceId"])


def test_elastic_ips_come_from_the_range_lowest_first_without_the_gateway(
    endpoint: Any, ec2: Any
) -> None:
    set_elastic_ip_range(endpoint, RANGE)
    try:
        first = ec2.allocate_address(Domain="vpc")
        second = ec2.allocate_address(Domain="vpc")
        assert [first["PublicIp"], second["PublicIp"]] == ["10.213.250.2", "10.213.250.3"]
        ec2.release_address(AllocationId=first["AllocationId"])
        # not handed out again while others are free
        third = ec2.allocate_address(Domain="vpc")
        assert third["PublicIp"] == "10.213.250.4"
        rest = [ec2.allocate_address(Domain="vpc")["PublicIp"] for _ in range(3)]
        assert rest == ["10.213.250.5", "10.213.250.6", "10.213.250.2"]  # then reused
        with pytest.raises(ClientError) as failure:
            ec2.allocate_address(Domain="vpc")
        assert failure.value.response["Error"]["Code"] == "AddressLimitExceeded"
        listed = {a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]}
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(RANGE) for ip in listed)
    finally:
        for address in ec2.describe_addresses()["Addresses"]:
            ec2.release_address(AllocationId=address["AllocationId"])
        set_elastic_ip_range(endpoint, None)
    assert not ec2.allocate_address(Domain="vpc")["PublicIp"].startswith("10.213.")


def test_console_output_is_absent_until_set_then_base64_of_the_text(
    endpoint: Any, ec2_raw: Any
) -> None:
    instance_id = launch(ec2_raw)
    before = ec2_raw.get_console_output(InstanceId=instance_id)
    assert before["InstanceId"] == instance_id
    assert "Output" not in before
    assert isinstance(before["Timestamp"], datetime)

    text = "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA root@host\n"
    text += "-----END SSH HOST KEY KEYS-----\n"
    set_console_output(endpoint, instance_id, text)
    after = ec2_raw.get_console_output(InstanceId=instance_id, Latest=True)
    assert after["InstanceId"] == instance_id
    assert base64.b64decode(after["Output"], validate=True).decode() == text
    assert after["Timestamp"] >= before["Timestamp"].replace(microsecond=0)

    other = launch(ec2_raw)
    assert "Output" not in ec2_raw.get_console_output(InstanceId=other)


def test_boto3_hands_back_the_text_decoded(endpoint: Any, ec2: Any) -> None:
    instance_id = launch(ec2)
    set_console_output(endpoint, instance_id, "ssh-ed25519 AAAA root@host\n")
    assert (
        ec2.get_console_output(InstanceId=instance_id)["Output"] == "ssh-ed25519 AAAA root@host\n"
    )


def test_console_output_keeps_the_last_64_kb(endpoint: Any, ec2_raw: Any) -> None:
    instance_id = launch(ec2_raw)
    set_console_output(endpoint, instance_id, "x" * 70_000 + "END")
    output = base64.b64decode(ec2_raw.get_console_output(InstanceId=instance_id)["Output"])
    assert len(output) == 64 * 1024
    assert output.endswith(b"xEND")


def test_console_output_of_an_unknown_instance_fails_as_ec2_does(ec2: Any) -> None:
    with pytest.raises(ClientError) as failure:
        ec2.get_console_output(InstanceId="i-0123456789abcdef0")
    assert failure.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"


def test_run_instances_is_idempotent_by_client_token(ec2: Any) -> None:
    """A retried RunInstances (same ClientToken) answers the first reservation, as EC2 does."""
    image = UBUNTU_NOBLE_AMIS[-1]["ami_id"]
    request = {"ImageId": image, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    first = ec2.run_instances(**request, ClientToken="retry-1")
    again = ec2.run_instances(**request, ClientToken="retry-1")
    other = ec2.run_instances(**request, ClientToken="retry-2")
    assert first["ReservationId"] == again["ReservationId"] != other["ReservationId"]
    assert first["Instances"][0]["InstanceId"] == again["Instances"][0]["InstanceId"]
