"""The one screen of `duoctl status`, and how ages read ("3 h 05 min ago")."""

from __future__ import annotations

from typing import Any

from duoctl.status.model import HostStatus, Monitoring, StatusReport

MARK = {"up": "up  ", "down": "DOWN", "unknown": "?   "}
MONITORING_LINES = 8  # targets down and alerts shown at most; the JSON report has them all


def format_age(seconds: float | None) -> str:
    """A past moment as `N s ago`, `N min ago`, `N h MM min ago` or `N d HH h ago`."""
    if seconds is None:
        return "age unknown"
    if seconds < 0:
        return "in the future (check the clocks)"
    s = int(seconds)
    if s < 60:
        return f"{s} s ago"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min ago"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h ago"


def format_usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 10 else f"${value:.3f}"


def _knee(knee: Any) -> str:
    """duoctl bench's knee ({path, level, latency_p95, requests_per_s, developers}), or any
    other mapping as key value pairs."""
    if isinstance(knee, dict) and "level" in knee:
        text = f"{knee['level']} concurrent requests"
        if knee.get("path"):
            text += f" ({knee['path']} path)"
        if isinstance(knee.get("latency_p95"), int | float):
            text += f", p95 {knee['latency_p95']:.2f} s"
        if isinstance(knee.get("requests_per_s"), int | float):
            text += f", {knee['requests_per_s']:.1f} req/s"
        if knee.get("developers") is not None:
            text += f", about {knee['developers']} developers"
        return text
    if isinstance(knee, dict):
        return ", ".join(f"{k} {v}" for k, v in knee.items())
    return "none (not reached, see the run)" if knee is None else str(knee)


def _host_lines(host: HostStatus) -> list[str]:
    lines = [f"  {MARK[host.state]}  {host.name:11s} {host.group} at {host.address}"]
    if host.state != "up":
        lines.append(f"          {host.reason}")
        return lines
    up = [s.name for s in host.services if s.state == "up"]
    for service in host.services:
        if service.state != "up":
            lines.append(f"        {MARK[service.state]}  {service.name}: {service.detail}")
    if up:
        shown = ", ".join(up[:6]) + (f" and {len(up) - 6} more" if len(up) > 6 else "")
        lines.append(f"        up    {shown}")
    return lines


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def monitoring_lines(m: Monitoring) -> list[str]:
    """GitLab's Prometheus: one summary line, then each target not up and each active alert."""
    if m.state == "unknown" and not m.targets and not m.alerts:
        return [f"Monitoring      unknown: {m.reason}"]
    up = sum(1 for t in m.targets if t.health == "up")
    firing = sum(1 for a in m.alerts if a.state == "firing")
    pending = len(m.alerts) - firing
    summary = f"{up}/{len(m.targets)} targets up" if m.targets else "no scrape target"
    summary += f"; {_plural(firing, 'alert')} firing" if firing else "; no alert firing"
    if pending:
        summary += f", {pending} pending"
    lines = [f"Monitoring      {summary}"]
    if m.state == "unknown":
        lines.append(f"        ?     {m.reason}")
    details = [
        f"        {MARK[t.health]}  {t.job} {t.instance}"
        + (f": {t.last_error}" if t.last_error else "")
        for t in m.targets
        if t.health != "up"
    ]
    for a in m.alerts:
        word = "FIRING" if a.state == "firing" else "pending"
        severity = f" ({a.severity})" if a.severity else ""
        what = a.summary or a.instance
        details.append(f"        {word}  {a.name}{severity}" + (f": {what}" if what else ""))
    if len(details) > MONITORING_LINES:
        more = len(details) - MONITORING_LINES + 1
        details = [*details[: MONITORING_LINES - 1], f"        and {more} more (--json)"]
    return lines + details


def render(report: StatusReport) -> str:
    r = report
    lines = [f"Deployment {r.name} ({r.target}, {r.serving}), checked in {r.seconds:.1f} s"]
    if r.ok:
        lines.append("Everything is up.")
    else:
        lines += ["Down:"] + [f"  - {item}" for item in r.down]
    v = r.versions
    digest = f" ({v.gateway_digest[:19]}…)" if v.gateway_digest else ""  # sha256: + 12
    lines += [
        "",
        f"GitLab          {v.gitlab or '?'}",
        f"Gateway image   {v.gateway_image or '?'}{digest}",
        f"Model server    {v.model_server or '?'}; models: {', '.join(v.models) or '?'}",
        "",
        "Hosts",
    ]
    for host in r.hosts:
        lines += _host_lines(host)
    if r.monitoring:
        lines += ["", *monitoring_lines(r.monitoring)]
    g = r.gitlab
    why = f": {g.reason}" if g.reason else ""
    lines += ["", f"GitLab holds    {MARK[g.state].strip()} {g.url or ''}{why}"]
    if g.state == "up":
        lines.append(f"  gateway URL   {g.gateway_url or 'not set'}")
        for m in g.models:
            lines.append(
                f"  model         {m.name}: {m.family}, {m.identifier}, {m.endpoint or '-'}"
            )
        if not g.models:
            lines.append("  model         none")
        by_target: dict[str, list[str]] = {}
        for f in g.features:
            by_target.setdefault(f.model or f.provider, []).append(f.feature)
        for target, features in by_target.items():
            lines.append(f"  features      {target}: {', '.join(features)}")
        if not by_target:
            lines.append("  features      none mapped")
        seats = f"{g.seats.assigned} of {g.seats.purchased} assigned" if g.seats else "no add-on"
        lines.append(f"  Duo seats     {seats}")
    lines.append("")
    if r.verify:
        lines.append(f"Last verify     {r.verify.status}, {r.verify.age or 'age unknown'}")
    else:
        lines.append("Last verify     never (duoctl verify, or the deploy's last step)")
    if r.bench:
        lines.append(f"Last bench      {r.bench.run}, {r.bench.age}; knee: {_knee(r.bench.knee)}")
    else:
        lines.append("Last bench      none (duoctl bench)")
    if r.gpu_vm:
        vm = r.gpu_vm
        why = " (stopped by schedule)" if vm.stopped_by_schedule else ""
        extra = f"; {vm.reason}" if vm.up == "unknown" else ""
        lines.append(f"GPU VM          {vm.state}{why} ({vm.instance or '?'}){extra}")
    if r.cost:
        c = r.cost
        if c.hourly_usd is not None and c.monthly_usd is not None:
            price = f"{format_usd(c.hourly_usd)}/h, {format_usd(c.monthly_usd)}/month"
            lines.append(f"Cost            {price} ({c.machine_type} on demand, GPU VM only)")
        else:
            lines.append(f"Cost            unknown ({c.note})")
    return "\n".join(lines)
