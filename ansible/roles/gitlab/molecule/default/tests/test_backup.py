"""The gitlab role's backups, and the README's restore procedure, on the stand-in package.

gitlab-node1 uploads to Google Cloud Storage with the VM's service account, and the role made
the configuration copies' key pair on the controller; gitlab-node2 uploads to S3 with the
instance profile (SSE-S3), encrypting to the user's certificate (its key never given to the
role). The stand-in emulates both buckets under /var/opt/gitlab/standin/remote/ (see
tests/doubles/gitlab_ee_package/README.md).

test_restore_drill runs the README's "Backups and restore" procedure on gitlab-node1: a
backup; the host loses its data and secrets; a restore without the backed-up
gitlab-secrets.json leaves the token table unreadable (doctor:secrets), then the decrypted
configuration copy makes it whole again.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
BACKUPS = "/var/opt/gitlab/backups"
SCRIPT = "/usr/local/sbin/duo-gitlab-backup"
UNIT = "duo-gitlab-backup"
PROVIDER = {"gitlab-node1": "google", "gitlab-node2": "aws"}
BUCKET = {"gitlab-node1": "duo-test-backups", "gitlab-node2": "duo-test-backups-2"}
KEY = {"gitlab-node1": EPHEMERAL / "secrets" / "backup_config.key"}
CERT = {
    "gitlab-node1": EPHEMERAL / "secrets" / "backup_config.crt",
    "gitlab-node2": EPHEMERAL / "artifacts" / "backup" / "user.crt",
}


@pytest.fixture(scope="module")
def name(host: Any) -> str:
    return str(host.check_output("hostname"))


def bucket_dir(name: str) -> str:
    return f"/var/opt/gitlab/standin/remote/{PROVIDER[name]}/{BUCKET[name]}"


def summary(output: str) -> dict[str, Any]:
    line = next(line for line in output.splitlines() if line.startswith("DUO_BACKUP "))
    result: dict[str, Any] = json.loads(line.removeprefix("DUO_BACKUP "))
    return result


def test_gitlab_rb_uploads_with_the_vms_identity(host: Any, name: str) -> None:
    text = host.file("/etc/gitlab/gitlab.rb").content_string
    assert f"gitlab_rails['backup_upload_remote_directory'] = '{BUCKET[name]}'" in text
    assert "gitlab_rails['backup_keep_time'] = 604800" in text
    if PROVIDER[name] == "google":
        assert "'provider' => 'Google'" in text
        assert "'google_application_default' => true" in text
        assert "'google_project' => 'duo-test-project'" in text
    else:
        assert "'provider' => 'AWS'" in text
        assert "'region' => 'eu-west-1'" in text
        assert "'use_iam_profile' => true" in text
        assert "'server_side_encryption' => 'AES256'" in text
    for static_key in ("aws_access_key_id", "aws_secret_access_key", "google_json_key"):
        assert static_key not in text


def test_daily_timer_enabled(host: Any) -> None:
    assert host.service(f"{UNIT}.timer").is_enabled
    assert host.service(f"{UNIT}.timer").is_running
    unit = host.file(f"/etc/systemd/system/{UNIT}.service").content_string
    assert f"ExecStart={SCRIPT} --cron" in unit
    timer = host.file(f"/etc/systemd/system/{UNIT}.timer").content_string
    assert "OnCalendar=*-*-* 02:30:00" in timer
    assert "Persistent=true" in timer
    next_run = host.check_output(f"systemctl show -p NextElapseUSecRealtime --value {UNIT}.timer")
    assert next_run.strip() not in ("", "0", "n/a")


def test_private_key_stays_on_the_controller(host: Any, name: str) -> None:
    cert = CERT[name]
    on_host = host.file("/etc/gitlab/duo/backup-config.crt")
    assert on_host.content_string == cert.read_text()
    if name in KEY:  # made by the role, on the controller only
        assert stat.S_IMODE(KEY[name].stat().st_mode) == 0o600
    key = KEY.get(name, EPHEMERAL / "artifacts" / "backup" / "user.key").read_text()
    body = [line for line in key.splitlines() if line and not line.startswith("-----")]
    found = host.run(f"grep -rlF -e {body[1]} /etc /var/opt /usr/local")
    assert found.stdout.strip() == ""


def test_timer_unit_makes_and_uploads_a_backup(host: Any, name: str) -> None:
    """The daily unit as the timer starts it (GitLab's CRON=1 mode)."""
    with host.sudo():
        host.check_output(f"systemctl start {UNIT}.service")
        journal = host.check_output(f"journalctl --no-pager --output=cat -u {UNIT}.service")
    result = summary(journal)
    assert result["provider"] == PROVIDER[name]
    assert result["uploaded"] is True
    scheme = "gs" if PROVIDER[name] == "google" else "s3"
    assert result["remote"] == f"{scheme}://{BUCKET[name]}"
    archive, config = result["archive"], result["config"]
    assert archive == f"{result['backup_id']}_gitlab_backup.tar"
    assert config == f"{result['backup_id']}_gitlab_config.tar.cms"
    assert result["backup_id"].endswith("_19.4.1-ee")
    for file in (archive, config):
        local = host.file(f"{BACKUPS}/{file}")
        assert local.user == "git"
        assert local.mode == 0o600
        assert host.file(f"{bucket_dir(name)}/{file}").exists
    log = host.file("/var/log/gitlab/standin/calls.log").content_string
    skip = "SKIP=registry " if name == "gitlab-node1" else ""
    assert f"gitlab-backup create {skip}CRON=1" in log


def fetch(host: Any, remote: str, local: Path) -> Path:
    host.ansible("fetch", f"src={remote} dest={local} flat=true", become=True, check=False)
    return local


def decrypt(config: Path, name: str, out: Path) -> list[str]:
    """The README's decryption, on the controller."""
    tar = out / "config.tar"
    subprocess.run(
        [
            *("openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(config)),
            *("-recip", str(CERT[name]), "-inkey", str(KEY[name]), "-out", str(tar)),
        ],
        check=True,
    )
    with tarfile.open(tar) as archive:
        names = archive.getnames()
        archive.extractall(out / "config", filter="data")
    return names


def doctor_failures(host: Any) -> int:
    with host.sudo():
        out = host.check_output("gitlab-rake gitlab:doctor:secrets")
    line = next(line for line in out.splitlines() if "PersonalAccessToken failures" in line)
    return int(line.rsplit(":", 1)[1])


def test_restore_drill(host: Any, name: str, tmp_path: Path) -> None:
    if name not in KEY:
        pytest.skip("the drill runs on gitlab-node1 (its key is on the controller)")
    secrets_before = host.file("/etc/gitlab/gitlab-secrets.json").content_string
    tokens_before = host.file("/var/opt/gitlab/standin/tokens.json").content_string
    assert json.loads(tokens_before)

    # 1. A backup now, as `duoctl backup` runs it: progress shown, the summary last.
    with host.sudo():
        run = host.run(SCRIPT)
    assert run.rc == 0, run.stderr
    assert "Dumping database ... done" in run.stdout
    assert "Dumping registry ... [SKIPPED]" in run.stdout
    result = summary(run.stdout.splitlines()[-1])
    names = decrypt(
        fetch(host, f"{bucket_dir(name)}/{result['config']}", tmp_path / "c.cms"), name, tmp_path
    )
    assert {"etc/gitlab/gitlab-secrets.json", "etc/gitlab/gitlab.rb"} <= set(names)
    assert "etc/gitlab/ssl" in names
    restored_secrets = tmp_path / "config" / "etc" / "gitlab" / "gitlab-secrets.json"
    assert restored_secrets.read_text() == secrets_before
    archive = fetch(host, f"{bucket_dir(name)}/{result['archive']}", tmp_path / "a.tar")
    with tarfile.open(archive) as tar:
        assert not any("secrets" in member for member in tar.getnames())  # GitLab leaves it out

    # 2. The host loses its data and secrets; a reconfigure makes new secrets.
    with host.sudo():
        host.check_output(
            f"rm -f {BACKUPS}/* /var/opt/gitlab/standin/tokens.json /etc/gitlab/gitlab-secrets.json"
        )
        host.check_output("gitlab-ctl reconfigure")
        # 3. The archive from the bucket, restored without the old secrets.
        host.check_output(f"cp {bucket_dir(name)}/{result['archive']} {BACKUPS}/")
        host.check_output(f"chown git:git {BACKUPS}/{result['archive']}")
        host.check_output("gitlab-ctl stop puma && gitlab-ctl stop sidekiq")
        refused = host.run(f"gitlab-backup restore BACKUP={result['backup_id']} < /dev/null")
        assert refused.rc != 0  # asks for "yes" without force=yes
        host.check_output(f"gitlab-backup restore BACKUP={result['backup_id']} force=yes")
    assert host.file("/var/opt/gitlab/standin/tokens.json").content_string == tokens_before
    assert doctor_failures(host) == len(json.loads(tokens_before))  # unreadable rows

    # 4. The decrypted gitlab-secrets.json back, reconfigure, restart: every row readable.
    host.ansible(
        "copy",
        f"src={restored_secrets} dest=/etc/gitlab/gitlab-secrets.json owner=root mode=0600",
        become=True,
        check=False,
    )
    with host.sudo():
        host.check_output("gitlab-ctl reconfigure && gitlab-ctl restart")
    assert doctor_failures(host) == 0
    assert host.file("/etc/gitlab/gitlab-secrets.json").content_string == secrets_before


def test_a_lost_private_key_stops_the_role(name: str, tmp_path: Path) -> None:
    """The certificate without its key: copies encrypted to it could never be read."""
    if name not in KEY:
        pytest.skip("gitlab-node1's key pair was made by the role")
    playbook = tmp_path / "recipient.yml"
    playbook.write_text(
        "- hosts: gitlab-node1\n  gather_facts: false\n  become: true\n  tasks:\n"
        "    - ansible.builtin.include_role: {name: gitlab, tasks_from: backup_recipient}\n"
    )
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"])
    key, aside = KEY[name], KEY[name].with_suffix(".aside")
    key.rename(aside)
    try:
        run = subprocess.run(
            # The inventory folder, as side_effect.yml passes it (host_vars beside the file).
            ["ansible-playbook", "-i", str(inventory.parent), str(playbook)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "ANSIBLE_ROLES_PATH": str(Path(__file__).resolve().parents[4])},
        )
    finally:
        aside.rename(key)
    assert run.returncode != 0
    output = " ".join((run.stdout + run.stderr).split())  # the failure goes to stderr
    assert "the configuration copies could not be decrypted" in output
    assert CERT[name].exists()  # nothing made anew
