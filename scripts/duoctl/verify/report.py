"""The verification report: one Check per piece of evidence, the verdict naming the broken
hop, and the rendering."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

HOP_TLS = "TLS certificate"
HOP_GITLAB = "GitLab"
HOP_GATEWAY = "GitLab → gateway"
HOP_MODEL = "gateway → model"
HOP_SEAT = "seat/license"
# Along the request's path: GitLab itself, its certificate, the user's seat, then the hops.
HOP_ORDER = (HOP_GITLAB, HOP_TLS, HOP_SEAT, HOP_GATEWAY, HOP_MODEL)

Status = Literal["pass", "fail", "warn", "skip"]
RAKE_TASK = "gitlab:duo:verify_self_hosted_setup"
SYMBOL = {"pass": "✔", "fail": "✗", "warn": "⚠", "skip": "-"}


@dataclass
class Check:
    source: str  # testinfra | rake | completion
    name: str
    status: Status
    hop: str
    detail: str = ""
    host: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    completion_latency_ms: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # time each source took

    @property
    def ok(self) -> bool:
        return not self.failures and any(c.status == "pass" for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def broken_hops(self) -> list[str]:
        hops = {c.hop for c in self.failures if c.hop in HOP_ORDER}
        return [h for h in HOP_ORDER if h in hops]

    def verdict(self) -> str:
        if self.ok:
            latency = self.completion_latency_ms
            if latency is None:
                sources = sorted({c.source for c in self.checks})
                return f"Verified: every check passed ({', '.join(sources)}; no completion asked)."
            return f"Verified: GitLab → gateway → model answered a code completion in {latency} ms."
        hops = self.broken_hops()
        if not hops:
            if not self.failures:
                return "Nothing was verified: no check ran."
            return (
                "Broken hop: GitLab → gateway → model (only the completion failed; every other "
                "check passed: read the gateway container's log, `sudo docker logs ai-gateway`, "
                "for the model call)"
            )
        first = hops[0]
        evidence = [c for c in self.failures if c.hop == first]
        lines = [f"Broken hop: {first}" + (f" (also: {', '.join(hops[1:])})" if hops[1:] else "")]
        lines += [f"  evidence: {describe(c)}" for c in evidence[:5]]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "broken_hops": self.broken_hops(),
            "completion_latency_ms": self.completion_latency_ms,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "checks": [asdict(c) for c in self.checks],
        }


def describe(check: Check) -> str:
    where = f"[{check.host}] " if check.host else ""
    return f"{where}{check.name}" + (f": {check.detail}" if check.detail else "")


def render(report: Report) -> str:
    lines: list[str] = []
    titles = {
        "testinfra": "Hosts (testinfra suite tests/infra)",
        "rake": f"GitLab's own check (gitlab-rake {RAKE_TASK})",
        "completion": "End to end (one code completion through GitLab's API)",
    }
    for source, title in titles.items():
        checks = [c for c in report.checks if c.source == source]
        if not checks:
            continue
        counts = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "fail", "warn")}
        summary = ", ".join(
            f"{n} {s}ed" if s != "warn" else f"{n} warnings" for s, n in counts.items() if n
        )
        took = f" in {report.seconds[source]:.0f} s" if source in report.seconds else ""
        lines.append(f"{title}: {summary}{took}")
        lines += [f"  {SYMBOL[c.status]} {describe(c)}" for c in checks]
    lines.append(report.verdict())
    return "\n".join(lines)
