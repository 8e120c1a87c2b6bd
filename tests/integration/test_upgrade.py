"""`duoctl upgrade` against the GitLab API double: the running version read with the
deployment's token, the plan printed, --dry-run changing nothing, refusals as exit 2; the
hop steps (migrations, the role runs with the hop's version) and the pipeline's record."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from duoctl import cli
from duoctl.backup import SCRIPT
from duoctl.deployment import Deployment
from duoctl.errors import DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.pipeline import Context, Progress, StepFailed
from duoctl.upgrade import UpgradeOptions
from duoctl.upgrade import main as upgrade_main
from duoctl.upgrade.planner import Hop, Version
from duoctl.upgrade.steps import (
    AdHoc,
    ApiAccess,
    BackupStep,
    GatewayStep,
    GitLabStep,
    MigrationsStep,
    hop_steps,
    newest_patch,
)

from tests.doubles.gitlab_api import ADMIN_TOKEN, USER_TOKEN, GitLabDouble, gitlab_double
from tests.doubles.gitlab_api.server import migration
from tests.doubles.registry import GATEWAY_REPOSITORY, GATEWAY_TAGS, RegistryDouble, registry_double

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "gitlab_public_ip": "203.0.113.10",
    "gitlab_private_ip": "10.0.1.10",
    "gateway_private_ip": "10.0.2.10",
    "ollama_private_ip": "10.0.2.11",
    "gitlab_domain": "gitlab.example.com",
    "ssh_user": "ubuntu",
    "gateway_port": 15052,
    "ollama_port": 21434,
}


@pytest.fixture
def double(tmp_path: Path) -> Iterator[GitLabDouble]:
    (tmp_path / "tls").mkdir()
    with gitlab_double("18.9.0-ee", tls_dir=tmp_path / "tls") as running:
        yield running


@pytest.fixture
def registry() -> Iterator[RegistryDouble]:
    """The gateway's registry: 18.11 and 19.0 published beside the double's usual tags (with its
    gaps: no 19.2 release)."""
    tags = [*GATEWAY_TAGS, "self-hosted-v18.11.2-ee", "self-hosted-v19.0.1-ee"]
    with registry_double(RegistryDouble(repositories={GATEWAY_REPOSITORY: tags})) as running:
        yield running


def make_deployment(tmp_path: Path, name: str = "lab") -> DeploymentFolder:
    folder = DeploymentFolder.of(tmp_path / ".deploy", name, REPO)
    folder.create()
    folder.admin_token_file.write_text(ADMIN_TOKEN + "\n")
    if (tmp_path / "tls" / "ca.crt").is_file():
        (tmp_path / "tls" / "ca.crt").replace(folder.ca_file)  # the gitlab role's private CA
    deployment = Deployment.from_outputs(OUTPUTS, "aws")
    folder.inventory.write_text(deployment.inventory_text(None))
    return folder


def run_cli(
    tmp_path: Path,
    double: GitLabDouble,
    *args: str,
    capsys: pytest.CaptureFixture[str],
    registry_url: str = "http://127.0.0.1:9",
) -> tuple[int, str, str]:
    argv = ["upgrade", *args, "--deploy-dir", str(tmp_path / ".deploy"), "--gitlab-url"]
    code = cli.main([*argv, double.url, "--registry-url", registry_url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path,
    double: GitLabDouble,
    registry: RegistryDouble,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = make_deployment(tmp_path)
    code, out, err = run_cli(
        tmp_path,
        double,
        "--gitlab-version",
        "19.4.1",
        "--dry-run",
        capsys=capsys,
        registry_url=registry.url,
    )
    assert (code, err) == (0, "")
    assert "lab: GitLab 18.9.0 is running" in out
    assert "Upgrade plan: GitLab 18.9.0 -> 19.4.1, 3 hop(s)" in out
    lines = [line.strip() for line in out.splitlines()]
    start = lines.index("1. GitLab 18.11.x   required stop")
    # Each hop's gateway, read from the registry with the role's own resolver.
    assert lines[start : start + 6] == [
        "1. GitLab 18.11.x   required stop",
        "AI gateway self-hosted-v18.11.2-ee",
        "2. GitLab 19.2.x    required stop by the x.2/x.5/x.8/x.11 rule (GitLab 19 is not in "
        "the list yet)",
        f"AI gateway NONE: registry.gitlab.com/{GATEWAY_REPOSITORY} has no "
        "self-hosted-v19.2.*-ee tag yet",
        "3. GitLab 19.4.1    target",
        "AI gateway self-hosted-v19.4.1-ee",
    ]
    assert "Dry run: nothing was changed." in out
    assert double.writes == 0
    assert [e.path for e in double.log] == ["/api/v4/version"]
    assert not (folder.root / "upgrade-state.json").exists()
    assert ADMIN_TOKEN not in out


def test_the_only_deployment_needs_no_name(
    tmp_path: Path, double: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    make_deployment(tmp_path)
    code, out, _ = run_cli(
        tmp_path, double, "--gitlab-version", "18.10.0", "--dry-run", capsys=capsys
    )
    assert code == 0
    assert "1. GitLab 18.10.0" in out
    assert "AI gateway self-hosted-v18.10.*-ee (newest existing)" in out
    # No registry answers here (an air-gapped controller): the plan says so and goes on.
    assert "gateway tags not read (cannot reach http://127.0.0.1:9/v2/" in out


def test_several_deployments_need_a_name(
    tmp_path: Path, double: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    make_deployment(tmp_path, "lab")
    (tmp_path / "tls" / "ca.crt").write_text("")  # the second folder gets a CA file too
    make_deployment(tmp_path, "prod")
    code, _, err = run_cli(tmp_path, double, "--gitlab-version", "19.0.0", capsys=capsys)
    assert code == 2
    assert "several deployments" in err and "lab, prod" in err and "fix: " in err


def test_already_current_is_no_error(
    tmp_path: Path, double: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    make_deployment(tmp_path)
    code, out, err = run_cli(tmp_path, double, "--gitlab-version", "18.9.0", capsys=capsys)
    assert (code, err) == (0, "")
    assert "GitLab is already at 18.9.0: nothing to upgrade" in out
    assert double.writes == 0


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("18.8.7", "older than the running 18.9.0: GitLab cannot be downgraded"),
        ("18.9", "--gitlab-version '18.9' is not a GitLab release version"),
        ("21.0.0", "past what the upgrade stops cover"),
    ],
)
def test_refusals_exit_2_with_the_fix(
    tmp_path: Path,
    double: GitLabDouble,
    capsys: pytest.CaptureFixture[str],
    version: str,
    problem: str,
) -> None:
    make_deployment(tmp_path)
    code, out, err = run_cli(tmp_path, double, "--gitlab-version", version, capsys=capsys)
    assert code == 2
    assert problem in err and "\nfix: " in err
    assert "Traceback" not in err + out


def test_a_token_without_admin_rights_still_reads_the_version_but_no_migrations(
    tmp_path: Path, double: GitLabDouble
) -> None:
    folder = make_deployment(tmp_path)
    folder.admin_token_file.write_text(USER_TOKEN)
    api = ApiAccess(double.url, folder.admin_token_file, str(folder.ca_file))
    ctx = Context("aws", folder, Progress(folder.log_file, io.StringIO()))
    naps: list[float] = []
    with pytest.raises(StepFailed, match="cannot list the batched background migrations"):
        MigrationsStep("m", api, poll=1, sleep=naps.append, errors_allowed=2).run(ctx)
    assert naps == [1, 1]  # a GitLab still restarting gets its chance


def test_missing_token_is_bad_input(
    tmp_path: Path, double: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_deployment(tmp_path)
    folder.admin_token_file.unlink()
    code, _, err = run_cli(tmp_path, double, "--gitlab-version", "19.0.0", capsys=capsys)
    assert code == 2
    assert "gitlab_admin_token is missing" in err


def test_plain_http_is_refused_without_allow_http(tmp_path: Path) -> None:
    make_deployment(tmp_path)
    options = UpgradeOptions(
        "19.0.0", "lab", tmp_path / ".deploy", dry_run=True, gitlab_url="http://127.0.0.1:9"
    )
    assert upgrade_main(options, out=lambda _: None) == 2


# ------------------------------------------------------------------ the hop steps


def context(folder: DeploymentFolder) -> Context:
    return Context("aws", folder, Progress(folder.log_file, io.StringIO()))


def test_migrations_step_waits_until_finished(tmp_path: Path, double: GitLabDouble) -> None:
    folder = make_deployment(tmp_path)
    double.migrations["main"] = [migration(1, "finalized", progress=100), migration(2, "active")]
    double.migrations_finish_after = 5  # listings: main and ci each poll
    naps: list[float] = []
    api = ApiAccess(double.url, folder.admin_token_file, str(folder.ca_file))
    MigrationsStep("m", api, poll=7, sleep=naps.append).run(context(folder))
    assert naps == [7, 7]
    listed = [e for e in double.log if e.path.endswith("batched_background_migrations")]
    assert len(listed) == 6
    log = folder.log_file.read_text()
    assert "1 batched background migration(s) running: BackfillExample on events (active, 50%)" in (
        log
    )
    assert "all finished" in log


def test_migrations_step_stops_on_a_failed_migration(tmp_path: Path, double: GitLabDouble) -> None:
    folder = make_deployment(tmp_path)
    double.migrations["main"] = [migration(3, "failed", job="BackfillBroken")]
    api = ApiAccess(double.url, folder.admin_token_file, str(folder.ca_file))
    with pytest.raises(StepFailed, match=r"failed: BackfillBroken on events \(failed, 50%\)"):
        MigrationsStep("m", api, sleep=lambda _: None).run(context(folder))


def test_migrations_step_gives_up_after_its_timeout(tmp_path: Path, double: GitLabDouble) -> None:
    folder = make_deployment(tmp_path)
    double.migrations["main"] = [migration(4, "paused")]
    api = ApiAccess(double.url, folder.admin_token_file, str(folder.ca_file))
    with pytest.raises(StepFailed, match=r"still running after 0s.*resumes here"):
        MigrationsStep("m", api, timeout=0, sleep=lambda _: None).run(context(folder))


MADISON = """\
 gitlab-ee | 18.11.3-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu noble/main amd64
 gitlab-ee | 18.11.1-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu noble/main amd64
 gitlab-ee | 18.10.9-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu noble/main amd64
 gitlab-ee | 19.0.0-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu noble/main amd64
