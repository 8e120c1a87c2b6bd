"""The deploy steps and settings on their own: DNS wait, SSH targets, Terraform variables,
verify availability, settings resolution and the terminal progress line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from duoctl import deploy, settings
from duoctl.deployment import Deployment
from duoctl.errors import DuoctlError
from duoctl.folder import DeploymentFolder
from duoctl.pipeline import Context, Progress, StepFailed

ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl duo@test"
)
CONTRACT_INVENTORY: dict[str, Any] = {
    "all": {
        "vars": {"ansible_user": "ubuntu", "gitlab_url": "https://gitlab.example.com"},
        "children": {
            "gitlab": {
                "hosts": {
                    "gitlab-vm": {"ansible_host": "203.0.113.10", "public_ip": "203.0.113.10"}
                }
            },
            "ai_gateway": {
                "hosts": {"gateway-vm": {"ansible_host": "10.0.2.10"}},
                "vars": {
                    "ansible_ssh_common_args": "-o ProxyJump=ubuntu@203.0.113.10 "
                    "-o StrictHostKeyChecking=accept-new"
                },
            },
            "ollama": {
                "hosts": {"ollama-vm": {"ansible_host": "10.0.3.10"}},
                "vars": {"ansible_ssh_common_args": "-o ProxyJump=admin@203.0.113.10:2222"},
            },
        },
    }
}

# mistral:instruct (4.1 GB) on a T4 with an 8,192-token context: four requests at once.
OLLAMA_ON_A_T4 = {"ollama_context_length": 8192, "ollama_num_parallel": 4}


def make_settings(tmp_path: Path, **extra: Any) -> settings.DeploySettings:
    key = tmp_path / "id.pub"
    key.write_text(ED25519_KEY)
    base = {
        "cloud": "aws",
        "region": "us-east-1",
        "ssh_public_key_file": str(key),
        "admin_cidr": "198.51.100.7/32",
    }
    return settings.DeploySettings(**{**base, **extra})


def remember_deployment(ctx: Context) -> None:
    """What the terraform step keeps: the deployment its outputs describe."""
    ctx.data["deployment"] = Deployment.from_outputs(
        {
            "gitlab_public_ip": "203.0.113.10",
            "gitlab_private_ip": "10.0.1.10",
            "gateway_private_ip": "10.0.2.10",
            "ollama_private_ip": "10.0.2.11",
            "gitlab_domain": "gitlab.example.com",
            "ssh_user": "ubuntu",
        },
        "aws",
    ).model_dump(mode="json")


def make_ctx(tmp_path: Path, s: settings.DeploySettings | None) -> tuple[Context, io.StringIO]:
    out = io.StringIO()
    paths = DeploymentFolder(tmp_path / ".deploy" / "aws", tmp_path)
    return Context("aws", paths, Progress(paths.log_file, out), s), out


def test_wait_dns_prints_the_record_and_waits(tmp_path: Path):
    ctx, out = make_ctx(tmp_path, make_settings(tmp_path, domain="gitlab.example.com"))
    remember_deployment(ctx)
    answers = iter([set(), {"192.0.2.1"}, {"203.0.113.10"}])
    deploy.WaitDnsStep(resolver=lambda name: next(answers), interval=0.0).run(ctx)
    text = out.getvalue()
    assert "Create this DNS record now" in text
    assert "gitlab.example.com. 300 IN A 203.0.113.10" in text
    log = ctx.paths.log_file.read_text()
    assert "gitlab.example.com -> 192.0.2.1; waiting" in log
    assert "gitlab.example.com resolves to 203.0.113.10" in log


def test_wait_dns_times_out_with_the_record_to_fix(tmp_path: Path):
    ctx, _ = make_ctx(tmp_path, make_settings(tmp_path, domain="gitlab.example.com"))
    remember_deployment(ctx)
    step = deploy.WaitDnsStep(resolver=lambda name: {"192.0.2.1"}, timeout=0.0, interval=0.0)
    with pytest.raises(StepFailed, match=r"gives 192\.0\.2\.1.*`gitlab\.example\.com\. 300 IN A"):
        step.run(ctx)


def test_wait_dns_is_skipped_without_lets_encrypt(tmp_path: Path):
    ctx, _ = make_ctx(tmp_path, make_settings(tmp_path, letsencrypt=False))

    def never(name: str) -> set[str]:
        raise AssertionError("no DNS lookup without Let's Encrypt")

    deploy.WaitDnsStep(resolver=never).run(ctx)


def test_managed_zone_does_not_ask_for_a_record(tmp_path: Path):
    s = make_settings(tmp_path, domain="gitlab.example.com", managed_zone="Z0123456789")
    ctx, out = make_ctx(tmp_path, s)
    remember_deployment(ctx)
    deploy.WaitDnsStep(resolver=lambda name: {"203.0.113.10"}).run(ctx)
    assert "Create this DNS record" not in out.getvalue()


def test_terraform_variables_per_cloud(tmp_path: Path):
    aws = deploy.terraform_variables(make_settings(tmp_path), "gitlab.example.com", "us-east-1b")
    assert aws == {
        "region": "us-east-1",
        "admin_cidrs": ["198.51.100.7/32"],
        "ssh_public_key": ED25519_KEY,
        "gitlab_domain": "gitlab.example.com",
        "prefix": "duo",
        "gateway_port": 5052,
        "gateway_grpc_port": 50052,
        "ollama_port": 11434,
    }
    gcp_settings = make_settings(
        tmp_path,
        cloud="gcp",
        region="europe-west4",
        project="my-project",
        managed_zone="example-com",
        ollama_machine_type="n1-standard-8",
    )
    gcp = deploy.terraform_variables(gcp_settings, "gitlab.example.com", "europe-west4-b")
    assert gcp["project_id"] == "my-project"
    assert gcp["zone"] == "europe-west4-b"
    assert gcp["dns_managed_zone"] == "example-com"
    assert gcp["ollama_machine_type"] == "n1-standard-8"
    assert "availability_zone" not in gcp and "route53_zone_id" not in gcp


def test_gcp_terraform_needs_a_zone(tmp_path: Path):
    s = make_settings(tmp_path, cloud="gcp", region="europe-west4", project="p-123456")
    ctx, _ = make_ctx(tmp_path, s)
    with pytest.raises(StepFailed, match="pass --zone"):
        deploy.TerraformStep(source=tmp_path).run(ctx)


def test_settings_precedence_and_environment(tmp_path: Path):
    key = tmp_path / "id.pub"
    key.write_text(ED25519_KEY)
    saved = {"region": "eu-west-3", "ssh_public_key_file": str(key), "admin_cidr": "192.0.2.1/32"}
    env = {"AWS_REGION": "us-west-2"}
    resolved = settings.resolve("aws", {"region": "ap-northeast-1"}, saved, lambda: "x", env)
    assert resolved.region == "ap-northeast-1"  # the command line wins
    assert settings.resolve("aws", {}, saved, lambda: "x", env).region == "eu-west-3"
    del saved["region"]
    assert settings.resolve("aws", {}, saved, lambda: "x", env).region == "us-west-2"
    with pytest.raises(settings.SettingsError, match="not 'aws'"):
        settings.resolve("aws", {}, {**saved, "cloud": "gcp"}, lambda: "x", env)
    with pytest.raises(settings.SettingsError, match="--project my-project-id"):
        settings.resolve("gcp", {"region": "europe-west4"}, saved, lambda: "x", {})
    with pytest.raises(settings.SettingsError, match="colour: Extra inputs are not permitted"):
        settings.resolve("aws", {}, {**saved, "colour": "blue"}, lambda: "x", env)


def test_default_ssh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(settings.SettingsError, match="ssh-keygen -t ed25519"):
        settings.default_ssh_key()
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa.pub").write_text("ssh-rsa AAAA")
    assert settings.default_ssh_key() == "~/.ssh/id_rsa.pub"
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text(ED25519_KEY)
    assert settings.default_ssh_key() == "~/.ssh/id_ed25519.pub"


def test_saved_settings_round_trip(tmp_path: Path):
    s = make_settings(tmp_path, zone="us-east-1a")
    path = settings.settings_file(tmp_path, "aws")
    settings.save(s, path)
    assert settings.DeploySettings(**settings.load_saved(path)) == s
    path.write_text("- not a mapping\n")
    with pytest.raises(settings.SettingsError, match="mapping"):
        settings.load_saved(path)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_redraws_the_status_line(tmp_path: Path):
    term = FakeTerminal()
    progress = Progress(tmp_path / "log", term, tick=0.01)
    progress.start("[2/8] terraform")
    progress.output("aws_instance.gitlab: Creating...")
    progress.stop()
    text = term.getvalue()
    assert "\r\033[K[2/8] terraform 0s | aws_instance.gitlab: Creating..." in text


def test_default_step_lists(tmp_path: Path):
    steps = deploy.cloud_steps(make_settings(tmp_path, letsencrypt=False))
    assert [s.name for s in steps] == list(deploy.CLOUD_STEPS)
    [site] = (s for s in steps if isinstance(s, deploy.PlaybookStep))
    assert site.extra_vars == {"gitlab_tls_mode": "selfsigned", **OLLAMA_ON_A_T4}
    assert isinstance(steps[6], deploy.DuoStep) and steps[6].activation_code_file is None
    assert [s.name for s in deploy.hosts_steps()] == list(deploy.HOSTS_STEPS)
    private = tmp_path / "id"
    private.write_text("private")
    steps = deploy.cloud_steps(make_settings(tmp_path))
    assert steps[3].key_file == str(private)  # type: ignore[attr-defined]
    site_vars = steps[5].extra_vars  # type: ignore[attr-defined]
    assert site_vars == {"gitlab_tls_mode": "letsencrypt", **OLLAMA_ON_A_T4}


def test_verify_step_passes_the_deploy_files(tmp_path: Path):
    ctx, out = make_ctx(tmp_path, None)
    step = deploy.VerifyStep(private_key="/keys/id_ed25519")
    options = step.options(ctx, print)
    assert (options.inventory, options.ssh_key, options.known_hosts) == (
        ctx.paths.inventory,
        "/keys/id_ed25519",
        ctx.paths.known_hosts,
    )
    assert (options.token_file, options.ca_file, options.rake) == (None, None, True)
    ctx.paths.secrets_dir.mkdir(parents=True)
    ctx.paths.admin_token_file.write_text("token")
    (ctx.paths.secrets_dir / "gitlab_ca.crt").write_text("ca")
    options = step.options(ctx, print)
    assert options.token_file == ctx.paths.admin_token_file
    assert options.ca_file == str(ctx.paths.secrets_dir / "gitlab_ca.crt")
    # The inventory does not exist: duoctl verify refuses, and the step reports it.
    with pytest.raises(StepFailed, match="verification failed"):
        step.run(ctx)
    assert str(ctx.paths.inventory) in out.getvalue()


def test_no_capacity_suggests_another_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from duoctl import terraform

    def exhausted(workdir: Path, variables: Any, sink: Any = None) -> None:
        raise terraform.TerraformError("Error: ZONE_RESOURCE_POOL_EXHAUSTED in europe-west4-a")

    monkeypatch.setattr(terraform, "init", lambda workdir, sink=None: None)
    monkeypatch.setattr(terraform, "apply", exhausted)
    s = make_settings(tmp_path, cloud="gcp", region="europe-west4", project="p-123456")
    ctx, _ = make_ctx(tmp_path, s)
    ctx.data["zone"] = "europe-west4-a"
    source = tmp_path / "module"
    source.mkdir()
    (source / "versions.tf").write_text("terraform {}\n")
    with pytest.raises(StepFailed, match="No capacity in europe-west4-a now: re-run with --zone"):
        deploy.TerraformStep(source=source).run(ctx)


def test_site_step_passes_the_tls_mode_and_license(tmp_path: Path) -> None:
    license_file = tmp_path / "duo.gitlab-license"
    license_file.write_text("license")
    steps = deploy.cloud_steps(make_settings(tmp_path, license_file=str(license_file)))
    site = next(s for s in steps if s.name == "site")
    assert isinstance(site, deploy.PlaybookStep)
    assert site.extra_vars == {
        "gitlab_tls_mode": "letsencrypt",
        "gitlab_license_file": str(license_file.resolve()),
        **OLLAMA_ON_A_T4,
    }
    plain = next(
        s
        for s in deploy.cloud_steps(make_settings(tmp_path, letsencrypt=False))
        if s.name == "site"
    )
    assert isinstance(plain, deploy.PlaybookStep)
    assert plain.extra_vars == {"gitlab_tls_mode": "selfsigned", **OLLAMA_ON_A_T4}


ACTIVATION_CODE = "Abcdefghij0123456789WXYZ"


def _duo_step(steps: list[Any]) -> deploy.DuoStep:
    step = next(s for s in steps if s.name == "duo")
    assert isinstance(step, deploy.DuoStep)
    return step


def test_activation_code_file_reaches_the_duo_step(tmp_path: Path) -> None:
    code = tmp_path / "activation_code"
    code.write_text(ACTIVATION_CODE + "\n")
    s = make_settings(tmp_path, activation_code_file=str(code))
    duo = _duo_step(deploy.cloud_steps(s))
    assert duo.activation_code_file == str(code.resolve())
    assert ACTIVATION_CODE not in str(duo)
    assert _duo_step(deploy.cloud_steps(make_settings(tmp_path))).activation_code_file is None
    # Saved like the other settings: only the path, never the code.
    path = tmp_path / "settings.yml"
    settings.save(s, path)
    assert settings.load_saved(path)["activation_code_file"] == str(code)
    assert ACTIVATION_CODE not in path.read_text()


def test_own_hosts_take_the_activation_code_file_too(tmp_path: Path) -> None:
    code = tmp_path / "activation_code"
    code.write_text(ACTIVATION_CODE + "\n")
    duo = _duo_step(deploy.hosts_steps(str(code)))
    assert duo.activation_code_file == str(code.resolve())
    assert _duo_step(deploy.hosts_steps()).activation_code_file is None
    with pytest.raises(settings.SettingsError, match="cannot read the activation code file"):
        deploy.hosts_steps(str(tmp_path / "none"))


def test_activation_code_file_from_the_command_line_is_checked_before_saving(
    tmp_path: Path,
) -> None:
    (tmp_path / "id.pub").write_text(ED25519_KEY)
    saved = {"ssh_public_key_file": str(tmp_path / "id.pub"), "admin_cidr": "198.51.100.7/32"}
    env = {"AWS_REGION": "us-east-1"}
    empty = tmp_path / "empty"
    empty.write_text("")
    for given, message in (
        (str(tmp_path / "none"), "cannot read the activation code file"),
        (str(empty), "is empty"),
        (ACTIVATION_CODE, "the code itself instead of a file path"),
    ):
        chosen = settings.resolve("aws", {"activation_code_file": given}, saved, lambda: "x", env)
        with pytest.raises(settings.SettingsError, match="--activation-code-file: ") as info:
            chosen.check_files()
        assert message in str(info.value) and ACTIVATION_CODE not in str(info.value)
    with pytest.raises(settings.SettingsError, match="--activation-code-file: must be"):
        settings.resolve("aws", {}, {**saved, "activation_code_file": " "}, lambda: "x", env)


def test_vanished_saved_code_file_stops_deploy_but_not_destroy(tmp_path: Path) -> None:
    saved = {
        "ssh_public_key_file": str(tmp_path / "id.pub"),
        "admin_cidr": "198.51.100.7/32",
        "activation_code_file": str(tmp_path / "deleted"),
    }
    # destroy and preflight only resolve the settings: a deleted code file does not stop them.
    s = settings.resolve("aws", {}, saved, lambda: "x", {"AWS_REGION": "us-east-1"})
    with pytest.raises(settings.SettingsError, match=r"the deployment's settings\.yml"):
        deploy.cloud_steps(s)


ANSIBLE_OUTPUT = """\
TASK [common : Install the base packages] **************************************
ok: [gitlab-vm]
fatal: [gateway-vm]: UNREACHABLE! =>
    changed: false
    msg: 'Failed to connect to the host via ssh: Connection timed out'
    unreachable: true

