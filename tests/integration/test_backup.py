"""`duoctl backup` over real SSH on loopback: the SSH servers of tests/doubles/ssh_hosts.py, the
GitLab VM's made to run the backup command as the gitlab role's script answers it (progress
lines streamed one by one, then its DUO_BACKUP summary; or a failure on standard error).

The script itself runs on the stand-in GitLab package in the gitlab role's Molecule scenario.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml
from duoctl.cli import main

from tests.doubles import ssh_hosts

COMMAND = "sudo -n /usr/local/sbin/duo-gitlab-backup"
BACKUP_ID = "1764558000_2026_12_01_19.4.1-ee"
SUMMARY = {
    "backup_id": BACKUP_ID,
    "archive": f"{BACKUP_ID}_gitlab_backup.tar",
    "config": f"{BACKUP_ID}_gitlab_config.tar.cms",
    "local_dir": "/var/opt/gitlab/backups",
    "provider": "aws",
    "remote": "s3://duo-backups-1234",
    "uploaded": True,
}
PROGRESS = [
    "duo-backup: gitlab-backup create",
    "2026-12-01 03:00:00 UTC -- Dumping database ... done",
    "2026-12-01 03:00:01 UTC -- Uploading backup archive to remote storage x ... done",
]


def streaming(lines: list[str], code: int, err: str) -> Any:
    """An exec handler: the GitLab VM sends each line apart, then stderr and the exit status."""

    def exec_request(self: Any, channel: paramiko.Channel, command: bytes) -> bool:
        self.host.execs.append(command.decode())

        def run() -> None:
            try:
                for line in lines:
                    channel.sendall((line + "\n").encode())
                    time.sleep(0.05)
                channel.sendall_stderr(err.encode())
                channel.send_exit_status(code)
                channel.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass

        self.run_after_reply(channel, run)  # once the exec request is answered, as sshd does
        return True

    return exec_request


def inventory(hosts: ssh_hosts.SshHosts, tmp_path: Path) -> Path:
    path = tmp_path / "own" / "hosts.yml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(ssh_hosts.inventory_for(hosts)))
    return path


def test_backup_streams_progress_and_reports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [*PROGRESS, "DUO_BACKUP " + json.dumps(SUMMARY)]
    monkeypatch.setattr(ssh_hosts._Interface, "check_channel_exec_request", streaming(lines, 0, ""))
    with ssh_hosts.ssh_hosts(["gitlab-vm", "gateway-vm", "ollama-vm"]) as hosts:
        path = inventory(hosts, tmp_path)
        code = main(["backup", "--inventory", str(path), "--ssh-key", str(hosts.key_file)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert hosts["gitlab-vm"].execs == [COMMAND]
        assert hosts["gateway-vm"].execs == [] and hosts["ollama-vm"].execs == []
    for line in PROGRESS:
        assert f"  | {line}" in out
    assert f"backup {BACKUP_ID} done on gitlab-vm" in out
    assert "uploaded to    s3://duo-backups-1234/" in out
    known_hosts = (path.parent / "known_hosts").read_text()
    assert known_hosts.startswith(f"[127.0.0.1]:{hosts['gitlab-vm'].port} ssh-rsa ")  # pinned


def test_backup_failure_is_named_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = "duo-backup: another backup is running (lock /run/duo-gitlab-backup.lock)\n"
    monkeypatch.setattr(ssh_hosts._Interface, "check_channel_exec_request", streaming([], 1, err))
    with ssh_hosts.ssh_hosts(["gitlab-vm", "gateway-vm", "ollama-vm"]) as hosts:
        path = inventory(hosts, tmp_path)
        code = main(["backup", "--inventory", str(path), "--ssh-key", str(hosts.key_file)])
    assert code == 1
    assert "error: another backup is running on gitlab-vm" in capsys.readouterr().err


def test_unreachable_gitlab_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ssh_hosts.ssh_hosts(["gitlab-vm", "gateway-vm", "ollama-vm"]) as hosts:
        path = inventory(hosts, tmp_path)
        key = str(hosts.key_file)
        data = yaml.safe_load(path.read_text())
    # The servers are gone: nothing listens on the inventory's port any more.
    path.write_text(yaml.safe_dump(data))
    code = main(["backup", "--inventory", str(path), "--ssh-key", key])
    assert code == 1
    assert "cannot log in to gitlab-vm" in capsys.readouterr().err
