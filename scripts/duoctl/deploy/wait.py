"""Waiting for the hosts: SSH on every host (through the jump host), DNS for Let's Encrypt."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duoctl import ssh
from duoctl.deploy.state import deployment_of
from duoctl.deployment import Deployment, Host
from duoctl.errors import DuoctlError
from duoctl.hostkeys import HostKey, KnownHosts, aws_host_keys, gcp_host_keys, known_hosts_name
from duoctl.pipeline import Context, StepFailed

HostKeySource = Callable[[Deployment, Host], list[HostKey]]
Probe = Callable[[Host, "Host | None", "str | None", float, Path], None]


def probe_ssh(
    host: Host, jump: Host | None, key_file: str | None, timeout: float, known_hosts: Path
) -> None:
    """Log in (through the jump host when there is one) and wait for cloud-init to finish."""
    target = (host.address, host.ssh_port, host.ssh_user)
    via = (jump.address, jump.ssh_port, jump.ssh_user) if jump else None
    clients = ssh.connect_through(target, via, key_file, timeout, known_hosts)
    try:
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
    """Wait until every host accepts SSH (private ones through the jump host), host keys
    pinned in the deployment's known_hosts: from the cloud where it reports them (`host_keys`),
    else on first login. While the cloud has not reported a VM's keys yet (first boot), the
    step waits for them up to `cloud_keys_grace` seconds, then pins on first login."""

    key_file: str | None = None  # private key; None: ssh-agent and ~/.ssh defaults
    host_keys: HostKeySource | None = None
    timeout: float = 600.0
    interval: float = 10.0
    connect_timeout: float = 10.0
    cloud_keys_grace: float = 300.0
    probe: Probe = probe_ssh
    name: str = "wait_ssh"

    def _cloud_keys(
        self, deployment: Deployment, host: Host, known: KnownHosts, ctx: Context
    ) -> str | None:
        """Pin what the cloud reports for `host`; the reason to wait, or None to go on."""
        if self.host_keys is None or not host.instance:
            return None
        try:
            keys = self.host_keys(deployment, host)
        except Exception as exc:  # the API not answering yet is "not yet"
            keys, reason = [], f"cannot read its host keys from the cloud ({exc})"
        else:
            reason = "the cloud reports no host key for it yet"
        if keys:
            entry = known_hosts_name(host.address, host.ssh_port)
            if known.pin(entry, keys):
                ctx.progress.output(f"pinned {len(keys)} host keys of {host.name} from the cloud")
            return None
        return reason

    def run(self, ctx: Context) -> None:
        deployment = deployment_of(ctx)
        folder = ctx.paths
        known = KnownHosts(folder.known_hosts)
        pending = {h.name: h for h in deployment.hosts}
        cloud_pinned: set[str] = set()
        errors: dict[str, str] = {}
        started = time.monotonic()
        deadline = started + self.timeout
        while pending:
            for name, host in list(pending.items()):
                if name not in cloud_pinned:
                    reason = self._cloud_keys(deployment, host, known, ctx)
                    if reason and time.monotonic() - started < self.cloud_keys_grace:
                        errors[name] = reason
                        continue
                    if reason:
                        ctx.progress.output(f"{name}: {reason}; pinning the key of the first login")
                    cloud_pinned.add(name)
                jump = deployment.jump_host(host)
                try:
                    self.probe(host, jump, self.key_file, self.connect_timeout, folder.known_hosts)
                except DuoctlError as exc:  # a changed host key: stop, do not retry
                    raise StepFailed(str(exc)) from None
                except Exception as exc:  # any other SSH error means "not yet"
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    continue
                via = f" via {jump.name}" if jump else ""
                ctx.progress.output(f"ssh ok: {name} ({host.address}{via})")
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
        deployment = deployment_of(ctx)
        domain, ip = deployment.domain, deployment.gitlab.public_ip or deployment.gitlab.address
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


def cloud_host_keys(cloud: str, region: str, project: str | None) -> HostKeySource:
    """Where the cloud reports its VMs' host keys: EC2 console output, or GCE guest attributes.
    The API client is made on first use."""
    clients: dict[str, Any] = {}

    def aws(deployment: Deployment, host: Host) -> list[HostKey]:
        import boto3  # type: ignore[import-untyped]

        if "ec2" not in clients:
            clients["ec2"] = boto3.client("ec2", region_name=region)
        return aws_host_keys(clients["ec2"], str(host.instance))

    def gcp(deployment: Deployment, host: Host) -> list[HostKey]:
        from google.cloud import compute_v1

        if "gce" not in clients:
            clients["gce"] = compute_v1.InstancesClient()
        zone = deployment.zone or ""
        return gcp_host_keys(clients["gce"], str(project), zone, str(host.instance))

    return aws if cloud == "aws" else gcp
