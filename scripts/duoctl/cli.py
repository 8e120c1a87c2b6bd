"""Command-line entry point: argument parsing and exit codes only.

Every subcommand is a thin call into a module of this package. Exit codes:
0 success, 1 the operation failed, 2 bad input (nothing was changed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from duoctl import __version__
from duoctl.deploy.commands import SETTINGS_KEYS, DeploymentOptions
from duoctl.errors import EXIT_INTERRUPTED, DuoctlError
from duoctl.folder import DeploymentFolder


def _add_configure(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "configure",
        allow_abbrev=False,
        help="Configure GitLab Duo Self-Hosted through the GitLab API from a YAML file",
    )
    p.add_argument("--config", required=True, help="duo.yml describing the desired state")
    p.add_argument("--gitlab-url", help="overrides gitlab.url in the file and $GITLAB_URL")
    p.add_argument(
        "--token-file",
        help="file holding an admin personal access token (default: $GITLAB_TOKEN)",
    )
    p.add_argument("--ca-file", help="CA bundle for a GitLab with a private CA")
    p.add_argument(
        "--activation-code-file",
        metavar="FILE",
        help="file holding a subscription activation code, used only while GitLab has no "
        "GitLab Duo Enterprise add-on (overrides license.activation_code_file in the file "
        "and $GITLAB_ACTIVATION_CODE)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_allow_http(p)
    p.set_defaults(func=_run_configure)


def _add_gitlab_access(p: argparse.ArgumentParser, allow_http: bool = True) -> None:
    """How a command reaches the deployment's GitLab API: another URL (a proxy), its CA."""
    p.add_argument(
        "--gitlab-url", help="reach GitLab's API at this URL (default: the deployment's)"
    )
    p.add_argument("--ca-file", help="CA bundle for a GitLab with a private CA")
    if allow_http:
        _add_allow_http(p)


def _add_allow_http(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-http",
        action="store_true",
        help="send the admin token to a GitLab URL without TLS (http://; labs only)",
    )


def _run_configure(args: argparse.Namespace) -> int:
    from duoctl import configure

    options = configure.ConfigureOptions(
        config=Path(args.config),
        gitlab_url=args.gitlab_url,
        token_file=Path(args.token_file) if args.token_file else None,
        ca_file=args.ca_file,
        activation_code_file=args.activation_code_file,
        dry_run=args.dry_run,
        json=args.json,
        allow_http=args.allow_http,
    )
    return configure.run(options)


def _add_deploy_inputs(p: argparse.ArgumentParser) -> None:
    """The options preflight, deploy and destroy share (saved in .deploy/<cloud>/settings.yml)."""
    p.add_argument("--region", help="AWS region or Google Cloud region (e.g. us-east-1)")
    p.add_argument("--zone", help="availability zone / zone (default: the first that fits)")
    p.add_argument("--project", help="Google Cloud project ID")
    p.add_argument("--ssh-key", dest="ssh_public_key_file", help="SSH public key file")
    p.add_argument("--admin-cidr", help="network allowed to SSH (default: your public IP/32)")
    p.add_argument("--domain", help="GitLab host name (default: gitlab.<public ip>.sslip.io)")
    p.add_argument(
        "--managed-zone", help="Route 53 hosted zone ID / Cloud DNS zone holding --domain"
    )
    p.add_argument(
        "--no-letsencrypt",
        dest="letsencrypt",
        action="store_const",
        const=False,
        help="do not request a Let's Encrypt certificate (and do not wait for DNS)",
    )
    p.add_argument(
        "--license-file",
        help="GitLab license (.gitlab-license) that includes GitLab Duo Enterprise",
    )
    p.add_argument("--prefix", help="name prefix of every cloud resource (default: duo)")
    p.add_argument("--gateway-port", type=int, help="AI gateway HTTP port (default 5052)")
    p.add_argument("--gateway-grpc-port", type=int, help="agent platform gRPC port (50052)")
    p.add_argument(
        "--serving",
        choices=["ollama", "vllm"],
        help="what serves the model: ollama (default, the guide's evaluation setup) or vllm",
    )
    p.add_argument(
        "--model-preset",
        help="vllm: a model on a GPU it fits (duoctl.serving; default: the 24 GB preset)",
    )
    p.add_argument(
        "--model-port", type=int, help="model server port (default: Ollama 11434, vLLM 8000)"
    )
    p.add_argument(
        "--duo-models",
        metavar="FILE",
        help="YAML file of models on Amazon Bedrock (aws) or Azure OpenAI, and which GitLab "
        "feature uses which model (kept in the deployment's settings; README: several models)",
    )
    p.add_argument(
        "--state-backend",
        choices=["local", "s3", "gcs"],
        help="where Terraform keeps the state: local (the deployment folder, default), "
        "s3 (with a lock file) or gcs, for teams",
    )
    p.add_argument("--state-bucket", help="the S3 or GCS bucket of the Terraform state")
    p.add_argument("--state-key", help="object key of the state (default duo/<name>/...)")
    p.add_argument("--state-region", help="region of the S3 state bucket (default: --region)")
    p.add_argument(
        "--gpu-schedule",
        metavar="START;STOP;TZ",
        help="the GPU VM's office hours: cron start;stop;IANA time zone, e.g. "
        "'0 8 * * 1-5;0 19 * * 1-5;Europe/Berlin' (off: always on; README: GPU schedule)",
    )
    p.add_argument(
        "--backup-retention-days",
        type=int,
        help="days the backup bucket keeps GitLab's backups (default 30)",
    )
    _add_name(p)


