"""`duoctl preflight`, `duoctl deploy` and `duoctl destroy`: the steps and the command glue.

Cloud deploy: preflight -> terraform -> inventory -> wait_ssh -> wait_dns -> site -> duo -> verify.
Own hosts (`deploy hosts --inventory FILE`): wait_ssh -> site -> duo -> verify.
Each step takes its targets (tool paths, working directories, resolvers) as arguments, so the
same classes run against a cloud or against local stand-ins.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from duoctl.pipeline import Context, DeployPaths, Pipeline, Progress, Step, StepFailed, file_digest
from duoctl.settings import (
    CLOUDS,
    Cloud,
    DeploySettings,
    SettingsError,
    activation_code_path,
    detect_public_ip,
    load_saved,
    resolve,
    save,
    settings_file,
    wildcard_domain,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# Terraform needs a host name before the public IP exists; the wildcard-DNS name replaces it in
# a second, output-only apply as soon as the IP is known.
PROVISIONAL_DOMAIN = "gitlab.pending.sslip.io"
CLOUD_STEPS = (
    "preflight",
    "terraform",
    "inventory",
    "wait_ssh",
    "wait_dns",
    "site",
    "duo",
    "verify",
)
CAPACITY_ERRORS = ("ZONE_RESOURCE_POOL_EXHAUSTED", "InsufficientInstanceCapacity")
ZONE_CHECKS = ("instance types", "machine types")  # preflight checks that choose the zone
HOSTS_STEPS = ("wait_ssh", "site", "duo", "verify")
SETTINGS_KEYS = (
    "region",
    "zone",
    "project",
    "ssh_public_key_file",
    "admin_cidr",
    "domain",
    "managed_zone",
    "letsencrypt",
    "license_file",
    "activation_code_file",
    "prefix",
)


def repo_root() -> Path:
    """The checkout holding ansible/ and terraform/: the current directory or the package's."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "ansible" / "playbooks").is_dir() or (candidate / "terraform").is_dir():
                return candidate
    return Path.cwd()


def output_value(outputs: dict[str, Any], key: str) -> Any:
    """A Terraform output, whether given as `terraform output -json` ({value: ...}) or plain."""
    if key not in outputs:
        raise StepFailed(f"terraform output {key!r} is missing; run the terraform step again")
    value = outputs[key]
    return value["value"] if isinstance(value, dict) and "value" in value else value


def terraform_variables(
    settings: DeploySettings, domain: str, zone: str | None = None
) -> dict[str, Any]:
    """Settings -> the Terraform variables of terraform/<cloud>.

    `zone` is the one preflight chose when the settings name none: Google Cloud needs one,
    AWS picks the same first fitting zone itself.
    """
    types = {
        "gitlab_instance_type": settings.gitlab_machine_type,
        "gateway_instance_type": settings.gateway_machine_type,
        "ollama_instance_type": settings.ollama_machine_type,
    }
    variables: dict[str, Any] = {
        "region": settings.region,
        "admin_cidrs": [settings.admin_cidr],
        "ssh_public_key": settings.ssh_public_key(),
        "gitlab_domain": domain,
        "prefix": settings.prefix,
    }
    if settings.cloud == "aws":
        variables["availability_zone"] = settings.zone
        variables["route53_zone_id"] = settings.managed_zone
        variables.update(types)
    else:
        variables["project_id"] = settings.project
        variables["zone"] = settings.zone or zone
        variables["dns_managed_zone"] = settings.managed_zone
        variables.update({k.replace("instance", "machine"): v for k, v in types.items()})
    return {k: v for k, v in variables.items() if v is not None}


