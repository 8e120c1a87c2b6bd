"""A broken host makes `duoctl verify` fail with a message naming the check.

Breaks the converged hosts the way deployments break: Ollama rebound to every interface
(a systemd drop-in setting OLLAMA_HOST=0.0.0.0:11434) and GitLab's service stopped. Then runs
`duoctl verify --skip-rake --skip-completion` (the infra suite tests/infra) on this scenario's
inventory and checks the failures it names and the hop it blames. Finally repairs both hosts
and waits until they listen where they should again, so the checks that run after this one
(the infra suite itself among them) see the converged state.

Ollama's scenario only (site): in site-vllm, which shares these tests, it is skipped; the hop
that verify blames does not depend on the serving.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testinfra.utils.ansible_runner import AnsibleRunner

ROOT = Path(__file__).resolve().parents[4]
DROP_IN = "/etc/systemd/system/ollama.service.d/zz-broken-binding.conf"
PORT = 11434


def first_host(runner: AnsibleRunner, group: str) -> tuple[Any, dict[str, Any]]:
    name = runner.get_hosts(group)[0]
    return runner.get_host(name), runner.get_variables(name)


def wait_listening(host: Any, address: str, port: int, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while f"{address}:{port} " not in host.check_output("ss -Hltn") + " ":
        if time.monotonic() > deadline:
            pytest.fail(f"{address}:{port} is not listening after {seconds:.0f} s")
        time.sleep(1)


def repair(gitlab: Any, ollama: Any, ollama_ip: str) -> None:
    ollama.run(f"rm -f {DROP_IN}")
    ollama.run("systemctl daemon-reload")
    ollama.run("systemctl restart ollama")
    gitlab.run("systemctl start gitlab-runsvdir")
    wait_listening(ollama, ollama_ip, PORT)
    wait_listening(gitlab, "0.0.0.0", 443)  # noqa: S104 - GitLab is public on 443


@pytest.fixture(scope="module")
def broken(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    inventory = str(request.config.option.ansible_inventory)
    runner = AnsibleRunner(inventory)
    if not runner.get_hosts("ollama"):
        pytest.skip("no ollama host: the broken-host check runs in the site scenario")
    gitlab, _ = first_host(runner, "gitlab")
    ollama, ollama_vars = first_host(runner, "ollama")
    ollama_ip = str(ollama_vars["private_ip"])
    try:
        ollama.check_output(
            f"printf '[Service]\\nEnvironment=\"OLLAMA_HOST=0.0.0.0:{PORT}\"\\n' > {DROP_IN}"
        )
        ollama.check_output("systemctl daemon-reload && systemctl restart ollama")
        wait_listening(ollama, "0.0.0.0", PORT)  # noqa: S104 - the breakage under test
        gitlab.check_output("systemctl stop gitlab-runsvdir")
        yield inventory, ollama_ip
    finally:
        repair(gitlab, ollama, ollama_ip)


def test_verify_names_the_broken_checks(broken: tuple[str, str]) -> None:
    inventory, ollama_ip = broken
    args = ["verify", "--inventory", inventory, "--skip-rake", "--skip-completion", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "duoctl.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    failed = {c["detail"] for c in report["checks"] if c["status"] == "fail"}
    assert (
        f"Ollama port {PORT} is bound to 0.0.0.0, every interface "
        f"(must be the private address {ollama_ip})"
    ) in failed, failed
    assert "GitLab service gitlab-runsvdir is not running" in failed, failed
    assert report["broken_hops"][0] == "GitLab"
    assert "gateway → model" in report["broken_hops"]