def _add_name(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name",
        help="deployment name (default: the cloud); its folder is <deploy-dir>/<name>/",
    )
    p.add_argument(
        "--deploy-dir",
        default=".deploy",
        help="folder of the deployments: settings, state, logs, secrets (default .deploy)",
    )


def _add_preflight(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "preflight",
        allow_abbrev=False,
        help="Check credentials, quotas, zones, SSH key and network inputs",
    )
    p.add_argument("cloud", choices=["aws", "gcp"])
    _add_deploy_inputs(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run_preflight)


def deployment_options(args: argparse.Namespace) -> DeploymentOptions:
    """The options of preflight, deploy and destroy (and inventory's deployment)."""
    inventory = getattr(args, "inventory", None)
    return DeploymentOptions(
        cloud=args.cloud,
        name=args.name,
        deploy_dir=Path(args.deploy_dir),
        inputs={key: getattr(args, key, None) for key in SETTINGS_KEYS},
        inventory=Path(inventory) if inventory else None,
        from_step=getattr(args, "from_step", None),
        json=getattr(args, "json", False),
        yes=getattr(args, "yes", False),
    )


def deployment_options_for(argv: Sequence[str]) -> DeploymentOptions:
    """`preflight|deploy|destroy ...` as the command would see it (for callers and tests)."""
    return deployment_options(build_parser().parse_args(argv))


def _run_preflight(args: argparse.Namespace) -> int:
    from duoctl import deploy

    return deploy.preflight_main(deployment_options(args))


def _add_deploy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deploy",
        allow_abbrev=False,
        help="Deploy end to end (preflight, terraform, inventory, ansible, verify), resumable",
    )
    p.add_argument("cloud", choices=["aws", "gcp", "hosts"])
    _add_deploy_inputs(p)
    p.add_argument(
        "--activation-code-file",
        metavar="FILE",
        help="file holding the activation code of a subscription with GitLab Duo Enterprise; "
        "the duo step activates it online, which provisions the add-on at once",
    )
    p.add_argument(
        "--inventory",
        help="deploy hosts: the inventory of your own three hosts (a cloud deployment "
        "writes its own: <deploy-dir>/<name>/inventory.yml)",
    )
    p.add_argument("--from", dest="from_step", metavar="STEP", help="restart from this step")
    p.set_defaults(func=_run_deploy)


def _run_deploy(args: argparse.Namespace) -> int:
    from duoctl import deploy

    return deploy.deploy_main(deployment_options(args))


def _add_destroy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "destroy", allow_abbrev=False, help="Destroy a cloud deployment (terraform destroy)"
    )
    p.add_argument("cloud", choices=["aws", "gcp"])
    _add_deploy_inputs(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=_run_destroy)


def _run_destroy(args: argparse.Namespace) -> int:
    from duoctl import deploy

    return deploy.destroy_main(deployment_options(args))


def _add_inventory(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "inventory",
        allow_abbrev=False,
        help="Write the Ansible inventory from the Terraform outputs of terraform/<cloud>",
    )
    p.add_argument("cloud", choices=["aws", "gcp"])
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="saved `terraform output -json` instead of the deployment's Terraform state",
    )
    p.add_argument("--ssh-key", help="private key to name in the deployment's ssh_config")
    _add_name(p)
    p.set_defaults(func=_run_inventory)


def _run_inventory(args: argparse.Namespace) -> int:
    from duoctl import inventory
    from duoctl.deploy.commands import folder_of

    options = inventory.InventoryOptions(
        cloud=args.cloud,
        folder=folder_of(deployment_options(args)),
        from_json=Path(args.from_json) if args.from_json else None,
        ssh_key=args.ssh_key,
    )
    return inventory.run(options)


