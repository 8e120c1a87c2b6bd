"""Evidence 3: one real code completion through GitLab's API, timed."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from duoctl.verify.report import HOP_GITLAB, HOP_MODEL, HOP_SEAT, HOP_TLS, Check

COMPLETIONS_PATH = "/api/v4/code_suggestions/completions"
COMPLETION_PROMPT = {
    "current_file": {
        "file_name": "fibonacci.py",
        "content_above_cursor": 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
        "content_below_cursor": "",
    },
    "intent": "completion",
    "stream": False,
}


def completion_check(
    session: requests.Session,
    gitlab_url: str,
    token: str,
    verify: bool | str = True,
    timeout: float = 180,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Check, int | None]:
    """One code completion through GitLab; the check and its latency in ms."""
    url = gitlab_url.rstrip("/") + COMPLETIONS_PATH
    name = "code completion through GitLab"
    started = clock()
    try:
        resp = session.post(
            url,
            json=COMPLETION_PROMPT,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )
    except requests.exceptions.SSLError as exc:
        return Check("completion", name, "fail", HOP_TLS, f"TLS error from {url}: {exc}"), None
    except requests.exceptions.Timeout:
        detail = f"no answer within {timeout:.0f} s (a cold model? raise the gateway timeout)"
        return Check("completion", name, "fail", "", detail), None
    except requests.exceptions.RequestException as exc:
        return Check("completion", name, "fail", HOP_GITLAB, f"cannot reach {url}: {exc}"), None
    latency = round((clock() - started) * 1000)
    body = resp.text.strip().replace("\n", " ")[:300]
    if resp.status_code in (401, 403):
        detail = (
            f"GitLab answered {resp.status_code} {body}: the token is invalid, its user has no "
            "GitLab Duo seat, or Code Completion is not mapped to a self-hosted model "
            "(seats: and features: in duo.yml, then duoctl configure)"
        )
        return Check("completion", name, "fail", HOP_SEAT, detail), None
    if resp.status_code == 404:
        detail = f"GitLab answered 404 {body}: code suggestions are not available on this instance"
        return Check("completion", name, "fail", HOP_GITLAB, detail), None
    if resp.status_code != 200:
        return Check(
            "completion", name, "fail", "", f"GitLab answered {resp.status_code} {body}"
        ), None
    try:
        text = resp.json()["choices"][0]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Check(
            "completion", name, "fail", HOP_MODEL, f"no choices in the answer: {body}"
        ), None
    if not str(text).strip():
        detail = f"the model returned an empty completion after {latency} ms"
        return Check("completion", name, "fail", HOP_MODEL, detail), latency
    shown = str(text).strip().splitlines()[0][:60]
    return Check("completion", name, "pass", "", f"{latency} ms, returned {shown!r}"), latency