def _read_inventory(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StepFailed(f"cannot read the inventory {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise StepFailed(f"{path} is not an inventory (top level `all:` expected)")
    return data


def _remember_inventory(ctx: Context, inventory: dict[str, Any]) -> None:
    """Keep the GitLab URL, domain and public IP of the inventory for later steps."""
    all_vars = inventory["all"].get("vars") or {}
    for key in ("gitlab_url", "gitlab_domain"):
        if all_vars.get(key):
            ctx.data[key] = all_vars[key]
    gitlab_hosts = ((inventory["all"].get("children") or {}).get("gitlab") or {}).get("hosts")
    for host_vars in (gitlab_hosts or {}).values():
        host_vars = host_vars or {}
        ip = host_vars.get("public_ip") or host_vars.get("ansible_host")
        if ip:
            ctx.data["gitlab_public_ip"] = ip


# --- steps ---------------------------------------------------------------------------------


@dataclass
class PreflightStep:
    checks: Callable[[DeploySettings], list[Any]] | None = None
    name: str = "preflight"

    def run(self, ctx: Context) -> None:
        from duoctl import preflight

        results = (self.checks or preflight.run_checks)(ctx.settings)
        for line in preflight.render(results).splitlines():
            ctx.progress.output(line)
        if not preflight.all_ok(results):
            raise StepFailed("preflight found problems; each is listed above with its fix")
        zones = [r.value for r in results if r.name in ZONE_CHECKS and r.value]
        if zones:
            ctx.data["zone"] = zones[0]


@dataclass
class TerraformStep:
    """terraform init + apply of terraform/<cloud>; keeps the outputs for the next steps."""

    workdir: Path | None = None
    name: str = "terraform"

    def run(self, ctx: Context) -> None:
        from duoctl import terraform

        settings: DeploySettings = ctx.settings
        workdir = self.workdir or terraform.terraform_dir(ctx.target)
        domain = settings.domain or ctx.data.get("wildcard_domain") or PROVISIONAL_DOMAIN
        zone = settings.zone or ctx.data.get("zone")
        if settings.cloud == "gcp" and not zone:
            raise StepFailed("no zone known: pass --zone (e.g. us-central1-a) or run preflight")
        try:
            ctx.progress.output(f"terraform init in {workdir}")
            terraform.init(workdir, sink=ctx.progress.output)
            ctx.progress.output("terraform apply")
            terraform.apply(
                workdir, terraform_variables(settings, domain, zone), sink=ctx.progress.output
            )
            outputs = terraform.outputs(workdir)
            if settings.domain_plan() == "wildcard_dns":
                wanted = wildcard_domain(str(output_value(outputs, "gitlab_public_ip")))
                ctx.data["wildcard_domain"] = wanted
                if wanted != domain:
                    ctx.progress.output(f"GitLab's name: {wanted}; applying it")
                    terraform.apply(
                        workdir,
                        terraform_variables(settings, wanted, zone),
                        sink=ctx.progress.output,
                    )
                    outputs = terraform.outputs(workdir)
        except terraform.TerraformError as exc:
            hint = ""
            if any(word in str(exc) for word in CAPACITY_ERRORS):
                hint = (
                    f"\nNo capacity in {zone or 'this zone'} now: re-run with --zone ANOTHER_ZONE"
                )
            raise StepFailed(f"{exc}{hint}") from exc
        ctx.data["outputs"] = outputs
        ctx.data["gitlab_url"] = output_value(outputs, "gitlab_url")
        ctx.data["gitlab_domain"] = output_value(outputs, "gitlab_domain")
        ctx.data["gitlab_public_ip"] = output_value(outputs, "gitlab_public_ip")
        ctx.data["dns_record_needed"] = output_value(outputs, "dns_record_needed")


@dataclass
class InventoryStep:
    """Terraform outputs -> the Ansible inventory (duoctl.inventory)."""

    workdir: Path | None = None
    name: str = "inventory"

    def run(self, ctx: Context) -> None:
        from duoctl import inventory, terraform

        outputs = ctx.data.get("outputs")
        if outputs is None:
            try:
                outputs = terraform.outputs(self.workdir or terraform.terraform_dir(ctx.target))
            except terraform.TerraformError as exc:
                raise StepFailed(f"cannot read the terraform outputs: {exc}") from exc
        try:
            changed = inventory.write_inventory(dict(outputs), ctx.target, ctx.paths.inventory)
        except inventory.InventoryError as exc:
            raise StepFailed(str(exc)) from exc
        ctx.progress.output(f"{ctx.paths.inventory} {'written' if changed else 'unchanged'}")
        _remember_inventory(ctx, _read_inventory(ctx.paths.inventory))


@dataclass(frozen=True)
class SshTarget:
    name: str
    host: str
    port: int
    user: str
    jump: tuple[str, str, int] | None  # (user, host, port) of the ProxyJump host
    key_file: str | None = None  # ansible_ssh_private_key_file, when the inventory sets it


def _parse_jump(common_args: str, default_user: str) -> tuple[str, str, int] | None:
    match = re.search(r"ProxyJump=([^\s'\"]+)", common_args)
    if not match:
        return None
    spec = match.group(1).split(",")[0]
    user, _, hostport = spec.rpartition("@")
    host, _, port = hostport.partition(":")
    return (user or default_user, host, int(port or 22))


def ssh_targets(inventory: dict[str, Any]) -> list[SshTarget]:
    """Every host of the inventory with how to reach it (direct or through its ProxyJump)."""
    all_vars = inventory["all"].get("vars") or {}
    targets = []
    for group in (inventory["all"].get("children") or {}).values():
        group = group or {}
        for host_name, host_vars in (group.get("hosts") or {}).items():
            merged = {**all_vars, **(group.get("vars") or {}), **(host_vars or {})}
            user = str(merged.get("ansible_user", "ubuntu"))
            targets.append(
                SshTarget(
                    name=str(host_name),
                    host=str(merged.get("ansible_host", host_name)),
                    port=int(merged.get("ansible_port", 22)),
                    user=user,
                    jump=_parse_jump(str(merged.get("ansible_ssh_common_args", "")), user),
                    key_file=merged.get("ansible_ssh_private_key_file"),
                )
            )
    return targets


class _AcceptNewHostKey:
    """Like OpenSSH's StrictHostKeyChecking=accept-new: a known host with another key still fails
    (paramiko checks the loaded known_hosts before asking the policy)."""

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)


def probe_ssh(target: SshTarget, key_file: str | None, timeout: float) -> None:
    """Log in (through the jump host when there is one) and wait for cloud-init to finish."""
    import paramiko

    def connect(host: str, port: int, user: str, sock: Any = None) -> Any:
        client = paramiko.SSHClient()
        client.load_system_host_keys()
        client.set_missing_host_key_policy(_AcceptNewHostKey())
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=key_file,
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        return client

    clients = []
    try:
        sock = None
        if target.jump:
            jump_user, jump_host, jump_port = target.jump
            clients.append(connect(jump_host, jump_port, jump_user))
            sock = (
                clients[0]
                .get_transport()
                .open_channel(
                    "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=timeout
                )
            )
        clients.append(connect(target.host, target.port, target.user, sock))
        # First boot: cloud-init may still hold the apt lock; wait for it where it exists.
        _, stdout, _ = clients[-1].exec_command(
            "if command -v cloud-init >/dev/null 2>&1; then "
            "timeout 900 cloud-init status --wait >/dev/null 2>&1; fi; true",
            timeout=960,
        )
        stdout.channel.recv_exit_status()
    finally:
        for client in reversed(clients):
            client.close()


@dataclass
class WaitSshStep:
    """Wait until every host of the inventory accepts SSH (private ones through the jump host)."""

    key_file: str | None = None  # private key; None: ssh-agent and ~/.ssh defaults
    timeout: float = 600.0
    interval: float = 10.0
    connect_timeout: float = 10.0
    probe: Callable[[SshTarget, str | None, float], None] = probe_ssh
    name: str = "wait_ssh"

    def run(self, ctx: Context) -> None:
        inventory = _read_inventory(ctx.paths.inventory)
        _remember_inventory(ctx, inventory)
        pending = {t.name: t for t in ssh_targets(inventory)}
        if not pending:
            raise StepFailed(f"{ctx.paths.inventory} lists no host")
        errors: dict[str, str] = {}
        deadline = time.monotonic() + self.timeout
        while pending:
            for name, target in list(pending.items()):
                try:
                    self.probe(target, target.key_file or self.key_file, self.connect_timeout)
                except Exception as exc:  # any SSH error means "not yet"
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    continue
                via = f" via {target.jump[1]}" if target.jump else ""
                ctx.progress.output(f"ssh ok: {name} ({target.host}{via})")
                del pending[name]
            if not pending:
                return
            if time.monotonic() >= deadline:
                break
            ctx.progress.output(f"waiting for ssh: {', '.join(sorted(pending))}")
            time.sleep(self.interval)
        details = "; ".join(f"{n}: {errors.get(n, '?')}" for n in sorted(pending))
        raise StepFailed(
            f"no SSH after {self.timeout:.0f}s to {details}. Check that the VMs run, that your "
            "current public address is inside the admin CIDR (re-run with --admin-cidr), and that "
            "the SSH key matches"
        )


def resolve_ipv4(name: str) -> set[str]:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
    except socket.gaierror:
        return set()
    return {str(info[4][0]) for info in infos}


@dataclass
class WaitDnsStep:
    """Let's Encrypt needs the domain to resolve to GitLab's public IP before `site` runs."""

    resolver: Callable[[str], set[str]] = resolve_ipv4
    timeout: float = 1800.0
    interval: float = 15.0
    name: str = "wait_dns"

    def run(self, ctx: Context) -> None:
        settings = ctx.settings
        if settings is not None and not settings.letsencrypt:
            ctx.progress.output("Let's Encrypt is off: no DNS wait")
            return
        domain, ip = ctx.data.get("gitlab_domain"), ctx.data.get("gitlab_public_ip")
        if not domain or not ip:
            raise StepFailed("the GitLab domain or public IP is unknown; run the inventory step")
        if settings is None or settings.domain_plan() == "user_record":
            ctx.progress.note(
                f"Create this DNS record now (the deploy waits for it): {domain}. 300 IN A {ip}"
            )
        deadline = time.monotonic() + self.timeout
        while True:
            found = self.resolver(domain)
            if ip in found:
                ctx.progress.output(f"{domain} resolves to {ip}")
                return
            if time.monotonic() >= deadline:
                seen = ", ".join(sorted(found)) or "nothing"
                raise StepFailed(
                    f"{domain} does not resolve to {ip} after {self.timeout:.0f}s (it gives "
                    f"{seen}). Create or fix the record `{domain}. 300 IN A {ip}` and re-run; or "
                    "deploy without --domain to use a wildcard-DNS name"
                )
            ctx.progress.output(f"{domain} -> {', '.join(sorted(found)) or 'no answer'}; waiting")
            time.sleep(self.interval)


def tool_path(name: str) -> str:
    """A tool of this Python environment (the venv's ansible-playbook), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


ANSIBLE_TASK = re.compile(r"^TASK \[(?P<task>.+?)\] \**$")
ANSIBLE_FAILURE = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]]+)\](?P<rest>.*)$")


def _failure_block(lines: list[str], start: int) -> tuple[str, bool]:
    """The first line of the `msg` of the failure at lines[start], and whether it was ignored."""
    rest = lines[start].partition("=>")[2].strip()
    message = ""
    if rest.startswith("{"):  # the default callback: the result as one JSON line
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(rest).get("msg", "")).splitlines()[0]
    offset = start + 1
    while offset < len(lines) and (not lines[offset] or lines[offset].startswith(" ")):
        text = lines[offset].strip()
        if not message and text.startswith("msg:"):
            message = text.removeprefix("msg:").strip().strip("'\"")
            if message in ("", "|-", "|", ">-", ">") and offset + 1 < len(lines):
                message = lines[offset + 1].strip()
        offset += 1
    ignored = offset < len(lines) and lines[offset].startswith("...ignoring")
    return message, ignored


def ansible_failures(lines: list[str]) -> str:
    """One line per failed task of ansible-playbook's output: host, task, first message line."""
    found: list[str] = []
    task = "?"
    for index, line in enumerate(lines):
        if match := ANSIBLE_TASK.match(line):
            task = match["task"]
        elif match := ANSIBLE_FAILURE.match(line):
            message, ignored = _failure_block(lines, index)
            if ignored:
                continue
            kind = "unreachable" if "UNREACHABLE!" in match["rest"] else "failed"
            where = f"{match['host']} {kind} at [{task}]"
            found.append(f"{where}: {message}" if message else where)
    return "\n".join(dict.fromkeys(found))


@dataclass
class PlaybookStep:
    """ansible-playbook PLAYBOOK -i INVENTORY, with the deploy's secrets directory."""

    name: str
    playbook: str  # relative to the repository root
    executable: str | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    private_key: str | None = None  # the deploy's SSH key; None: ssh-agent and ~/.ssh defaults

    def run(self, ctx: Context) -> None:
        root = ctx.paths.root
        ctx.paths.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        extra = {"duo_secrets_dir": str(ctx.paths.secrets_dir.resolve()), **self.extra_vars}
        cmd = [self.executable or tool_path("ansible-playbook"), str(root / self.playbook)]
        cmd += ["-i", str(ctx.paths.inventory.resolve()), "-e", json.dumps(extra)]
        if self.private_key:
            cmd += ["--private-key", self.private_key]
        config = root / "ansible" / "ansible.cfg"
        env = {"ANSIBLE_CONFIG": str(config)} if config.exists() else {}
        cwd = config.parent if config.exists() else root
        ctx.run_command(cmd, cwd=cwd, env=env, explain=ansible_failures)


@dataclass
class VerifyStep:
    """`duoctl verify --inventory FILE` when this version of duoctl has it.

    `gitlab_url` and `ca_file` send the completion to another address of GitLab's API than
    the inventory's (verify's --gitlab-url and --ca-file); `skip_rake` leaves out the rake
    check (for a GitLab that cannot run it).
    """

    module: str = "duoctl.verify"
    private_key: str | None = None
    gitlab_url: str | None = None
    ca_file: str | None = None
    skip_rake: bool = False
    name: str = "verify"

    def argv(self, ctx: Context) -> list[str]:
        argv = ["verify", "--inventory", str(ctx.paths.inventory)]
        secrets = ctx.paths.secrets_dir
        if ctx.paths.admin_token_file.is_file():
            argv += ["--token-file", str(ctx.paths.admin_token_file)]
        ca_file = self.ca_file or secrets / "gitlab_ca.crt"
        if Path(ca_file).is_file():
            argv += ["--ca-file", str(ca_file)]
        if self.gitlab_url:
            argv += ["--gitlab-url", self.gitlab_url]
        if self.skip_rake:
            argv.append("--skip-rake")
        if self.private_key:
            argv += ["--ssh-key", self.private_key]
        return argv

    def run(self, ctx: Context) -> None:
        if importlib.util.find_spec(self.module) is None:
            raise StepFailed(
                "verify is not available in this version of duoctl: every step before it "
                "finished, but nothing has proven that Duo answers. Check by hand: sign in to "
                f"{ctx.data.get('gitlab_url', 'GitLab')} and run "
                "`sudo gitlab-rake 'gitlab:duo:verify_self_hosted_setup[root]'` on the GitLab VM"
            )
        from duoctl import cli

        report = io.StringIO()
        try:
            with contextlib.redirect_stdout(report), contextlib.redirect_stderr(report):
                code = cli.main(self.argv(ctx))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        ctx.progress.note(report.getvalue().rstrip())
        if code != 0:
            raise StepFailed(f"verification failed (exit code {code}); see the checks above")


def private_key_of(public_key_file: str) -> str | None:
    """The private key beside a .pub file, when it is there."""
    key = Path(public_key_file).expanduser()
    private = key.with_suffix("") if key.suffix == ".pub" else None
    return str(private) if private and private.is_file() else None


def cloud_steps(settings: DeploySettings) -> list[Step]:
    private = private_key_of(settings.ssh_public_key_file)
    return [
        PreflightStep(),
        TerraformStep(),
        InventoryStep(),
        WaitSshStep(key_file=private),
        WaitDnsStep(),
        PlaybookStep(
            "site",
            "ansible/playbooks/site.yml",
            extra_vars=_site_vars(settings),
            private_key=private,
        ),
        PlaybookStep(
            "duo",
            "ansible/playbooks/duo.yml",
            extra_vars=_duo_vars(settings.activation_code_file),
            private_key=private,
        ),
        VerifyStep(private_key=private),
    ]


def _site_vars(settings: DeploySettings) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "gitlab_tls_mode": "letsencrypt" if settings.letsencrypt else "selfsigned"
    }
    if settings.license_file:
        extra["gitlab_license_file"] = str(Path(settings.license_file).expanduser().resolve())
    return extra


