"""Waiting for the hosts: SSH on every host (through the jump host), DNS for Let's Encrypt."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from duoctl import ssh
from duoctl.deploy.inventory_file import read_inventory, remember_inventory
from duoctl.pipeline import Context, StepFailed


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


def probe_ssh(target: SshTarget, key_file: str | None, timeout: float) -> None:
    """Log in (through the jump host when there is one) and wait for cloud-init to finish."""

    def connect(host: str, port: int, user: str, sock: Any = None) -> Any:
        return ssh.connect(host, port, user, key_file, timeout, sock)

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
        inventory = read_inventory(ctx.paths.inventory)
        remember_inventory(ctx, inventory)
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
