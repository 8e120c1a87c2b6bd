"""The three hosts of the `site` scenario reached over real SSH, as a deploy reaches the VMs.

The scenario's containers are created (create only: no prepare, no converge) at addresses
that are not the defaults, chosen as a Terraform apply on the moto double would give them: the
three private addresses in one network (the VPC's public and private subnets), GitLab's public
address an Elastic IP that moto allocated from a test range, on a second network. cloud-init's
part is played (tests/tooling/cloud_init.py): a generated ed25519 key is authorized for
`ubuntu`, and each container's host keys, as its console would print them (Ollama's in the
style where every line goes through the logger), are handed to moto's GetConsoleOutput. The
known_hosts file is built from what boto3 reads back from there, so the host keys travel the
way a deploy gets them. Then:

- paramiko logs in to GitLab on its public address (RejectPolicy: only the pinned keys are
  accepted), opens a direct-tcpip channel through it to the gateway's private address and logs
  in there too, verified the same way; `sudo -n true` passes on both;
- a wrong pinned key is refused, for the jump host and for the host behind it;
- OpenSSH (`ssh -F <config> -J`) does the same with `StrictHostKeyChecking yes` and the
  known_hosts file set in the ssh_config file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import paramiko
import pytest

from tests.doubles.aws_ec2_extras import set_console_output, set_elastic_ip_range
from tests.doubles.aws_moto_server import AWS_CREDENTIALS, UBUNTU_NOBLE_AMIS, moto_server
from tests.tooling import cloud_init
from tests.tooling.ssh_keys import generate_key

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
CONTAINERS = ("site-gitlab", "site-ai-gateway", "site-ollama")
PUBLIC_RANGE = "10.213.251.0/24"  # the Elastic IPs' test range (its first address: the bridge)
# As in a VPC 10.213.96.0/20 with a public subnet 10.213.97.0/24 and a private 10.213.98.0/24.
SYSLOG_HEADER = re.compile(r"^<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d [\w-]+: ")
# Both console styles of cloud-init (keys block printed as is, or through the logger).
THROUGH_LOGGER = {"site-gitlab": False, "site-ai-gateway": False, "site-ollama": True}
PRIVATE = {
    "DUO_SITE_PRIVATE_SUBNET": "10.213.96.0/20",
    "DUO_SITE_GITLAB_IP": "10.213.97.11",
    "DUO_SITE_GATEWAY_IP": "10.213.98.21",
    "DUO_SITE_OLLAMA_IP": "10.213.98.31",
}


@dataclass
class Hosts:
    folder: Path
    public_ip: str
    key_file: Path
    known_hosts: Path
    console: dict[str, str]  # container -> what GetConsoleOutput gave back

    @property
    def gateway_ip(self) -> str:
        return PRIVATE["DUO_SITE_GATEWAY_IP"]


def molecule(stage: str, env: dict[str, str]) -> None:
    print(f"\n----- molecule {stage} -s site -----", flush=True)
    subprocess.run(["molecule", stage, "-s", "site"], cwd=ANSIBLE_DIR, env=env, check=True)


def keys_in_console(text: str) -> list[tuple[str, str]]:
    """(type, base64) of each line of cloud-init's host key block, with or without logger's
    `<14>Mon DD HH:MM:SS ec2: ` before each line."""
    block = text.split(cloud_init.BEGIN_KEYS, 1)[1].split(cloud_init.END_KEYS, 1)[0]
    lines = [SYSLOG_HEADER.sub("", line) for line in block.splitlines()]
    return [(f[0], f[1]) for f in (line.split() for line in lines) if len(f) >= 2]


def ec2_client(endpoint: str) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def hosts(container_tooling: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    existing = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    if taken := sorted(set(existing) & set(CONTAINERS)):
        pytest.fail(f"containers of the site scenario exist already: {taken} (another run?)")
    folder = tmp_path_factory.mktemp("ssh-hosts")
    key_file, public_key = generate_key(folder)
    with moto_server() as endpoint:
        ec2 = ec2_client(endpoint)
        set_elastic_ip_range(endpoint, PUBLIC_RANGE)
        public_ip = ec2.allocate_address(Domain="vpc")["PublicIp"]
        env = dict(os.environ, **PRIVATE, PY_COLORS="0", NO_COLOR="1", ANSIBLE_FORCE_COLOR="0")
        env["DUO_SITE_PUBLIC_SUBNET"] = PUBLIC_RANGE
        env["DUO_SITE_GITLAB_PUBLIC_IP"] = public_ip
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        try:
            molecule("create", env)
            addresses = {"site-gitlab": [public_ip], "site-ai-gateway": [], "site-ollama": []}
            console = {}
            for container in CONTAINERS:
                instance = ec2.run_instances(
                    ImageId=UBUNTU_NOBLE_AMIS[-1]["ami_id"],
                    InstanceType="t3.micro",
                    MinCount=1,
                    MaxCount=1,
                )["Instances"][0]["InstanceId"]
                text = cloud_init.provision(
                    container,
                    public_key,
                    addresses[container],
                    all_through_logger=THROUGH_LOGGER[container],
                )
                set_console_output(endpoint, instance, text)
                console[container] = ec2.get_console_output(InstanceId=instance)["Output"]
            known_hosts = folder / "known_hosts"
            pinned = {
                public_ip: console["site-gitlab"],
                PRIVATE["DUO_SITE_GATEWAY_IP"]: console["site-ai-gateway"],
                PRIVATE["DUO_SITE_OLLAMA_IP"]: console["site-ollama"],
            }
            known_hosts.write_text(
                "".join(
                    f"{address} {key_type} {blob}\n"
                    for address, text in pinned.items()
                    for key_type, blob in keys_in_console(text)
                )
            )
            yield Hosts(folder, public_ip, key_file, known_hosts, console)
        finally:
            molecule("destroy", env)


def client(known_hosts: Path) -> paramiko.SSHClient:
    ssh = paramiko.SSHClient()
    ssh.load_host_keys(str(known_hosts))
    ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
    return ssh


def connect(ssh: paramiko.SSHClient, address: str, key_file: Path, sock: Any = None) -> None:
    ssh.connect(
        address,
        username=cloud_init.USER,
        key_filename=str(key_file),
        look_for_keys=False,
        allow_agent=False,
        timeout=15,
        banner_timeout=15,
        auth_timeout=15,
        sock=sock,
    )


def run(ssh: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _, stdout, _ = ssh.exec_command(command, timeout=30)
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out


def through(jump: paramiko.SSHClient, address: str) -> paramiko.Channel:
    transport = jump.get_transport()
    assert transport is not None
    return transport.open_channel("direct-tcpip", (address, 22), ("127.0.0.1", 0))


def test_each_console_carries_the_hosts_own_keys(hosts: Hosts) -> None:
    blocks = {name: keys_in_console(text) for name, text in hosts.console.items()}
    for name, keys in blocks.items():
        assert {t for t, _ in keys} == {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"}, name
    # made at each container's boot: no two hosts share a key
    blobs = [blob for keys in blocks.values() for _, blob in keys]
    assert len(set(blobs)) == len(blobs)


def test_paramiko_through_the_jump_host_with_pinned_keys(hosts: Hosts) -> None:
    with client(hosts.known_hosts) as gitlab:
        connect(gitlab, hosts.public_ip, hosts.key_file)
        assert run(gitlab, "sudo -n true && hostname") == (0, "site-gitlab\n")
        with client(hosts.known_hosts) as gateway:
            connect(
                gateway, hosts.gateway_ip, hosts.key_file, sock=through(gitlab, hosts.gateway_ip)
            )
            assert run(gateway, "sudo -n true && hostname") == (0, "site-ai-gateway\n")
            assert run(gateway, "id -un") == (0, "ubuntu\n")


def test_a_wrong_host_key_is_refused(hosts: Hosts) -> None:
    wrong = hosts.folder / "known_hosts.wrong"
    other = paramiko.ECDSAKey.generate()
    lines = hosts.known_hosts.read_text().splitlines()
    # the jump host's keys replaced by another key of each type it offers
    wrong.write_text(
        "".join(
            f"{hosts.public_ip} {other.get_name()} {other.get_base64()}\n"
            if line.startswith(f"{hosts.public_ip} ")
            else f"{line}\n"
            for line in lines
        )
    )
    with client(wrong) as ssh, pytest.raises(paramiko.BadHostKeyException):
        connect(ssh, hosts.public_ip, hosts.key_file)
    # the host behind the jump host: its pinned keys are another host's
    ollama_ip = PRIVATE["DUO_SITE_OLLAMA_IP"]
    swapped = hosts.folder / "known_hosts.swapped"
    swapped.write_text(
        "".join(
            f"{line.replace(ollama_ip, hosts.gateway_ip, 1)}\n"
            for line in lines
            if not line.startswith(f"{hosts.gateway_ip} ")
        )
    )
    with client(hosts.known_hosts) as gitlab:
        connect(gitlab, hosts.public_ip, hosts.key_file)
        with client(swapped) as gateway, pytest.raises(paramiko.BadHostKeyException):
            connect(
                gateway, hosts.gateway_ip, hosts.key_file, sock=through(gitlab, hosts.gateway_ip)
            )


def ssh_config(hosts: Hosts, known_hosts: Path) -> Path:
    config = hosts.folder / f"ssh_config.{known_hosts.name}"
    config.write_text(
        "Host *\n"
        f"  User {cloud_init.USER}\n"
        f"  IdentityFile {hosts.key_file}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        "  ConnectTimeout 15\n"
    )
    return config


def openssh(hosts: Hosts, known_hosts: Path, target: str) -> subprocess.CompletedProcess[str]:
    command = ["ssh", "-F", str(ssh_config(hosts, known_hosts)), "-J", hosts.public_ip, target]
    return subprocess.run(
        [*command, "sudo -n true && hostname"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_openssh_through_the_jump_host_with_strict_host_key_checking(hosts: Hosts) -> None:
    if shutil.which("ssh") is None:
        pytest.skip("the OpenSSH client is not installed")
    done = openssh(hosts, hosts.known_hosts, hosts.gateway_ip)
    assert (done.returncode, done.stdout) == (0, "site-ai-gateway\n"), done.stderr
    done = openssh(hosts, hosts.known_hosts, PRIVATE["DUO_SITE_OLLAMA_IP"])
    assert (done.returncode, done.stdout) == (0, "site-ollama\n"), done.stderr
    # the gateway's keys missing from the file: refused, not learned
    partial = hosts.folder / "known_hosts.partial"
    partial.write_text(
        "".join(
            f"{line}\n"
            for line in hosts.known_hosts.read_text().splitlines()
            if not line.startswith(f"{hosts.gateway_ip} ")
        )
    )
    done = openssh(hosts, partial, hosts.gateway_ip)
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr
    assert hosts.gateway_ip not in partial.read_text()