"""


def test_newest_patch_of_a_minor() -> None:
    lines = MADISON.splitlines()
    assert newest_patch(lines, 18, 11) == Version(18, 11, 3)
    assert newest_patch(lines, 18, 2) is None


def fake_tool(tmp_path: Path, name: str, record: Path, output: str = "") -> str:
    """A stand-in for ansible / ansible-playbook: records its arguments, prints `output`."""
    tool = tmp_path / name
    tool.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"print({output!r})\n"
    )
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool)


def test_a_hop_backs_up_then_runs_the_roles_at_the_resolved_version(
    tmp_path: Path, double: GitLabDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_deployment(tmp_path)
    record = tmp_path / "calls.jsonl"
    adhoc = AdHoc(executable=fake_tool(tmp_path, "ansible", record, MADISON))
    playbook = fake_tool(tmp_path, "ansible-playbook", record)
    monkeypatch.setattr("duoctl.deploy.playbooks.tool_path", lambda _: playbook)
    ctx = context(folder)
    hop = Hop(Version(18, 11, 0), latest_patch=True)
    BackupStep("b", adhoc, backup=None).run(ctx)
    GitLabStep("g", 1, hop, {"gitlab_tls_mode": "selfsigned"}, None, adhoc).run(ctx)
    GatewayStep("a", 1, hop, {"gitlab_tls_mode": "selfsigned"}).run(ctx)
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [c[c.index("-a") + 1] for c in calls if "-a" in c] == [
        "gitlab-backup create STRATEGY=copy",
        "gitlab-ctl backup-etc",
        "apt-get update -qq >/dev/null 2>&1; apt-cache madison gitlab-ee",
    ]
    assert all(c[:2] == ["gitlab", "--become"] for c in calls[:3])
    gitlab_run, gateway_run = calls[3], calls[4]
    assert gitlab_run[0].endswith("ansible/playbooks/gitlab.yml")
    extra = json.loads(gitlab_run[gitlab_run.index("-e") + 1])
    assert extra["duo_gitlab_version"] == "18.11.3"
    assert extra["gitlab_tls_mode"] == "selfsigned"  # the deploy's own vars, unchanged
    assert gateway_run[0].endswith("ansible/playbooks/ai_gateway.yml")
    gateway_extra = json.loads(gateway_run[gateway_run.index("-e") + 1])
    assert gateway_extra["duo_gitlab_version"] == "18.11.3"
    assert gateway_extra["gitlab_tls_mode"] == "selfsigned"  # the gateway keeps trusting the CA
    assert ctx.data["upgrade_resolved"] == {"1": "18.11.3"}


def test_the_version_a_hop_reached_pins_every_later_playbook_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade a deploy (any playbook step) keeps GitLab at the version reached, never
    the bundle's default pin; an upgrade step's own version wins over the record."""
    from duoctl.deploy import PlaybookStep

    folder = make_deployment(tmp_path)
    record = tmp_path / "calls.jsonl"
    playbook = fake_tool(tmp_path, "ansible-playbook", record)
    monkeypatch.setattr("duoctl.deploy.playbooks.tool_path", lambda _: playbook)
    ctx = context(folder)

    def versions() -> list[str | None]:
        calls = [json.loads(line) for line in record.read_text().splitlines()]
        return [json.loads(c[c.index("-e") + 1]).get("duo_gitlab_version") for c in calls]

    site = PlaybookStep("site", "ansible/playbooks/site.yml", extra_vars={"gitlab_tls_mode": "x"})
    site.run(ctx)
    assert versions() == [None]  # never upgraded: the bundle's pin (group_vars)
    GitLabStep("g", 1, Hop(Version(19, 5, 1)), {}, None).run(ctx)
    assert folder.gitlab_version_file.read_text() == "19.5.1\n"
    GatewayStep("a", 1, Hop(Version(19, 5, 1))).run(ctx)
    site.run(ctx)
    assert versions() == [None, "19.5.1", "19.5.1", "19.5.1"]

    folder.gitlab_version_file.write_text("latest\n")
    with pytest.raises(DuoctlError, match=r"gitlab-version holds 'latest', not a GitLab version"):
        site.run(ctx)


