"""The monitoring check, over the GitLab host's Remote (remote.py): GitLab's bundled Prometheus
(Omnibus keeps it on localhost:9090) asked for its scrape targets and its alerts, through its
HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/). Python on the host
fetches both (Ansible needs python3 there; no curl, nothing secret on the command line).
Never raises: Prometheus not answering is monitoring `unknown` with the reason."""

from __future__ import annotations

import json
import shlex
from typing import Any

from duoctl.status.model import Monitoring, MonitoringAlert, MonitoringTarget, State
from duoctl.status.remote import Remote

PROMETHEUS_URL = "http://localhost:9090"  # Omnibus' prometheus['listen_address']
TARGETS_PATH = "/api/v1/targets?state=active"
ALERTS_PATH = "/api/v1/alerts"

# Run on the GitLab host as `python3 -c FETCH URL TIMEOUT`: both requests at once (no proxy:
# an http_proxy of the host must not take localhost), one JSON line out:
# {"targets": {"status": 200, "body": "..."} or {"error": "..."}, "alerts": ...}.
FETCH = """
import json, sys, threading, urllib.error, urllib.request
base, timeout = sys.argv[1], float(sys.argv[2])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
out = {}
def get(key, path):
    try:
        with opener.open(base + path, timeout=timeout) as answer:
            body = answer.read(1 << 20).decode("utf-8", "replace")
            out[key] = {"status": answer.status, "body": body}
    except urllib.error.HTTPError as error:
        out[key] = {"status": error.code, "body": error.read(4096).decode("utf-8", "replace")}
    except urllib.error.URLError as error:
        reason = error.reason
        out[key] = {"error": "%s: %s" % (type(reason).__name__, reason)}
    except Exception as error:
        out[key] = {"error": "%s: %s" % (type(error).__name__, error)}
paths = {"targets": sys.argv[3], "alerts": sys.argv[4]}
threads = [threading.Thread(target=get, args=item, daemon=True) for item in paths.items()]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout + 1)
for key in paths:
    out.setdefault(key, {"error": "no answer within %.0f s" % timeout})
print(json.dumps(out))
"""


def fetch_command(url: str, timeout: float) -> str:
    args = [FETCH, url, f"{timeout:g}", TARGETS_PATH, ALERTS_PATH]
    return "python3 -c " + " ".join(shlex.quote(a) for a in args)


def request_timeout(timeout: float) -> float:
    """Each request's timeout on the host: the answer must be back before the SSH channel's
    own timeout (`timeout`) gives up on it."""
    return round(max(1.0, timeout - 1.5), 1)


def _api_data(answer: Any) -> dict[str, Any]:
    """The `data` of one answer, or ValueError saying why there is none."""
    if not isinstance(answer, dict) or not ("error" in answer or "status" in answer):
        raise ValueError("no answer")
    if "error" in answer:
        raise ValueError(str(answer["error"]))
    status, body = answer.get("status"), str(answer.get("body") or "")
    if status != 200:
        tail = " ".join(body.split())[:120]
        raise ValueError(f"HTTP {status}" + (f": {tail}" if tail else ""))
    try:
        envelope = json.loads(body)
    except ValueError:
        raise ValueError("the answer is not JSON") from None
    if not isinstance(envelope, dict) or envelope.get("status") != "success":
        error = envelope.get("error") if isinstance(envelope, dict) else None
        raise ValueError(f"Prometheus says {error or 'not success'}")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise ValueError("the answer holds no data")
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_targets(data: dict[str, Any]) -> list[MonitoringTarget]:
    """data.activeTargets[] of GET /api/v1/targets: labels.job, labels.instance (scrapeUrl when
    a target has no instance label), health up/down/unknown, lastError."""
    targets = []
    for item in data.get("activeTargets") or []:
        if not isinstance(item, dict):
            continue
        labels = _mapping(item.get("labels"))
        health = item.get("health")
        state: State = health if health in ("up", "down") else "unknown"
        targets.append(
            MonitoringTarget(
                job=_text(labels.get("job")) or _text(item.get("scrapePool")) or "?",
                instance=_text(labels.get("instance")) or _text(item.get("scrapeUrl")) or "?",
                health=state,
                last_error=_text(item.get("lastError"))[:300],
            )
        )
    return sorted(targets, key=lambda t: (t.job, t.instance))


