"""`duoctl backup`: one GitLab backup now, on the deployment's GitLab host, over its SSH.

The gitlab role installs the backup as a script, /usr/local/sbin/duo-gitlab-backup, which the
daily timer runs too: `gitlab-backup create` (GitLab uploads the archive to the deployment's
bucket with the VM's own identity), then the configuration GitLab's backup leaves out
(gitlab-secrets.json, gitlab.rb, ...), encrypted to the certificate whose private key is in the
deployment's secrets/ folder, uploaded next to it. This command logs in as Ansible does (the
deployment's key, its pinned known_hosts: duoctl.ssh), runs the script through sudo, shows its
progress as it comes, and reports the backup's name and where it went (the script's last line,
`DUO_BACKUP {json}`). No secret is on any command line: the script needs none.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from duoctl import ssh
from duoctl.deployment import Deployment, Host
from duoctl.errors import EXIT_FAILED, DuoctlError
from duoctl.folder import DeploymentFolder

SCRIPT = "/usr/local/sbin/duo-gitlab-backup"
COMMAND = f"sudo -n {SCRIPT}"
SUMMARY_PREFIX = "DUO_BACKUP "
DEFAULT_NAMES = ("aws", "gcp")
KEY_NAME = "backup_config.key"
CERT_NAME = "backup_config.crt"
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class BackupOptions:
    name: str | None
    deploy_dir: Path
    inventory: Path | None = None
    ssh_key: str | None = None
    connect_timeout: float = 20.0
    json: bool = False


@dataclass(frozen=True)
class BackupResult:
    backup_id: str
    archive: str
    config: str
    local_dir: str
    provider: str
    remote: str
    uploaded: bool
    host: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Session(Protocol):
    """A login on the GitLab host that runs one command, line by line."""

    def stream(self, command: str, on_line: Callable[[str], None]) -> tuple[int, str]:
        """Run `command`, call on_line for each line of its standard output as it comes;
        (exit status, standard error)."""
        ...

    def close(self) -> None: ...


@dataclass
class SshSession:
    clients: list[Any]  # the jump host's when there is one, then the GitLab host's

    def stream(self, command: str, on_line: Callable[[str], None]) -> tuple[int, str]:
        # No timeout: a backup of a large instance takes hours; Ctrl-C stops waiting.
        stdin, stdout, stderr = self.clients[-1].exec_command(command)
        stdin.close()
        for raw in iter(stdout.readline, ""):
            on_line(raw.rstrip("\n"))
        err = stderr.read().decode("utf-8", "replace")
        return stdout.channel.recv_exit_status(), err

    def close(self) -> None:
        for client in reversed(self.clients):
            client.close()


def _folder(options: BackupOptions) -> DeploymentFolder:
    cwd = Path.cwd()
    if options.inventory is not None:
        inventory = options.inventory.absolute()
        if not inventory.is_file():
            raise DuoctlError(f"the inventory {inventory} does not exist", "pass --inventory")
        if options.name:
            return DeploymentFolder.of(options.deploy_dir, options.name, cwd, inventory)
        return DeploymentFolder(root=inventory.parent, repo=cwd, own_inventory=inventory)
    names = (options.name,) if options.name else DEFAULT_NAMES
    folders = [DeploymentFolder.of(options.deploy_dir, name, cwd) for name in names]
    found = next((f for f in folders if f.inventory.is_file()), None)
    if found is None:
        raise DuoctlError(
            f"no deployment inventory at {folders[0].inventory}",
            "pass --name with a deployed deployment's name, or --inventory for your own hosts",
        )
    return found


def _key_file(options: BackupOptions, folder: DeploymentFolder) -> str | None:
    """--ssh-key, else the private key beside the settings' public key (else the agent)."""
    if options.ssh_key:
        return options.ssh_key
    from duoctl.settings import SettingsError, load_saved, private_key_of

    try:
        public = load_saved(folder.settings_file).get("ssh_public_key_file")
    except (SettingsError, OSError):
        return None
    return private_key_of(str(public)) if public else None


def login(
    deployment: Deployment,
    host: Host,
    key_file: str | None,
    folder: DeploymentFolder,
    timeout: float,
) -> Session:
    jump = deployment.jump_host(host)
    target = (host.address, host.ssh_port, host.ssh_user)
    via = (jump.address, jump.ssh_port, jump.ssh_user) if jump else None
    try:
        return SshSession(ssh.connect_through(target, via, key_file, timeout, folder.known_hosts))
    except DuoctlError:
        raise
    except Exception as exc:
        raise DuoctlError(
            f"cannot log in to {host.name} ({host.address}) over SSH: {exc}",
            "check that the GitLab VM runs and that the deployment's SSH key is the one "
            "passed (--ssh-key) or found beside the settings' public key",
            EXIT_FAILED,
        ) from None


