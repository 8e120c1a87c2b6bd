"""Benchmark: HTTP requests and mutations of `duoctl configure` on the example file.

Runs a first (fresh instance) and a second (no-op) run against the GitLab API double
and prints the counts. Goal: the no-op run sends at most 6 requests, all reads.
With `activate=True` the instance starts without a license and the file names an
activation code: the first run activates the subscription online, the second must still
meet the goal (the license is read in the same request as the version probe).
Run it with `.venv/bin/python -m tests.benchmarks.configure_requests`.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from duoctl.cli import main as duoctl

from tests.doubles.gitlab_api import ADMIN_TOKEN, gitlab_double
from tests.doubles.gitlab_api.instance import ACTIVATION_CODE

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "duo.yml"
NOOP_REQUEST_BUDGET = 6


@dataclass
class RunCount:
    label: str
    requests: int
    reads: int
    mutations: int


def measure(version: str = "18.9.0-ee", activate: bool = False) -> list[RunCount]:
    counts = []
    with gitlab_double(version) as double, tempfile.TemporaryDirectory() as tmp:
        config = yaml.safe_load(EXAMPLE.read_text())
        config["gitlab"]["url"] = double.url
        if activate:
            double.instance.remove_license()
            code = Path(tmp) / "activation_code"
            code.write_text(ACTIVATION_CODE)
            config["license"] = {"activation_code_file": str(code)}
        path = Path(tmp) / "duo.yml"
        path.write_text(yaml.safe_dump(config))
        token = Path(tmp) / "token"
        token.write_text(ADMIN_TOKEN)
        for label in ("first run", "second run"):
            double.reset_log()
            with contextlib.redirect_stdout(io.StringIO()):
                argv = ["configure", "--config", str(path), "--token-file", str(token)]
                code = duoctl([*argv, "--allow-http"])  # the double on loopback, plain HTTP
            if code != 0:
                raise RuntimeError(f"duoctl configure exited {code} on the {label}")
            counts.append(
                RunCount(label, double.requests, double.requests - double.writes, double.writes)
            )
    return counts


def report(counts: list[RunCount], version: str, activate: bool = False) -> str:
    start = ", unlicensed + activation code" if activate else ""
    lines = [f"duoctl configure on examples/duo.yml, GitLab {version}{start} (API double)"]
    lines += [
        f"  {c.label:10s}: {c.requests:2d} HTTP requests ({c.reads} reads, {c.mutations} mutations)"
        for c in counts
    ]
    noop = counts[-1]
    met = noop.requests <= NOOP_REQUEST_BUDGET and noop.mutations == 0
    lines.append(
        f"  goal (no-op run <= {NOOP_REQUEST_BUDGET} requests, all reads): "
        f"{'met' if met else 'NOT met'}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    for version in ("19.4.1-ee", "18.9.0-ee", "17.9.3-ee"):
        print(report(measure(version), version))
    print(report(measure(activate=True), "18.9.0-ee", activate=True))
