"""The steps of one upgrade hop, run by duoctl.pipeline like the deploy's.

Per hop, in GitLab's order ("Allow the background migrations for the upgrade to finish"):
  migrations   the batched background migrations of the last upgrade are finished
  backup       `duoctl backup` (the host's backup script); a host without it gets
               `gitlab-backup create` and `gitlab-ctl backup-etc` (BackupStep.backup is the hook)
  gitlab       the gitlab role (ansible/playbooks/gitlab.yml) at the hop's version; a newest-patch
               hop first reads that patch from GitLab's package repository on the host
  settle       the migrations this upgrade queued are finished
  gateway      the ai_gateway role (ansible/playbooks/ai_gateway.yml) at the same version: the
               role moves the gateway to the newest existing self-hosted-vX.Y.*-ee image
  duo, verify  duoctl configure and duoctl verify, in-process as the deploy runs them
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duoctl import process
from duoctl.deploy.duo_step import DuoStep
from duoctl.deploy.playbooks import PlaybookStep, ansible_failures, tool_path
from duoctl.deploy.verify_step import VerifyStep
from duoctl.errors import DuoctlError
from duoctl.gitlab_api import GitLabClient, GitLabError
from duoctl.pipeline import Context, Step, StepFailed
from duoctl.upgrade import gitlab
from duoctl.upgrade.planner import Hop, Version

MIGRATIONS_TIMEOUT = 6 * 3600.0  # GitLab: some take hours on large instances
MIGRATIONS_POLL = 30.0
PACKAGE_VERSION = re.compile(r"\b(\d+)\.(\d+)\.(\d+)-ee\.\d+\b")
BACKUP_COMMANDS = ("gitlab-backup create STRATEGY=copy", "gitlab-ctl backup-etc")


@dataclass
class ApiAccess:
    """How the steps reach GitLab's API: URL, token file, CA (the deployment's by default)."""

    url: str
    token_file: Path
    ca_file: str | None = None

    def client(self) -> GitLabClient:
        from duoctl.token import read_token_file

        return GitLabClient(self.url, read_token_file(self.token_file), self.ca_file)


def hop_version(ctx: Context, index: int, hop: Hop) -> str:
    """The exact version of a hop: resolved once (newest patch) and kept in the state."""
    resolved = ctx.data.setdefault("upgrade_resolved", {})
    if str(index) in resolved:
        return str(resolved[str(index)])
    if not hop.latest_patch:
        return str(hop.version)
    raise StepFailed(
        f"the version of hop {index} ({hop.label}) is not resolved yet; run again with "
        f"--from {step_name(index, hop, 'gitlab')}"
    )


def step_name(index: int, hop: Hop, what: str) -> str:
    return f"hop{index}-{hop.label}-{what}"


@dataclass
class AdHoc:
    """`ansible gitlab -m MODULE -a ARGS` on the deployment's inventory, output collected."""

    private_key: str | None = None
    executable: str | None = None

    def run(self, ctx: Context, module: str, args: str) -> list[str]:
        root = ctx.paths.repo
        cmd = [self.executable or tool_path("ansible"), "gitlab", "--become"]
        cmd += ["-i", str(ctx.paths.inventory.resolve()), "-m", module, "-a", args]
        if self.private_key:
            cmd += ["--private-key", self.private_key]
        config = root / "ansible" / "ansible.cfg"
        env = {"ANSIBLE_CONFIG": str(config)} if config.exists() else {}
        if ctx.paths.ssh_config.is_file():
            env["ANSIBLE_SSH_EXTRA_ARGS"] = f"-F {ctx.paths.ssh_config}"
        lines: list[str] = []

        def sink(line: str) -> None:
            ctx.progress.output(line)
            lines.append(line)

        ctx.progress.note(f"$ {' '.join(cmd)}")
        import os

        try:
            code = process.run(
                cmd, sink, cwd=config.parent if config.exists() else root, env={**os.environ, **env}
            )
        except OSError as exc:
            raise StepFailed(f"cannot run {cmd[0]}: {exc}") from exc
        if code != 0:
            why = ansible_failures(lines) or "\n".join(lines[-5:])
            raise StepFailed(f"{Path(cmd[0]).name} {module} exited with code {code}\n{why}")
        return lines