def test_a_newest_patch_hop_the_repository_lacks_fails_with_the_fix(tmp_path: Path) -> None:
    folder = make_deployment(tmp_path)
    adhoc = AdHoc(executable=fake_tool(tmp_path, "ansible", tmp_path / "r", MADISON))
    step = GitLabStep("g", 1, Hop(Version(19, 2, 0), latest_patch=True), {}, None, adhoc)
    with pytest.raises(StepFailed, match=r"offers no gitlab-ee 19\.2\.x.*--upgrade-stops"):
        step.run(context(folder))


def test_the_real_run_is_a_resumable_pipeline(
    tmp_path: Path, double: GitLabDouble, registry: RegistryDouble
) -> None:
    folder = make_deployment(tmp_path)
    ran: list[str] = []
    fail = {"hop2-19.0.0-gitlab"}

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, ctx: Context) -> None:
            if self.name in fail:
                raise StepFailed("the package did not install")
            ran.append(self.name)

    def steps_for(hops: list[Hop], api: ApiAccess) -> list[Fake]:
        assert api.url == double.url
        return [
            Fake(f"hop{i}-{h.label}-{w}") for i, h in enumerate(hops, 1) for w in ("a", "gitlab")
        ]

    options = UpgradeOptions(
        "19.0.0", "lab", tmp_path / ".deploy", gitlab_url=double.url, registry_url=registry.url
    )
    out: list[str] = []
    assert upgrade_main(options, out.append, steps_for=steps_for) == 1  # type: ignore[arg-type]
    assert ran == ["hop1-18.11.x-a", "hop1-18.11.x-gitlab", "hop2-19.0.0-a"]
    state = json.loads((folder.root / "upgrade-state.json").read_text())
    assert state["inputs"]["target"] == "19.0.0"
    assert state["steps"]["hop2-19.0.0-gitlab"]["status"] == "failed"
    assert not folder.state_file.exists()  # the deploy's own record is left alone
    # GitLab reached 18.11 meanwhile: the re-run resumes the recorded plan where it stopped.
    double.instance.version = "18.11.3-ee"
    dry = UpgradeOptions(
        "19.0.0",
        "lab",
        tmp_path / ".deploy",
        dry_run=True,
        gitlab_url=double.url,
        registry_url=registry.url,
    )
    shown: list[str] = []
    assert upgrade_main(dry, shown.append, steps_for=steps_for) == 0  # type: ignore[arg-type]
    assert "A run resumes the recorded upgrade to 19.0.0" in shown[1]
    assert ran == ["hop1-18.11.x-a", "hop1-18.11.x-gitlab", "hop2-19.0.0-a"]  # nothing ran
    fail.clear()
    ran.clear()
    out.clear()
    assert upgrade_main(options, out.append, steps_for=steps_for) == 0  # type: ignore[arg-type]
    assert ran == ["hop2-19.0.0-gitlab"]
    assert any("Resuming the recorded upgrade to 19.0.0" in line for line in out)
    plan_text = "\n".join(out)
    assert "1. GitLab 18.11.x   required stop" in plan_text  # the recorded plan, shown again
    assert "Upgrade complete: GitLab 19.0.0 (lab)." in folder.log_file.read_text()