def parse_alerts(data: dict[str, Any]) -> list[MonitoringAlert]:
    """data.alerts[] of GET /api/v1/alerts: labels.alertname, labels.instance,
    labels.severity, annotations.summary, state pending/firing, activeAt."""
    alerts = []
    for item in data.get("alerts") or []:
        if not isinstance(item, dict) or item.get("state") not in ("pending", "firing"):
            continue  # /api/v1/alerts lists the active ones only; an inactive one is none
        labels, notes = _mapping(item.get("labels")), _mapping(item.get("annotations"))
        alerts.append(
            MonitoringAlert(
                name=_text(labels.get("alertname")) or "?",
                instance=_text(labels.get("instance")),
                severity=_text(labels.get("severity")),
                state=item["state"],
                summary=_text(notes.get("summary"))[:300],
                active_at=_text(item.get("activeAt")) or None,
            )
        )
    order = {"firing": 0, "pending": 1}
    return sorted(alerts, key=lambda a: (order[a.state], a.name, a.instance))


def monitoring_of(answers: Any, url: str = PROMETHEUS_URL) -> Monitoring:
    """The two answers, as the fetch script prints them, read into Monitoring."""
    reasons: dict[str, str] = {}
    targets: list[MonitoringTarget] = []
    alerts: list[MonitoringAlert] = []
    answers = answers if isinstance(answers, dict) else {}
    try:
        targets = parse_targets(_api_data(answers.get("targets")))
    except ValueError as exc:
        reasons["targets"] = str(exc)
    try:
        alerts = parse_alerts(_api_data(answers.get("alerts")))
    except ValueError as exc:
        reasons["alerts"] = str(exc)
    if reasons:
        whys = set(reasons.values())
        if len(reasons) == 2 and len(whys) == 1:  # both the same: refused, timed out...
            why = whys.pop()
        else:
            why = "; ".join(f"{what}: {text}" for what, text in reasons.items())
        reason = f"Prometheus ({url} on the GitLab host): {why}"
        return Monitoring(state="unknown", reason=reason[:400], targets=targets, alerts=alerts)
    bad = any(t.health == "down" for t in targets) or any(a.state == "firing" for a in alerts)
    return Monitoring(state="down" if bad else "up", targets=targets, alerts=alerts)


def monitoring_view(remote: Remote, timeout: float, url: str | None = None) -> Monitoring:
    """Ask GitLab's Prometheus from the GitLab host; never raises."""
    try:
        url = url or PROMETHEUS_URL
        result = remote.run(fetch_command(url, request_timeout(timeout)))
        if result.exit_code != 0 or not result.stdout.strip():
            lines = (result.stderr or result.stdout).strip().splitlines()
            why = lines[-1][:200] if lines else f"exit {result.exit_code}"
            return Monitoring(state="unknown", reason=f"cannot ask Prometheus: {why}")
        return monitoring_of(json.loads(result.stdout.strip().splitlines()[-1]), url)
    except Exception as exc:  # the SSH channel's timeout, a damaged answer...
        reason = f"cannot ask Prometheus: {type(exc).__name__}: {exc}"
        return Monitoring(state="unknown", reason=reason.splitlines()[0][:300])


def down_lines(monitoring: Monitoring | None) -> list[str]:
    """The report's `down` lines: each target down, each alert firing (not pending)."""
    if monitoring is None:
        return []
    lines = [
        f"monitoring: {t.job} target {t.instance} is down"
        + (f": {t.last_error}" if t.last_error else "")
        for t in monitoring.targets
        if t.health == "down"
    ]
    for alert in monitoring.alerts:
        if alert.state == "firing":
            severity = f" ({alert.severity})" if alert.severity else ""
            what = alert.summary or alert.instance
            lines.append(
                f"monitoring: alert {alert.name} firing{severity}" + (f": {what}" if what else "")
            )
    return lines