def _duo_vars(activation_code_file: str | None = None) -> dict[str, Any]:
    """duo.yml runs `duoctl configure`: this environment's duoctl, whatever PATH holds; with
    the activation code file's absolute path when one is given (checked before any step)."""
    extra: dict[str, Any] = {"duo_duoctl_executable": tool_path("duoctl")}
    code_file = activation_code_path(activation_code_file)
    if code_file:
        extra["duo_activation_code_file"] = code_file
    return extra


def hosts_steps(activation_code_file: str | None = None) -> list[Step]:
    return [
        WaitSshStep(),
        PlaybookStep("site", "ansible/playbooks/site.yml"),
        PlaybookStep(
            "duo", "ansible/playbooks/duo.yml", extra_vars=_duo_vars(activation_code_file)
        ),
        VerifyStep(),
    ]


# --- command glue --------------------------------------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key, None) for key in SETTINGS_KEYS}


def load_settings(
    args: argparse.Namespace, detect: Callable[[], str] = detect_public_ip
) -> tuple[DeploySettings, Path]:
    cloud: Cloud = args.cloud
    path = settings_file(Path(args.deploy_dir), cloud)
    saved = load_saved(path)
    settings = resolve(cloud, _overrides(args), saved, detect)
    if not saved.get("admin_cidr") and not args.admin_cidr:
        print(
            f"admin CIDR (SSH allowed from): {settings.admin_cidr} (detected; --admin-cidr)",
            file=sys.stderr,
        )
    return settings, path