def parse_summary(line: str, host: str, seconds: float) -> BackupResult:
    data = json.loads(line.removeprefix(SUMMARY_PREFIX))
    return BackupResult(
        backup_id=str(data["backup_id"]),
        archive=str(data["archive"]),
        config=str(data["config"]),
        local_dir=str(data["local_dir"]),
        provider=str(data.get("provider") or ""),
        remote=str(data.get("remote") or ""),
        uploaded=bool(data.get("uploaded")),
        host=host,
        seconds=seconds,
    )


def _failure(status: int, err: str, host: Host) -> DuoctlError:
    text = err.strip()
    if status == 127 or "command not found" in text or "No such file" in text:
        return DuoctlError(
            f"{host.name} has no backup script ({SCRIPT})",
            "backups are set up by the deploy when the deployment has a bucket (cloud "
            "deployments) or gitlab_backup_enabled is true: run the deploy again",
        )
    if "another backup is running" in text:
        return DuoctlError(
            f"another backup is running on {host.name}",
            "wait for it (systemctl status duo-gitlab-backup on the host) and try again",
            EXIT_FAILED,
        )
    if "a password is required" in text or "a terminal is required" in text:
        return DuoctlError(
            f"sudo on {host.name} asks for a password",
            f"give the SSH user ({host.ssh_user}) passwordless sudo, as the deploy needs",
            EXIT_FAILED,
        )
    tail = "\n".join(text.splitlines()[-15:]) or "(no error output)"
    return DuoctlError(
        f"the backup on {host.name} failed (exit {status}):\n{tail}",
        "read the output above; on the host: sudo journalctl -u duo-gitlab-backup, "
        "sudo gitlab-backup create for GitLab's own messages",
        EXIT_FAILED,
    )


def report(result: BackupResult, folder: DeploymentFolder, out: TextIO) -> None:
    key = folder.secrets_dir / KEY_NAME
    cert = folder.secrets_dir / CERT_NAME
    minutes, seconds = divmod(int(result.seconds), 60)
    lines = [
        f"backup {result.backup_id} done on {result.host} in {minutes}m {seconds:02d}s",
        f"  archive        {result.archive}",
        f"  configuration  {result.config} (encrypted; gitlab-secrets.json, gitlab.rb, ...)",
    ]
    if result.uploaded:
        lines.append(f"  uploaded to    {result.remote.rstrip('/')}/")
        lines.append(f"  also kept in   {result.local_dir} on {result.host} (pruned by age)")
    else:
        lines.append(
            f"  kept in        {result.local_dir} on {result.host} (no bucket: copy it off)"
        )
    if key.is_file():
        lines.append(
            f"  decrypt with   openssl cms -decrypt -binary -inform DER -in {result.config} "
            f"-recip {cert} -inkey {key} | tar -x"
        )
    else:
        lines.append("  decrypt with   the private key of the certificate the deploy was given")
    lines.append("restore: README, 'Backups and restore'")
    print("\n".join(lines), file=out)


def run(
    options: BackupOptions,
    session_factory: Callable[[Deployment, Host, str | None, DeploymentFolder, float], Session]
    | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    folder = _folder(options)
    deployment = Deployment.from_inventory(folder.inventory)
    host = deployment.gitlab
    key_file = _key_file(options, folder)
    progress = sys.stderr if options.json else out
    print(f"backup of {host.name} ({host.address}), deployment {folder.name}:", file=progress)
    session = (session_factory or login)(
        deployment, host, key_file, folder, options.connect_timeout
    )
    summary: list[str] = []

    def on_line(line: str) -> None:
        if line.startswith(SUMMARY_PREFIX):
            summary.append(line)
        else:
            print(f"  | {line}", file=progress, flush=True)

    started = time.monotonic()
    try:
        status, err = session.stream(COMMAND, on_line)
    finally:
        session.close()
    if status != 0:
        raise _failure(status, err, host)
    if not summary:
        raise DuoctlError(
            f"the backup script on {host.name} gave no summary line ({SUMMARY_PREFIX.strip()})",
            "run the deploy again: the script on the host is older than this duoctl",
            EXIT_FAILED,
        )
    try:
        result = parse_summary(summary[-1], host.name, time.monotonic() - started)
    except (ValueError, KeyError) as exc:
        raise DuoctlError(
            f"the backup's summary line is not readable ({exc})",
            "run the deploy again: the script on the host is older than this duoctl",
            EXIT_FAILED,
        ) from None
    if options.json:
        print(json.dumps(result.as_dict(), indent=2), file=out)
    else:
        report(result, folder, out)
    return 0