def test_a_hop_runs_gitlabs_order() -> None:
    api = ApiAccess("https://gitlab.example.com", Path("token"))
    hop = Hop(Version(18, 11, 0), latest_patch=True)
    assert [step.name for step in hop_steps(2, hop, api)] == [
        "hop2-18.11.x-migrations",
        "hop2-18.11.x-backup",
        "hop2-18.11.x-gitlab",
        "hop2-18.11.x-settle",
        "hop2-18.11.x-gateway",
        "hop2-18.11.x-duo",
        "hop2-18.11.x-verify",
    ]


def test_no_real_run_when_a_hop_has_no_gateway_release(
    tmp_path: Path, double: GitLabDouble, registry: RegistryDouble
) -> None:
    folder = make_deployment(tmp_path)
    options = UpgradeOptions(
        "19.2.0", "lab", tmp_path / ".deploy", gitlab_url=double.url, registry_url=registry.url
    )
    out: list[str] = []
    assert upgrade_main(options, out.append, steps_for=lambda *_: []) == 1
    assert not (folder.root / "upgrade-state.json").exists()
    assert double.writes == 0


def test_the_hop_steps_in_a_pipeline_resume_where_a_hop_stopped(
    tmp_path: Path,
    double: GitLabDouble,
    registry: RegistryDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every step of a hop but duo and verify (the deploy's own steps, tested with the deploy:
    they reach the hosts), with stand-in Ansible tools and the migrations against the GitLab
    double."""
    folder = make_deployment(tmp_path)
    record = tmp_path / "calls.jsonl"
    ansible = fake_tool(tmp_path, "ansible", record, MADISON)
    playbook = tmp_path / "ansible-playbook"
    playbook.write_text(
        "#!/usr/bin/env python3\n"
        "import json, pathlib, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"flag = pathlib.Path({str(tmp_path / 'gateway-fails')!r})\n"
        "if sys.argv[1].endswith('ai_gateway.yml') and flag.exists():\n"
        "    flag.unlink()\n"
        '    print(\'fatal: [ai-gateway]: FAILED! => {"msg": "pull failed"}\')\n'
        "    sys.exit(2)\n"
    )
    playbook.chmod(0o755)
    (tmp_path / "gateway-fails").touch()
    monkeypatch.setattr("duoctl.deploy.playbooks.tool_path", lambda _: str(playbook))
    monkeypatch.setattr("duoctl.upgrade.steps.tool_path", lambda _: ansible)
    double.migrations["main"] = [migration(1, "active")]
    double.migrations_finish_after = 2

    def without_script(ctx: Context, key: str | None) -> None:
        """duoctl backup on a host deployed before the backup script existed."""
        raise DuoctlError(f"gitlab-vm has no backup script ({SCRIPT})", "run the deploy again")

    def steps_for(hops: list[Hop], api: ApiAccess) -> list[object]:
        steps = [s for i, h in enumerate(hops, 1) for s in hop_steps(i, h, api)]
        for step in steps:
            if isinstance(step, MigrationsStep):
                step.sleep = lambda _: None
            if isinstance(step, BackupStep):
                step.backup = without_script
        return [s for s in steps if not s.name.endswith(("-duo", "-verify"))]

    options = UpgradeOptions(
        "19.0.0", "lab", tmp_path / ".deploy", gitlab_url=double.url, registry_url=registry.url
    )
    assert upgrade_main(options, lambda _: None, steps_for=steps_for) == 1  # type: ignore[arg-type]
    state = json.loads((folder.root / "upgrade-state.json").read_text())
    assert state["steps"]["hop1-18.11.x-gateway"]["status"] == "failed"
    assert state["data"]["upgrade_resolved"] == {"1": "18.11.3"}
    assert "ai-gateway failed at [?]: pull failed" in folder.log_file.read_text()
    # The re-run resumes at the gateway of hop 1, with the version resolved before.
    assert upgrade_main(options, lambda _: None, steps_for=steps_for) == 0  # type: ignore[arg-type]
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    playbooks = [
        (Path(c[0]).name, json.loads(c[c.index("-e") + 1])["duo_gitlab_version"])
        for c in calls
        if c[0].endswith(".yml")
    ]
    assert playbooks == [
        ("gitlab.yml", "18.11.3"),
        ("ai_gateway.yml", "18.11.3"),  # failed
        ("ai_gateway.yml", "18.11.3"),
        ("gitlab.yml", "19.0.0"),
        ("ai_gateway.yml", "19.0.0"),
    ]
    backups = [c for c in calls if "gitlab-backup create STRATEGY=copy" in c]
    assert len(backups) == 2  # one a hop, not again on the re-run
    assert "has no backup script (/usr/local/sbin/duo-gitlab-backup): GitLab's own backup" in (
        folder.log_file.read_text()
    )
    assert double.writes == 0  # the migrations are only read
    state = json.loads((folder.root / "upgrade-state.json").read_text())
    assert all(s["status"] == "done" for s in state["steps"].values())


def test_the_backup_is_duoctl_backup_when_the_host_has_its_script(tmp_path: Path) -> None:
    folder = make_deployment(tmp_path)
    ran: list[str | None] = []

    def backup(ctx: Context, key: str | None) -> None:
        ran.append(key)
        ctx.progress.output("DUO_BACKUP {}")

    adhoc = AdHoc(executable=str(tmp_path / "no-ansible"))  # never run
    BackupStep("b", adhoc, private_key="/keys/id", backup=backup).run(context(folder))
    assert ran == ["/keys/id"]


def test_a_failed_duoctl_backup_stops_the_hop(tmp_path: Path) -> None:
    folder = make_deployment(tmp_path)

    def backup(ctx: Context, key: str | None) -> None:
        raise DuoctlError("the backup on gitlab-vm failed (exit 1):\ndisk full", "read it")

    with pytest.raises(StepFailed, match="disk full"):
        BackupStep("b", AdHoc(executable="/nonexistent"), backup=backup).run(context(folder))


def test_the_ci_database_counts_when_gitlab_has_one(tmp_path: Path, double: GitLabDouble) -> None:
    folder = make_deployment(tmp_path)
    api = ApiAccess(double.url, folder.admin_token_file, str(folder.ca_file))
    double.migrations["ci"] = [migration(5, "failed", job="BackfillCiThing")]
    with pytest.raises(StepFailed, match="BackfillCiThing"):
        MigrationsStep("m", api, sleep=lambda _: None).run(context(folder))
    del double.migrations["ci"]  # a single database: GitLab refuses database=ci (400)
    MigrationsStep("m", api, sleep=lambda _: None).run(context(folder))