def _add_verify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        allow_abbrev=False,
        help="Prove a deployment answers: host checks, GitLab's rake check, one real completion",
    )
    p.add_argument(
        "--inventory",
        help="the deployment's inventory (default: <deploy-dir>/<name>/inventory.yml with "
        "--name, else .deploy/aws or .deploy/gcp)",
    )
    p.add_argument(
        "--token-file",
        help="automation token (default: secrets/gitlab_admin_token beside the inventory)",
    )
    _add_gitlab_access(p)
    p.add_argument("--ssh-key", help="private key for SSH (default: ssh-agent and ~/.ssh)")
    p.add_argument("--user", default="root", help="user whose Duo access rake checks (root)")
    p.add_argument(
        "--known-hosts",
        help="the deployment's known_hosts (default: known_hosts beside the inventory)",
    )
    p.add_argument(
        "--timeout", type=float, default=180, help="seconds to wait for the completion (180)"
    )
    p.add_argument(
        "--no-sudo", action="store_true", help="run the host checks without sudo (root logins)"
    )
    p.add_argument("--skip-suite", action="store_true", help="do not run the host checks")
    p.add_argument("--skip-rake", action="store_true", help="do not run the rake check")
    p.add_argument(
        "--skip-completion", action="store_true", help="do not request a code completion"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_name(p)
    p.set_defaults(func=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from duoctl import verify

    inventory = Path(args.inventory) if args.inventory else None
    token_file = Path(args.token_file) if args.token_file else None
    known_hosts = Path(args.known_hosts) if args.known_hosts else None
    if args.name:  # a named deployment: its folder's inventory, token and host keys
        folder = DeploymentFolder.of(args.deploy_dir, args.name, Path.cwd())
        inventory = inventory or folder.inventory
        if token_file is None and folder.admin_token_file.is_file():
            token_file = folder.admin_token_file
        known_hosts = known_hosts or folder.known_hosts
    options = verify.VerifyOptions(
        inventory=inventory,
        token_file=token_file,
        ca_file=args.ca_file,
        gitlab_url=args.gitlab_url,
        ssh_key=args.ssh_key,
        known_hosts=known_hosts,
        user=args.user,
        timeout=args.timeout,
        sudo=not args.no_sudo,
        suite=not args.skip_suite,
        rake=not args.skip_rake,
        completion=not args.skip_completion,
        json=args.json,
        allow_http=args.allow_http,
    )
    return verify.run(options)


def _add_upgrade(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "upgrade",
        allow_abbrev=False,
        help="Upgrade a deployment's GitLab through the required upgrade stops, resumable",
    )
    p.add_argument(
        "--gitlab-version", required=True, metavar="X.Y.Z", help="the GitLab version to reach"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument(
        "--upgrade-stops",
        metavar="FILE",
        help="JSON list of required upgrade stops replacing the one duoctl carries",
    )
    p.add_argument(
        "--all-stops",
        action="store_true",
        help="also stop at the conditional stops (large instances, see the plan)",
    )
    p.add_argument("--from", dest="from_step", metavar="STEP", help="restart from this step")
    _add_gitlab_access(p)
    p.add_argument(
        "--registry-url",
        help="API of the gateway image's registry, for each hop's tag (default: the role's)",
    )
    _add_name(p)
    p.set_defaults(func=_run_upgrade)


def _run_upgrade(args: argparse.Namespace) -> int:
    from duoctl import upgrade

    options = upgrade.UpgradeOptions(
        target=args.gitlab_version,
        name=args.name,
        deploy_dir=Path(args.deploy_dir),
        dry_run=args.dry_run,
        stops_file=Path(args.upgrade_stops) if args.upgrade_stops else None,
        all_stops=args.all_stops,
        from_step=args.from_step,
        gitlab_url=args.gitlab_url,
        ca_file=args.ca_file,
        allow_http=args.allow_http,
        registry_url=args.registry_url,
    )
    return upgrade.main(options)


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        allow_abbrev=False,
        help="One screen on a deployment: versions, hosts and services up or down, what GitLab "
        "holds, the last verify and bench, the GPU VM's state and cost (reads only)",
    )
    p.add_argument(
        "--inventory", help="own hosts: their inventory (default: the deployment's inventory.yml)"
    )
    p.add_argument(
        "--token-file",
        help="automation token (default: the deployment's secrets/gitlab_admin_token)",
    )
    _add_gitlab_access(p)
    p.add_argument("--ssh-key", help="private key for SSH (default: the deployment's, or agent)")
    p.add_argument(
        "--timeout", type=float, default=6.0, help="seconds each check may take (default 6)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (schema 1)")
    _add_name(p)
    p.set_defaults(func=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    from duoctl import status

    return status.run(
        status.StatusOptions(
            name=args.name,
            deploy_dir=Path(args.deploy_dir),
            inventory=Path(args.inventory) if args.inventory else None,
            token_file=Path(args.token_file) if args.token_file else None,
            ca_file=args.ca_file,
            gitlab_url=args.gitlab_url,
            ssh_key=args.ssh_key,
            timeout=args.timeout,
            json=args.json,
            allow_http=args.allow_http,
        )
    )


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        allow_abbrev=False,
        help="Measure a deployment's capacity: latency and throughput over a concurrency ramp",
    )
    p.add_argument(
        "--path",
        choices=["both", "gitlab", "model"],
        default="both",
        help="gitlab: code completions through GitLab (the user's path); model: the model "
        "server alone, through an SSH tunnel; both (default)",
    )
    p.add_argument("--levels", default="1,2,4,8,16,32", help="concurrency levels (1,2,...,32)")
    p.add_argument(
        "--requests", type=int, help="requests per level (default: 8 per level, at least 40)"
    )
    p.add_argument("--level-seconds", type=float, default=60, help="time limit per level (60)")
    p.add_argument("--timeout", type=float, default=30, help="seconds per request (30)")
    p.add_argument(
        "--target-p95", type=float, default=1.5, help="latency target of the knee, seconds (1.5)"
    )
    p.add_argument("--model", help="the model's name on its server (default: the first listed)")
    p.add_argument("--ssh-key", help="private key for the tunnel (default: the deployment's)")
    _add_gitlab_access(p, allow_http=False)  # the bench never sends the token in the clear
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two saved runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_name(p)
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from duoctl import bench
    from duoctl.bench.command import parse_levels
    from duoctl.bench.load import Ramp

    options = bench.BenchOptions(
        name=args.name,
        deploy_dir=Path(args.deploy_dir),
        paths=("gitlab", "model") if args.path == "both" else (args.path,),
        ramp=Ramp(parse_levels(args.levels), args.requests, args.level_seconds, args.timeout),
        target_p95=args.target_p95,
        model=args.model,
        ssh_key=args.ssh_key,
        json=args.json,
        compare=tuple(args.compare) if args.compare else None,
        gitlab_url=args.gitlab_url,
        ca_file=args.ca_file,
    )
    return bench.run(options)


def _add_backup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backup",
        allow_abbrev=False,
        help="Back up GitLab now (archive and encrypted configuration, to the deployment's "
        "bucket), over the deployment's SSH",
    )
    p.add_argument("--inventory", help="own hosts: their inventory (default: the deployment's)")
    p.add_argument("--ssh-key", help="private key for SSH (default: the deployment's, or agent)")
    p.add_argument("--json", action="store_true", help="the result as JSON (progress on stderr)")
    _add_name(p)
    p.set_defaults(func=_run_backup)


def _run_backup(args: argparse.Namespace) -> int:
    from duoctl import backup

    return backup.run(
        backup.BackupOptions(
            name=args.name,
            deploy_dir=Path(args.deploy_dir),
            inventory=Path(args.inventory) if args.inventory else None,
            ssh_key=args.ssh_key,
            json=args.json,
        )
    )


def _add_gpu(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "gpu",
        allow_abbrev=False,
        help="Stop or start the deployment's GPU VM now (the cloud's API; idempotent)",
    )
    p.add_argument("action", choices=["stop", "start"])
    p.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait for the VM (default 900)"
    )
    _add_name(p)
    p.set_defaults(func=_run_gpu)


def _run_gpu(args: argparse.Namespace) -> int:
    from duoctl import gpu

    return gpu.run(
        gpu.GpuOptions(
            action=args.action,
            name=args.name,
            deploy_dir=Path(args.deploy_dir),
            timeout=args.timeout,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    # No abbreviated options: `--token` must never be taken for `--token-file`.
    parser = argparse.ArgumentParser(prog="duoctl", description=__doc__, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"duoctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_configure(sub)
    _add_inventory(sub)
    _add_preflight(sub)
    _add_deploy(sub)
    _add_destroy(sub)
    _add_verify(sub)
    _add_upgrade(sub)
    _add_status(sub)
    _add_bench(sub)
    _add_backup(sub)
    _add_gpu(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn every failure the user can act on into its message and exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Name the unknown options only: their values may be secrets (`--token glpat-...`).
        options = list(dict.fromkeys(w.split("=", 1)[0] for w in unknown if w.startswith("-")))
        parser.error(
            "unrecognized arguments: "
            + (" ".join(options) if options else f"{len(unknown)} unexpected value(s)")
            + " (values not shown)"
        )
    try:
        code: int = args.func(args)
    except DuoctlError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