TASK [ollama : Copy the release archive from the controller] *******************
failed: [ollama-vm] (item=ollama) =>
    changed: false
    msg: |-
        Could not find or access 'ollama-linux-amd64.tar.zst' on the Ansible Controller.
        If you are using a module and expect the file to exist on the remote, see remote_src
fatal: [gitlab-vm]: FAILED! => {"changed": false, "msg": "in JSON"}

TASK [gitlab : Refuse to downgrade GitLab] *************************************
fatal: [gitlab-vm]: FAILED! =>
    assertion: gitlab_present_version | length == 0
    changed: false
    evaluated_to: false
    msg: 'gitlab-ee 19.5.1-ee.0 is installed, newer than the pinned 19.4.1-ee.0: GitLab
        cannot be downgraded. Pin the installed version.'

TASK [gitlab : An allowed failure] *********************************************
fatal: [gitlab-vm]: FAILED! =>
    msg: not counted
...ignoring

PLAY RECAP *********************************************************************
"""


def test_ansible_failures_name_host_task_and_message() -> None:
    assert deploy.ansible_failures(ANSIBLE_OUTPUT.splitlines()) == (
        "gateway-vm unreachable at [common : Install the base packages]: "
        "Failed to connect to the host via ssh: Connection timed out\n"
        "ollama-vm failed at [ollama : Copy the release archive from the controller]: "
        "Could not find or access 'ollama-linux-amd64.tar.zst' on the Ansible Controller.\n"
        "gitlab-vm failed at [ollama : Copy the release archive from the controller]: in JSON\n"
        "gitlab-vm failed at [gitlab : Refuse to downgrade GitLab]: gitlab-ee 19.5.1-ee.0 is "
        "installed, newer than the pinned 19.4.1-ee.0: GitLab cannot be downgraded. Pin the "
        "installed version."
    )
    assert deploy.ansible_failures(["PLAY RECAP ****", "ok: [x]"]) == ""


def test_verify_step_shows_verify_input_errors(tmp_path: Path) -> None:
    ctx, out = make_ctx(tmp_path, None)  # the inventory file does not exist
    with pytest.raises(StepFailed, match="exit code 2"):
        deploy.VerifyStep().run(ctx)
    assert f"error: the inventory {ctx.paths.inventory} does not exist" in out.getvalue()


def test_named_deployments_get_their_own_resource_prefix() -> None:
    from duoctl.deploy.commands import default_prefix

    assert default_prefix("aws", "aws") == "duo"
    assert default_prefix("staging", "aws") == "duo-staging"
    long = default_prefix("a-very-long-deployment-name", "gcp")
    assert long == "duo-a-very-long" and settings.PREFIX.match(long)
    assert default_prefix("x-" * 7 + "y", "aws") == "duo-x-x-x-x-x-x"


def test_wait_ssh_pins_the_keys_the_cloud_reports_before_the_first_login(tmp_path: Path):
    from duoctl.hostkeys import keys_from_console

    ctx, _ = make_ctx(tmp_path, None)
    remember_deployment(ctx)
    ctx.data["deployment"]["hosts"][0]["instance"] = "i-0123456789abcdef0"
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    console = f"-----BEGIN SSH HOST KEY KEYS-----\n{key} root@vm\n-----END SSH HOST KEY KEYS-----"
    reported: list[list[Any]] = [[], keys_from_console(console)]  # first boot: nothing yet
    seen_known_hosts: list[str] = []

    def host_keys(deployment: Any, host: Any) -> list[Any]:
        return reported.pop(0) if host.name == "gitlab-vm" else []

    def probe(host: Any, jump: Any, key_file: Any, timeout: float, known_hosts: Path) -> None:
        if host.name == "gitlab-vm":
            seen_known_hosts.append(known_hosts.read_text())

    step = deploy.WaitSshStep(host_keys=host_keys, probe=probe, interval=0.0, cloud_keys_grace=60)
    step.run(ctx)
    # The login came only after the keys were pinned: never a first-use trust for gitlab-vm.
    assert seen_known_hosts == [f"203.0.113.10 {key}\n"]
    assert "pinned 1 host keys of gitlab-vm from the cloud" in ctx.paths.log_file.read_text()


def test_wait_ssh_trusts_on_first_use_when_the_cloud_reports_nothing(tmp_path: Path):
    ctx, _ = make_ctx(tmp_path, None)
    remember_deployment(ctx)
    ctx.data["deployment"]["hosts"][0]["instance"] = "i-0123456789abcdef0"
    probed: list[str] = []
    step = deploy.WaitSshStep(
        host_keys=lambda deployment, host: [],
        probe=lambda host, *rest: probed.append(host.name),
        interval=0.0,
        cloud_keys_grace=0.0,
    )
    step.run(ctx)
    assert probed == ["gitlab-vm", "gateway-vm", "ollama-vm"]
    assert "gitlab-vm: the cloud reports no host key for it yet; pinning the key of the first" in (
        ctx.paths.log_file.read_text()
    )


def test_vllm_serving_follows_its_preset_downstream(tmp_path: Path) -> None:
    """--serving vllm: the GPU VM, port and disk in Terraform, the role's model arguments."""
    from duoctl import serving

    s = make_settings(tmp_path, serving="vllm")
    preset = serving.PRESETS[serving.DEFAULT_PRESET]
    variables = deploy.terraform_variables(s, "gitlab.example.com")
    assert variables["ollama_instance_type"] == preset.machine_types["aws"]
    assert variables["model_port"] == 8000 and "ollama_port" not in variables
    assert variables["ollama_disk_gb"] == serving.disk_gb(preset)
    gcp = make_settings(tmp_path, cloud="gcp", region="europe-west4", project="p-123456")
    gcp_vllm = gcp.model_copy(update={"serving": "vllm"})
    gcp_variables = deploy.terraform_variables(gcp_vllm, "gitlab.example.com", "europe-west4-a")
    assert gcp_variables["ollama_gpu_type"] == "nvidia-l4"
    [site] = (st for st in deploy.cloud_steps(s) if isinstance(st, deploy.PlaybookStep))
    assert site.extra_vars["vllm_served_model_name"] == preset.served_model_name
    assert "ollama_num_parallel" not in site.extra_vars
    assert s.ports().ollama_port == 8000  # the model server's port in the URLs


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"serving": "vllm", "model_preset": "no-such-preset"}, "no serving preset"),
        ({"model_preset": "codestral-22b-awq-l4"}, "model_preset needs serving vllm"),
        (
            {"serving": "vllm", "model_preset": "mistral-small-24b-bf16-a100-80"},
            "has no aws VM",
        ),
    ],
)
def test_bad_serving_choices_are_refused_before_anything(
    tmp_path: Path, extra: dict[str, str], problem: str
) -> None:
    (tmp_path / "id.pub").write_text(ED25519_KEY)
    saved = {"ssh_public_key_file": str(tmp_path / "id.pub"), "admin_cidr": "198.51.100.7/32"}

    def deploy_inputs() -> None:
        chosen = settings.resolve("aws", extra, saved, lambda: "x", {"AWS_REGION": "us-east-1"})
        chosen.check_files()

    with pytest.raises(DuoctlError) as bad:
        deploy_inputs()
    assert problem in str(bad.value) and bad.value.exit_code == 2
