"""`duoctl status`: gather every check at once (threads, short timeouts), print one screen or
the JSON report; exit 0 when nothing is down, 1 when something is, 2 on bad input."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from duoctl.deployment import Deployment, Host
from duoctl.errors import EXIT_FAILED, EXIT_OK, DuoctlError
from duoctl.status import cloud, cost, inputs, monitoring, services
from duoctl.status.gitlab import gitlab_view
from duoctl.status.model import (
    Cost,
    GitLabView,
    GpuVm,
    HostStatus,
    LastBench,
    LastVerify,
    Monitoring,
    StatusReport,
    Versions,
)
from duoctl.status.options import StatusOptions
from duoctl.status.remote import SshRemote
from duoctl.status.render import format_age, render

T = TypeVar("T")


def run_all(tasks: dict[str, Callable[[], T]], deadline: float) -> dict[str, T | None]:
    """Run the tasks at once; a task not done within `deadline` seconds gives None (its
    thread is a daemon: it never holds the command up)."""
    results: dict[str, T | None] = dict.fromkeys(tasks)

    def call(key: str, task: Callable[[], T]) -> None:
        results[key] = task()

    threads = [
        threading.Thread(target=call, args=(k, t), daemon=True, name=f"status-{k}")
        for k, t in tasks.items()
    ]
    for thread in threads:
        thread.start()
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return dict(results)


def check_host(
    deployment: Deployment,
    host: Host,
    versions: Versions,
    key_file: str | None,
    known_hosts: Path,
    timeout: float,
    vllm_key: str | None,
    found_monitoring: list[Monitoring] | None = None,
) -> HostStatus:
    """The host's checks over one SSH login; on the GitLab host, also GitLab's Prometheus
    (appended to `found_monitoring`)."""

    def status(**values: Any) -> HostStatus:
        return HostStatus(name=host.name, group=host.group, address=host.address, **values)

    try:
        remote = SshRemote.login(deployment, host, key_file, known_hosts, timeout)
    except Exception as exc:  # unreachable, refused, a changed host key: the host is down
        reason = f"SSH: {type(exc).__name__}: {exc}".splitlines()[0][:300]
        return status(state="down", reason=reason)
    try:
        if host.group == "gitlab":
            found = services.gitlab_services(remote, versions)
            if found_monitoring is not None:
                found_monitoring.append(monitoring.monitoring_view(remote, timeout))
        elif host.group == "ai_gateway":
            found = services.gateway_services(remote, deployment, versions)
        else:
            found = services.model_services(remote, deployment, versions, vllm_key)
    finally:
        remote.close()
    return status(state="up", services=found)


def _age(moment: datetime | None, now: datetime) -> tuple[float | None, str | None]:
    if moment is None:
        return None, None
    seconds = (now - moment).total_seconds()
    return round(seconds, 1), format_age(seconds)


def last_verify(state: dict[str, Any], state_file: Path, now: datetime) -> LastVerify | None:
    step = (state.get("steps") or {}).get("verify")
    if not isinstance(step, dict) or "status" not in step:
        return None
    finished = step.get("finished_at")
    try:
        moment = datetime.fromisoformat(finished) if finished else None
    except (TypeError, ValueError):
        moment = None
    if moment is None and state_file.is_file():  # a failed run records no time: the file's
        moment = datetime.fromtimestamp(state_file.stat().st_mtime, UTC)
    seconds, age = _age(moment, now)
    return LastVerify(
        status=str(step["status"]), finished_at=finished, age_seconds=seconds, age=age
    )


def last_bench(found: tuple[str, datetime, Any] | None, now: datetime) -> LastBench | None:
    if found is None:
        return None
    name, when, knee = found
    seconds, age = _age(when if when.tzinfo else when.replace(tzinfo=UTC), now)
    return LastBench(run=name, age_seconds=seconds, age=age, knee=knee)


def down_list(report: StatusReport) -> list[str]:
    scheduled = bool(report.gpu_vm and report.gpu_vm.stopped_by_schedule)
    down = []
    for host in report.hosts:
        if scheduled and host.group in ("ollama", "vllm"):
            continue
        if host.state == "down":
            down.append(f"{host.name}: {host.reason}")
        down += [f"{host.name}: {s.name}: {s.detail}" for s in host.services if s.state == "down"]
    if report.gitlab.state == "down":
        down.append(f"GitLab API: {report.gitlab.reason}")
    if report.gpu_vm and report.gpu_vm.up == "down" and not scheduled:
        down.append(f"GPU VM: {report.gpu_vm.reason}")
    return down + monitoring.down_lines(report.monitoring)


def monitoring_of(hosts: list[HostStatus], found: list[Monitoring], late: str) -> Monitoring | None:
    """What the GitLab host's check found of Prometheus, or why nothing: None without a
    GitLab host."""
    gitlab_host = next((h for h in hosts if h.group == "gitlab"), None)
    if gitlab_host is None:
        return None
    if found:
        return found[0]
    if gitlab_host.state == "down":
        reason = f"not asked: the GitLab host ({gitlab_host.name}) does not answer over SSH"
        return Monitoring(state="unknown", reason=reason)
    return Monitoring(state="unknown", reason=f"Prometheus: {late}")


def gitlab_url_of(options: StatusOptions, deployment: Deployment) -> str:
    url = options.gitlab_url or deployment.gitlab_url
    if not url.startswith("https://") and not options.allow_http:
        raise DuoctlError(
            f"{url} is not an https:// URL: the token would cross the network in clear",
            "use GitLab's https:// URL, or pass --allow-http for a lab GitLab without TLS",
        )
    return url


def collect(
    options: StatusOptions,
    found: inputs.Inputs,
    cloud_client: Callable[[], Any] | None = None,
) -> StatusReport:
    """Every check at once; the report. Bad input raises DuoctlError before any check."""
    started = time.monotonic()
    folder, deployment, settings = found.folder, found.deployment, found.settings
    url = gitlab_url_of(options, deployment)
    token = inputs.token_of(options, folder)
    ca_file = options.ca_file or (str(folder.ca_file) if folder.ca_file.is_file() else None)
    key_file = inputs.ssh_key_of(options, settings)
    vllm_key = inputs.vllm_key_of(folder)
    versions = Versions()
    found_monitoring: list[Monitoring] = []
    t = options.timeout

    def host_task(host: Host) -> Callable[[], HostStatus]:
        return lambda: check_host(
            deployment, host, versions, key_file, folder.known_hosts, t, vllm_key, found_monitoring
        )

    tasks: dict[str, Callable[[], Any]] = {h.name: host_task(h) for h in deployment.hosts}
    tasks["gitlab api"] = lambda: gitlab_view(url, token, ca_file, t)
    if deployment.target != "hosts":

        def vm() -> GpuVm:
            model = deployment.model
            return cloud.gpu_vm_view(
                settings, deployment.target, model.instance, deployment.zone, t, cloud_client
            )

        tasks["gpu vm"] = vm
    # SSH: the jump host's login, then the host's, each within the timeout; then a few quick
    # commands. Whatever has not answered by then is shown as not answering.
    deadline = 2 * t + 2
    results = run_all(tasks, deadline)
    late = f"no answer within {deadline:.0f} s"
    hosts = [
        results[h.name]
        or HostStatus(name=h.name, group=h.group, address=h.address, state="down", reason=late)
        for h in deployment.hosts
    ]
    monitoring_view = monitoring_of(hosts, found_monitoring, late)
    gitlab = results["gitlab api"] or GitLabView(state="down", url=url, reason=late)
    if gitlab.version:
        versions.gitlab = gitlab.version
    gpu_vm: GpuVm | None = None
    if "gpu vm" in tasks:
        gpu_vm = results["gpu vm"] or GpuVm(state="unknown", up="unknown", reason=late)
    cost_view: Cost | None = None
    if settings is not None:
        try:
            cost_view = cost.cost_of(settings.cloud, cost.gpu_machine_type(settings))
        except DuoctlError as exc:
            cost_view = Cost(note=str(exc))
    now = datetime.now(UTC)
    report = StatusReport(
        name=folder.name,
        target=deployment.target,
        serving=deployment.serving,
        checked_at=now.isoformat(timespec="seconds"),
        seconds=round(time.monotonic() - started, 2),
        ok=True,
        versions=versions,
        hosts=hosts,
        gitlab=gitlab,
        verify=last_verify(found.state, folder.state_file, now),
        bench=last_bench(inputs.newest_bench(folder), now),
        gpu_vm=gpu_vm,
        cost=cost_view,
        monitoring=monitoring_view,
    )
    report.down = down_list(report)
    report.ok = not report.down
    return report


def run(options: StatusOptions, cloud_client: Callable[[], Any] | None = None) -> int:
    """`duoctl status`; DuoctlError (exit 2) on bad input, before any check runs."""
    if options.timeout <= 0:
        raise DuoctlError(f"--timeout {options.timeout} is not positive", "pass e.g. --timeout 6")
    report = collect(options, inputs.load(options), cloud_client)
    if options.json:
        options.out(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        options.out(render(report))
    return EXIT_OK if report.ok else EXIT_FAILED
