"""Host keys: cloud-init's console block parsed, keys pinned per deployment, trust on first
use through paramiko against SSH servers on loopback, a changed key refused."""

from __future__ import annotations

import base64
from pathlib import Path

import paramiko
import pytest
from duoctl import ssh
from duoctl.errors import DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.hostkeys import KnownHosts, keys_from_console, known_hosts_name, parse_key

from tests.doubles.ssh_hosts import ssh_hosts


def blob(key_type: str, extra: bytes = b"x" * 32) -> str:
    name = key_type.encode()
    return base64.b64encode(len(name).to_bytes(4, "big") + name + extra).decode()


ED = blob("ssh-ed25519")
ECDSA = blob("ecdsa-sha2-nistp256")
CONSOLE = f"""[   12.3] cloud-init[812]: Cloud-init v. 24.4 running 'modules:final'
<14>Dec  1 03:00:00 ec2: #############################################################
<14>Dec  1 03:00:00 ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
<14>Dec  1 03:00:00 ec2: 256 SHA256:abc root@ip-10-0-1-5 (ED25519)
<14>Dec  1 03:00:00 ec2: -----END SSH HOST KEY FINGERPRINTS-----
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 {ECDSA} root@ip-10-0-1-5
<14>Dec  1 03:00:00 ec2: ssh-ed25519 {ED} root@ip-10-0-1-5
ssh-ed25519 {blob("ssh-rsa")} a type that does not match its name
-----END SSH HOST KEY KEYS-----
"""


def test_console_block_is_parsed_and_checked() -> None:
    """Both console styles: the block as is, and each line through syslog (current helper)."""
    keys = keys_from_console(CONSOLE)
    assert [(k.key_type, k.blob) for k in keys] == [
        ("ecdsa-sha2-nistp256", ECDSA),
        ("ssh-ed25519", ED),
    ]
    assert keys_from_console("no keys printed yet") == []
    assert parse_key("ssh-dss", blob("ssh-dss")) is None
    assert parse_key("ssh-ed25519", "not base64!") is None


def test_pinning_replaces_only_that_host(tmp_path: Path) -> None:
    known = KnownHosts(tmp_path / "known_hosts")
    keys = keys_from_console(CONSOLE)
    assert known.pin("10.0.1.5", keys) is True
    assert known.pin("10.0.1.5", keys) is False, "the same keys again change nothing"
    assert known.pin("[10.0.2.7]:2222", keys[:1]) is True
    assert known.pin("10.0.1.5", keys[1:]) is True, "a re-created VM's keys replace its old ones"
    lines = (tmp_path / "known_hosts").read_text().splitlines()
    assert lines == [f"[10.0.2.7]:2222 ecdsa-sha2-nistp256 {ECDSA}", f"10.0.1.5 ssh-ed25519 {ED}"]
    assert oct((tmp_path / "known_hosts").stat().st_mode & 0o777) == "0o600"
    assert known_hosts_name("10.0.1.5", 22) == "10.0.1.5"


def test_first_login_pins_and_a_changed_key_is_refused(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    with ssh_hosts(["gitlab-vm"]) as hosts:
        host = hosts["gitlab-vm"]
        key = str(hosts.key_file)
        ssh.connect("127.0.0.1", host.port, "ubuntu", key, 10, known_hosts).close()
        pinned = known_hosts.read_text()
        assert f"[127.0.0.1]:{host.port} ssh-rsa " in pinned
        ssh.connect("127.0.0.1", host.port, "ubuntu", key, 10, known_hosts).close()
        assert known_hosts.read_text() == pinned, "a known key is not written again"
        host.host_key = paramiko.RSAKey.generate(2048)  # the VM now shows another key
        with pytest.raises(DuoctlError, match="differs from the key pinned") as refused:
            ssh.connect("127.0.0.1", host.port, "ubuntu", key, 10, known_hosts)
        assert f"ssh-keygen -R [127.0.0.1]:{host.port} -f {known_hosts}" in refused.value.fix


def test_one_run_per_deployment_folder(tmp_path: Path) -> None:
    folder = DeploymentFolder.of(tmp_path, "staging", tmp_path)
    busy = pytest.raises(DuoctlError, match=r"another duoctl run \(PID \d+\) is using")
    with folder.lock(), busy, folder.lock():
        pass
    with folder.lock():  # released
        pass


def test_folder_names_and_paths_are_checked(tmp_path: Path) -> None:
    with pytest.raises(DuoctlError, match="deployment name"):
        DeploymentFolder.of(tmp_path, "../etc", tmp_path)
    with pytest.raises(DuoctlError, match="blank, quote or special character"):
        DeploymentFolder.of(tmp_path / "my deploys", "aws", tmp_path)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(DuoctlError, match="cannot write the deployment folder"):
        DeploymentFolder.of(blocked, "aws", tmp_path).create()