@dataclass
class MigrationsStep:
    """Wait until GitLab's batched background migrations are finished; a failed one stops."""

    name: str
    api: ApiAccess
    timeout: float = MIGRATIONS_TIMEOUT
    poll: float = MIGRATIONS_POLL
    sleep: Callable[[float], None] = time.sleep
    # GitLab restarting after its upgrade answers 502 for a while: errors in a row tolerated.
    errors_allowed: int = 20

    def run(self, ctx: Context) -> None:
        deadline = time.monotonic() + self.timeout
        client = self.api.client()
        errors = 0
        try:
            while True:
                try:
                    pending = gitlab.unfinished(gitlab.all_migrations(client))
                    errors = 0
                except GitLabError as exc:
                    errors += 1
                    if errors > self.errors_allowed or time.monotonic() >= deadline:
                        raise StepFailed(
                            f"cannot list the batched background migrations: {exc}"
                        ) from None
                    ctx.progress.output(f"GitLab not answering yet ({exc}); trying again")
                    self.sleep(self.poll)
                    continue
                failed = [m for m in pending if m.status == gitlab.FAILED]
                if failed:
                    raise StepFailed(
                        "batched background migrations failed: "
                        + "; ".join(m.describe() for m in failed)
                        + ". Fix them before upgrading further (Admin > Monitoring > Background "
                        "migrations: retry), then run the upgrade again"
                    )
                if not pending:
                    ctx.progress.output("batched background migrations: all finished")
                    return
                ctx.progress.output(
                    f"{len(pending)} batched background migration(s) running: "
                    + "; ".join(m.describe() for m in pending[:3])
                )
                if time.monotonic() >= deadline:
                    raise StepFailed(
                        f"batched background migrations still running after {self.timeout:.0f}s: "
                        + "; ".join(m.describe() for m in pending)
                        + ". Run the upgrade again later: it resumes here"
                    )
                self.sleep(self.poll)
        finally:
            client.close()


class _ProgressWriter:
    """A text stream whose lines go to the progress tail and the log."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.ctx.progress.output(line)
        return len(text)

    def flush(self) -> None:
        pass


def duoctl_backup(ctx: Context, private_key: str | None) -> None:
    """`duoctl backup` in-process: the host's backup script (archive and secrets, uploaded to
    the deployment's bucket where it has one)."""
    from duoctl import backup

    options = backup.BackupOptions(
        name=ctx.paths.name,
        deploy_dir=ctx.paths.root.parent,
        inventory=ctx.paths.own_inventory,
        ssh_key=private_key,
    )
    backup.run(options, out=_ProgressWriter(ctx))  # type: ignore[arg-type]


@dataclass
class BackupStep:
    """A GitLab backup before the hop: `duoctl backup` (the host's backup script, which also
    keeps gitlab-secrets.json and uploads both to the deployment's bucket); a host without that
    script (an older deploy) gets `gitlab-backup create` and `gitlab-ctl backup-etc`, kept on
    the host (/var/opt/gitlab/backups, /etc/gitlab/config_backup): copy them off the host."""

    name: str
    adhoc: AdHoc = field(default_factory=AdHoc)
    commands: tuple[str, ...] = BACKUP_COMMANDS
    private_key: str | None = None
    # The hook: None runs the plain commands only.
    backup: Callable[[Context, str | None], None] | None = duoctl_backup

    def run(self, ctx: Context) -> None:
        if self.backup is not None:
            from duoctl.backup import SCRIPT

            try:
                self.backup(ctx, self.private_key)
                return
            except DuoctlError as exc:
                if SCRIPT not in exc.message:
                    raise StepFailed(str(exc)) from None
                ctx.progress.note(
                    f"{exc.message}: GitLab's own backup instead, kept on the GitLab host"
                )
        for command in self.commands:
            self.adhoc.run(ctx, "ansible.builtin.command", command)