def preflight_main(args: argparse.Namespace, detect: Callable[[], str] = detect_public_ip) -> int:
    from duoctl import preflight

    try:
        settings, _ = load_settings(args, detect)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = preflight.run_checks(settings)
    print(preflight.render(results, as_json=args.json))
    return EXIT_OK if preflight.all_ok(results) else EXIT_FAILED


def deploy_main(
    args: argparse.Namespace,
    detect: Callable[[], str] = detect_public_ip,
    steps: list[Step] | None = None,
    progress_stream: Any = None,
) -> int:
    """Run (or resume) a deploy. `steps` replaces the default step list (used to aim it)."""
    root = repo_root()
    deploy_dir = Path(args.deploy_dir)
    settings: DeploySettings | None = None
    try:
        if args.cloud == "hosts":
            if not args.inventory:
                raise SettingsError(
                    "deploy hosts needs --inventory, for example --inventory inventory/hosts.yml "
                    "(copy inventory/hosts.example.yml)"
                )
            inventory = Path(args.inventory)
            if not inventory.is_file():
                raise SettingsError(f"inventory {inventory} does not exist")
            inputs: dict[str, Any] = {"inventory": str(inventory), "digest": file_digest(inventory)}
        else:
            settings, path = load_settings(args, detect)
            save(settings, path)
            inventory = Path(args.inventory or root / "inventory" / f"{args.cloud}.yml")
            inputs = settings.fingerprint()
        chosen = (
            steps
            if steps is not None
            else (
                hosts_steps(getattr(args, "activation_code_file", None))
                if settings is None
                else cloud_steps(settings)
            )
        )
        paths = DeployPaths(root=root, target_dir=deploy_dir / args.cloud, inventory=inventory)
        ctx = Context(args.cloud, paths, Progress(paths.log_file, progress_stream), settings)
        command = f"duoctl deploy {args.cloud}"
        if args.cloud == "hosts":
            command += f" --inventory {args.inventory}"
        pipeline = Pipeline(chosen, ctx, command=command)
        ok = pipeline.run(inputs, from_step=args.from_step)
        if ok and settings is not None:
            ctx.progress.note(
                f"The GPU VM bills by the hour: `duoctl destroy {args.cloud}` removes everything."
            )
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK if ok else EXIT_FAILED


