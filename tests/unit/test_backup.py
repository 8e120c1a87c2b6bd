"""duoctl backup: which host, the command run there, progress, the result and the failures.

The SSH login is replaced by a fake session that plays back what the gitlab role's backup
script prints (tests/doubles' stand-in gitlab-backup lines, then its DUO_BACKUP summary); the
script itself runs for real in the gitlab role's Molecule scenario (test_backup.py there).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from duoctl import backup
from duoctl.cli import main
from duoctl.deployment import Deployment, Host
from duoctl.errors import DuoctlError
from duoctl.folder import DeploymentFolder

OUTPUTS: dict[str, Any] = {
    "cloud": "gcp",
    "gitlab_public_ip": "203.0.113.10",
    "gitlab_private_ip": "10.0.1.10",
    "gateway_private_ip": "10.0.2.10",
    "ollama_private_ip": "10.0.3.10",
    "gitlab_domain": "gitlab.example.com",
    "ssh_user": "ubuntu",
}
BACKUP_ID = "1764558000_2026_12_01_19.4.1-ee"
SUMMARY = {
    "backup_id": BACKUP_ID,
    "archive": f"{BACKUP_ID}_gitlab_backup.tar",
    "config": f"{BACKUP_ID}_gitlab_config.tar.cms",
    "local_dir": "/var/opt/gitlab/backups",
    "provider": "google",
    "remote": "gs://duo-backups-1234",
    "uploaded": True,
}
PROGRESS = [
    "duo-backup: gitlab-backup create",
    "2026-12-01 03:00:00 UTC -- Dumping database ... done",
    "duo-backup: uploading x to gs://duo-backups-1234",
]


@dataclass
class FakeSession:
    lines: list[str]
    status: int = 0
    err: str = ""
    commands: list[str] = field(default_factory=list)
    closed: bool = False

    def stream(self, command: str, on_line: Callable[[str], None]) -> tuple[int, str]:
        self.commands.append(command)
        for line in self.lines:
            on_line(line)
        return self.status, self.err

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def folder(tmp_path: Path) -> DeploymentFolder:
    found = DeploymentFolder.of(tmp_path / ".deploy", "gcp", tmp_path)
    found.create()
    deployment = Deployment.from_outputs(OUTPUTS, "gcp")
    found.inventory.write_text(deployment.inventory_text(found.ssh_config))
    return found


def options(folder: DeploymentFolder, **changes: Any) -> backup.BackupOptions:
    values: dict[str, Any] = {"name": None, "deploy_dir": folder.root.parent, **changes}
    return backup.BackupOptions(**values)


def factory(session: FakeSession, seen: list[Host]) -> Any:
    def make(
        deployment: Deployment, host: Host, key: str | None, found: DeploymentFolder, t: float
    ) -> FakeSession:
        seen.append(host)
        assert found.known_hosts.name == "known_hosts"  # the deployment's pinned keys
        return session

    return make


def run(
    folder: DeploymentFolder, session: FakeSession, **changes: Any
) -> tuple[int, str, list[Host]]:
    seen: list[Host] = []
    out = io.StringIO()
    code = backup.run(options(folder, **changes), factory(session, seen), out)
    return code, out.getvalue(), seen


def test_runs_the_script_through_sudo_on_gitlab_and_reports(
    folder: DeploymentFolder, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder.secrets_dir / "backup_config.key").write_text("key\n")
    session = FakeSession([*PROGRESS, "DUO_BACKUP " + json.dumps(SUMMARY)])
    code, out, seen = run(folder, session)
    assert code == 0
    assert [h.group for h in seen] == ["gitlab"]
    assert session.commands == ["sudo -n /usr/local/sbin/duo-gitlab-backup"]
    assert session.closed
    assert "  | 2026-12-01 03:00:00 UTC -- Dumping database ... done" in out  # progress
    assert f"backup {BACKUP_ID} done on gitlab-vm" in out
    assert f"archive        {BACKUP_ID}_gitlab_backup.tar" in out
    assert "uploaded to    gs://duo-backups-1234/" in out
    assert str(folder.secrets_dir / "backup_config.key") in out  # how to decrypt
    assert "DUO_BACKUP" not in out


def test_json_output_keeps_progress_on_stderr(
    folder: DeploymentFolder, capsys: pytest.CaptureFixture[str]
) -> None:
    session = FakeSession([*PROGRESS, "DUO_BACKUP " + json.dumps(SUMMARY)])
    code, out, _ = run(folder, session, json=True)
    assert code == 0
    result = json.loads(out)
    assert result["backup_id"] == BACKUP_ID
    assert result["remote"] == "gs://duo-backups-1234"
    assert result["host"] == "gitlab-vm"
    assert "Dumping database" in capsys.readouterr().err


def test_no_bucket_says_where_the_backup_stays(folder: DeploymentFolder) -> None:
    summary = {**SUMMARY, "provider": "", "remote": "", "uploaded": False}
    code, out, _ = run(folder, FakeSession(["DUO_BACKUP " + json.dumps(summary)]))
    assert code == 0
    assert "kept in        /var/opt/gitlab/backups on gitlab-vm (no bucket" in out
    assert "uploaded" not in out


@pytest.mark.parametrize(
    ("status", "err", "message"),
    [
        (1, "sudo: /usr/local/sbin/duo-gitlab-backup: command not found", "has no backup script"),
        (1, "duo-backup: another backup is running (lock ...)", "another backup is running"),
        (1, "sudo: a password is required", "asks for a password"),
        (1, "rake aborted!\nFog::Errors::Error: upload failed", "failed (exit 1)"),
    ],
)
def test_failures_are_named(folder: DeploymentFolder, status: int, err: str, message: str) -> None:
    session = FakeSession(PROGRESS, status=status, err=err)
    with pytest.raises(DuoctlError) as raised:
        run(folder, session)
    assert message in raised.value.message
    assert session.closed


def test_a_script_without_summary_is_named(folder: DeploymentFolder) -> None:
    with pytest.raises(DuoctlError, match="no summary line"):
        run(folder, FakeSession(PROGRESS))


def test_no_deployment_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backup", "--deploy-dir", str(tmp_path), "--name", "nowhere"])
    assert code == 2
    assert "no deployment inventory" in capsys.readouterr().err


def test_own_inventory_is_used(folder: DeploymentFolder, tmp_path: Path) -> None:
    own = tmp_path / "hosts.yml"
    own.write_text(folder.inventory.read_text())
    session = FakeSession(["DUO_BACKUP " + json.dumps(SUMMARY)])
    seen: list[Host] = []
    code = backup.run(
        backup.BackupOptions(name=None, deploy_dir=tmp_path / "elsewhere", inventory=own),
        factory(session, seen),
        io.StringIO(),
    )
    assert code == 0
    assert seen[0].address == "203.0.113.10"


def test_cli_registers_backup() -> None:
    from duoctl.cli import build_parser

    args = build_parser().parse_args(["backup", "--name", "staging", "--json"])
    assert args.command == "backup"
    assert args.name == "staging"