def newest_patch(lines: list[str], major: int, minor: int) -> Version | None:
    """The newest gitlab-ee X.Y.* of `apt-cache madison gitlab-ee` output."""
    found = [
        Version(int(m[1]), int(m[2]), int(m[3]))
        for line in lines
        for m in PACKAGE_VERSION.finditer(line)
        if (int(m[1]), int(m[2])) == (major, minor)
    ]
    return max(found, default=None)


@dataclass
class GitLabStep:
    """The gitlab role at the hop's version (its newest patch read on the host first)."""

    name: str
    index: int
    hop: Hop
    extra_vars: dict[str, Any] = field(default_factory=dict)
    private_key: str | None = None
    adhoc: AdHoc = field(default_factory=AdHoc)
    playbook: str = "ansible/playbooks/gitlab.yml"

    def resolve(self, ctx: Context) -> str:
        resolved = ctx.data.setdefault("upgrade_resolved", {})
        if not self.hop.latest_patch:
            resolved[str(self.index)] = str(self.hop.version)
            return str(self.hop.version)
        lines = self.adhoc.run(
            ctx,
            "ansible.builtin.shell",
            "apt-get update -qq >/dev/null 2>&1; apt-cache madison gitlab-ee",
        )
        newest = newest_patch(lines, self.hop.version.major, self.hop.version.minor)
        if newest is None or newest < self.hop.version:
            raise StepFailed(
                f"GitLab's package repository on the GitLab host offers no gitlab-ee "
                f"{self.hop.label} (at least {self.hop.version}); air-gapped sites: give the "
                "exact versions with --upgrade-stops FILE (latest_patch: false)"
            )
        resolved[str(self.index)] = str(newest)
        return str(newest)

    def run(self, ctx: Context) -> None:
        version = self.resolve(ctx)
        ctx.progress.note(f"GitLab -> {version}")
        extra = {**self.extra_vars, "duo_gitlab_version": version}
        PlaybookStep(self.name, self.playbook, extra_vars=extra, private_key=self.private_key).run(
            ctx
        )
        ctx.data["upgrade_gitlab_version"] = version
        ctx.paths.record_gitlab_version(version)  # later deploys keep GitLab at this version


@dataclass
class GatewayStep:
    """The ai_gateway role at the hop's version: the gateway moves to that X.Y's newest tag."""

    name: str
    index: int
    hop: Hop
    # The deploy's own extra vars: gitlab_tls_mode decides whether the gateway trusts a
    # private CA (group_vars: duo_gitlab_private_ca).
    extra_vars: dict[str, Any] = field(default_factory=dict)
    private_key: str | None = None
    playbook: str = "ansible/playbooks/ai_gateway.yml"

    def run(self, ctx: Context) -> None:
        version = hop_version(ctx, self.index, self.hop)
        extra = {**self.extra_vars, "duo_gitlab_version": version}
        PlaybookStep(self.name, self.playbook, extra_vars=extra, private_key=self.private_key).run(
            ctx
        )


def hop_steps(
    index: int,
    hop: Hop,
    api: ApiAccess,
    private_key: str | None = None,
    site_vars: dict[str, Any] | None = None,
) -> list[Step]:
    """The steps of one hop, each named hop<N>-<version>-<what>."""

    def named(what: str) -> str:
        return step_name(index, hop, what)

    adhoc = AdHoc(private_key=private_key)
    return [
        MigrationsStep(named("migrations"), api),
        BackupStep(named("backup"), adhoc, private_key=private_key),
        GitLabStep(named("gitlab"), index, hop, dict(site_vars or {}), private_key, adhoc),
        MigrationsStep(named("settle"), api),
        GatewayStep(named("gateway"), index, hop, dict(site_vars or {}), private_key),
        DuoStep(gitlab_url=api.url, ca_file=api.ca_file, name=named("duo")),
        VerifyStep(
            private_key=private_key, gitlab_url=api.url, ca_file=api.ca_file, name=named("verify")
        ),
    ]


def plan_record(hops: list[Hop]) -> str:
    return json.dumps([h.as_dict() for h in hops], sort_keys=True)