def destroy_main(
    args: argparse.Namespace,
    detect: Callable[[], str] = detect_public_ip,
    confirm: Callable[[str], str] = input,
    workdir: Path | None = None,
    progress_stream: Any = None,
) -> int:
    """terraform destroy of a cloud deployment, after confirmation unless --yes."""
    from duoctl import terraform

    try:
        settings, _ = load_settings(args, detect)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    target_dir = Path(args.deploy_dir) / args.cloud
    prompt = (
        f"This destroys the {args.cloud} deployment {settings.prefix!r} in {settings.region}: "
        "the three VMs, their disks (GitLab's data, the models) and the network.\n"
        f"Type {args.cloud!r} to confirm: "
    )
    if not args.yes:
        try:
            answer = confirm(prompt)
        except EOFError:
            answer = ""
        if answer.strip() != args.cloud:
            print("Not confirmed: nothing destroyed (pass --yes to skip this question).")
            return EXIT_BAD_INPUT
    state = target_dir / "state.json"
    data = json.loads(state.read_text(encoding="utf-8")).get("data", {}) if state.exists() else {}
    domain = settings.domain or data.get("wildcard_domain") or PROVISIONAL_DOMAIN
    variables = terraform_variables(settings, domain, data.get("zone"))
    progress = Progress(target_dir / "deploy.log", progress_stream)
    progress.start(f"terraform destroy ({args.cloud}, {settings.region})")
    try:
        terraform.destroy(
            workdir or terraform.terraform_dir(args.cloud), variables, sink=progress.output
        )
    except terraform.TerraformError as exc:
        progress.stop()
        progress.note(f"error: terraform destroy failed: {exc}")
        progress.note(f"Re-run `duoctl destroy {args.cloud}`: destroying again is safe.")
        return EXIT_FAILED
    progress.stop()
    state.unlink(missing_ok=True)
    # The token and password belonged to the GitLab that is gone; a new deploy makes new ones.
    shutil.rmtree(target_dir / "secrets", ignore_errors=True)
    progress.note(
        f"Destroyed. Removed {state} and {target_dir / 'secrets'}; "
        f"{target_dir / 'settings.yml'} is kept for a redeploy."
    )
    return EXIT_OK


__all__ = ["CLOUDS", "cloud_steps", "deploy_main", "destroy_main", "hosts_steps", "preflight_main"]
