"""`duoctl verify` against local targets: the GitLab API double for the completion, the SSH
server double for the rake check, and the infra suite itself run on this machine through an
inventory whose three hosts use Ansible's local connection (all traffic stays on loopback)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from duoctl import verify
from duoctl.cli import main

from tests.doubles.gitlab_api import ADMIN_TOKEN, USER_TOKEN, GitLabDouble, gitlab_double
from tests.doubles.ssh_hosts import inventory_for, ssh_hosts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "duo.yml"
GATEWAY_STANDIN = ROOT / "tests" / "doubles" / "ai_gateway_image" / "server.py"


def write_inventory(path: Path, gitlab_url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"duo_cloud": "hosts", "gitlab_url": gitlab_url},
                    "children": {"gitlab": {"hosts": {"gitlab-vm": {"ansible_host": "127.0.0.1"}}}},
                }
            }
        )
    )
    return path


@pytest.fixture
def configured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[GitLabDouble]:
    """A GitLab double configured by `duoctl configure` with the example duo.yml."""
    with gitlab_double() as double:
        config = yaml.safe_load(EXAMPLE.read_text())
        config["gitlab"]["url"] = double.url
        (tmp_path / "duo.yml").write_text(yaml.safe_dump(config))
        (tmp_path / "token").write_text(ADMIN_TOKEN + "\n")
        args = ["configure", "--config", str(tmp_path / "duo.yml")]
        # The double answers plain HTTP on loopback: a lab GitLab without TLS.
        assert main([*args, "--token-file", str(tmp_path / "token"), "--allow-http"]) == 0
        capsys.readouterr()
        yield double


def run_verify(tmp_path: Path, double: GitLabDouble, *extra: str) -> tuple[int, str]:
    inventory = write_inventory(tmp_path / "inventory.yml", double.url)
    args = ["verify", "--inventory", str(inventory), "--skip-suite", "--skip-rake", "--allow-http"]
    args += extra
    return main(args), ""


def test_completion_through_a_configured_gitlab_passes_and_prints_latency(
    tmp_path: Path, configured: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_verify(tmp_path, configured, "--token-file", str(tmp_path / "token"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "✔ code completion through GitLab:" in out and " ms, returned 'if n < 2:'" in out
    assert "Verified: GitLab → gateway → model answered a code completion in" in out
    assert ADMIN_TOKEN not in out
    calls = [e for e in configured.log if e.path.endswith("/code_suggestions/completions")]
    assert len(calls) == 1 and calls[0].method == "POST"


def test_token_found_in_the_deploy_secrets_next_to_the_inventory(
    tmp_path: Path, configured: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    # A deployment folder holds its inventory and its secrets/ side by side.
    folder = tmp_path / ".deploy" / "staging"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "gitlab_admin_token").write_text(ADMIN_TOKEN)
    inventory = write_inventory(folder / "inventory.yml", configured.url)
    # Another deployment's token is not taken for this one's.
    (tmp_path / ".deploy" / "other" / "secrets").mkdir(parents=True)
    (tmp_path / ".deploy" / "other" / "secrets" / "gitlab_admin_token").write_text(USER_TOKEN)
    args = ["verify", "--inventory", str(inventory), "--skip-suite", "--skip-rake", "--json"]
    code = main([*args, "--allow-http"])
    report = yaml.safe_load(capsys.readouterr().out)
    assert code == 0 and report["ok"] is True
    assert isinstance(report["completion_latency_ms"], int)


def test_user_without_a_seat_is_the_seat_hop(
    tmp_path: Path, configured: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "user-token").write_text(USER_TOKEN)
    code, _ = run_verify(tmp_path, configured, "--token-file", str(tmp_path / "user-token"))
    out = capsys.readouterr().out
    assert code == 1
    assert "GitLab answered 401" in out and "no GitLab Duo seat" in out
    assert "Broken hop: seat/license" in out


def test_unknown_token_is_refused(
    tmp_path: Path, configured: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad-token").write_text("glpat-not-a-token")
    assert run_verify(tmp_path, configured, "--token-file", str(tmp_path / "bad-token"))[0] == 1
    assert "Broken hop: seat/license" in capsys.readouterr().out


def test_gitlab_without_duo_configuration_refuses_the_completion(tmp_path: Path) -> None:
    with gitlab_double() as double:
        double.instance.seats.add(1)  # root has a seat, but nothing is configured
        session = requests.Session()
        check, _ = verify.completion_check(session, double.url, ADMIN_TOKEN)
    assert (check.status, check.hop) == ("fail", verify.HOP_SEAT)


def test_gateway_error_behind_gitlab_names_the_path(
    tmp_path: Path, configured: GitLabDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.fail_next = [502]
    code, _ = run_verify(tmp_path, configured, "--token-file", str(tmp_path / "token"))
    out = capsys.readouterr().out
    assert code == 1
    assert "GitLab answered 502" in out
    assert "Broken hop: GitLab → gateway → model (only the completion failed" in out


def test_the_request_is_one_gitlab_accepts() -> None:
    with gitlab_double() as double:
        answer = requests.post(
            double.url + verify.COMPLETIONS_PATH,
            json={"current_file": {"content_above_cursor": "x"}},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 400
        assert answer.json() == {"error": "current_file[file_name] is missing"}
        assert requests.post(double.url + verify.COMPLETIONS_PATH, timeout=10).status_code == 401
        # verify's own request passes GitLab's parameter validation (401: no seat, not 400)
        check, _ = verify.completion_check(requests.Session(), double.url, ADMIN_TOKEN)
        assert "401" in check.detail


def test_private_ca_gitlab_needs_its_ca(tmp_path: Path) -> None:
    with gitlab_double(tls_dir=tmp_path) as double:
        double.instance.seats.add(1)
        session = requests.Session()
        check, _ = verify.completion_check(session, double.url, ADMIN_TOKEN)
        assert (check.status, check.hop) == ("fail", verify.HOP_TLS)
        check, _ = verify.completion_check(
            session, double.url, ADMIN_TOKEN, verify=str(tmp_path / "ca.crt")
        )
        assert check.hop != verify.HOP_TLS and "401" in check.detail


def test_rake_check_runs_over_ssh_with_the_inventory_user_and_key(tmp_path: Path) -> None:
    with ssh_hosts(["gitlab-vm", "gateway-vm", "ollama-vm"]) as hosts:
        path = tmp_path / "inventory.yml"
        path.write_text(yaml.safe_dump(inventory_for(hosts)))
        deployment = verify.load_deployment(path)
        known_hosts = tmp_path / "known_hosts"
        runner = verify.ssh_runner_for(deployment, str(hosts.key_file), known_hosts)
        assert (runner.host, runner.port, runner.user, runner.known_hosts) == (
            "127.0.0.1",
            hosts["gitlab-vm"].port,
            "ubuntu",
            known_hosts,
        )
        checks = verify.rake_checks(runner, "root", timeout=30)
        assert hosts["gitlab-vm"].execs == [
            "sudo -n gitlab-rake 'gitlab:duo:verify_self_hosted_setup[root]'"
        ]
        # The host key met on first login is pinned in the deployment's known_hosts.
        key = hosts["gitlab-vm"].host_key
        entry = f"[127.0.0.1]:{hosts['gitlab-vm'].port} {key.get_name()} {key.get_base64()}"
        assert known_hosts.read_text().splitlines() == [entry]
    # The SSH stand-in runs nothing and prints nothing: that is not a pass.
    assert [c.status for c in checks] == ["fail"]
    assert checks[0].name == "rake printed no check"


def test_rake_check_reports_an_unreachable_gitlab_host(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runner = verify.SshRunner(
        "127.0.0.1", "ubuntu", tmp_path / "known_hosts", port=port, connect_timeout=5
    )
    (check,) = verify.rake_checks(runner, "root", timeout=10)
    assert (check.status, check.hop, check.name) == (
        "fail",
        verify.HOP_GITLAB,
        "SSH to the GitLab host",
    )
    assert "Connection refused" in check.detail or "Unable to connect" in check.detail


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def local_gateway() -> Iterator[tuple[int, int]]:
    """The gateway stand-in on this machine: HTTP on loopback, its TCP port on every interface."""
    http_port, grpc_port = free_port(), free_port()
    env = dict(
        os.environ,
        AIGW_FASTAPI__API_HOST="127.0.0.1",
        AIGW_FASTAPI__API_PORT=str(http_port),
        PORT=str(grpc_port),
    )
    proc = subprocess.Popen([sys.executable, str(GATEWAY_STANDIN)], env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield http_port, grpc_port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def local_inventory(path: Path, gateway: tuple[int, int], gitlab_url: str) -> Path:
    local: dict[str, Any] = {"ansible_connection": "local", "private_ip": "127.0.0.1"}
    http_port, grpc_port = gateway
    data = {
        "all": {
            "vars": {
                "duo_cloud": "hosts",
                "gitlab_domain": "localhost",
                "gitlab_url": gitlab_url,
                "gateway_url": f"http://127.0.0.1:{http_port}",
                "model_endpoint": f"http://127.0.0.1:{free_port()}/v1",
            },
            "children": {
                "gitlab": {"hosts": {"gitlab-vm": local}},
                "ai_gateway": {
                    "hosts": {
                        "gateway-vm": {
                            **local,
                            "ai_gateway_http_port": http_port,
                            "ai_gateway_grpc_port": grpc_port,
                        }
                    }
                },
                "ollama": {"hosts": {"ollama-vm": {**local, "ollama_port": free_port()}}},
            },
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_infra_suite_names_each_broken_check(
    tmp_path: Path, local_gateway: tuple[int, int]
) -> None:
    """The real suite, run the way duoctl verify runs it, on hosts that are not deployed."""
    inventory = local_inventory(tmp_path / "inventory.yml", local_gateway, "https://localhost")
    suite = verify.PytestSuite(ROOT / "tests" / "infra", sudo=False, timeout=300)
    checks = verify.suite_checks(suite, inventory)
    by_name = {(c.host, c.name): c for c in checks}
    _, grpc_port = local_gateway

    def get(host: str, name: str) -> verify.Check:
        return by_name[(host, name)]

    assert get("gateway-vm", "The gateway's /monitoring/healthz answers 200").status == "pass"
    assert (
        get("gateway-vm", "The gateway's / refuses an unauthenticated request with 401").status
        == "pass"
    )
    private = "The gateway's ports 5052 and 50052 listen on the private address only"
    assert get("gateway-vm", f"{private} (http)").status == "pass"
    grpc = get("gateway-vm", f"{private} (grpc)")
    assert (grpc.status, grpc.hop) == ("fail", verify.HOP_GATEWAY)
    assert grpc.detail == (
        f"gateway port {grpc_port} is bound to 0.0.0.0, every interface "
        "(must be the private address 127.0.0.1)"
    )
    service = get("gitlab-vm", "GitLab's service gitlab-runsvdir is running and enabled")
    assert (service.status, service.detail) == (
        "fail",
        "GitLab service gitlab-runsvdir is not running",
    )
    ollama = get("ollama-vm", "Ollama's service is running and enabled")
    assert (ollama.status, ollama.hop) == ("fail", verify.HOP_MODEL)
    reach = get(
        "gitlab-vm", "GitLab reaches the gateway's /monitoring/healthz (what the rake check probes)"
    )
    assert reach.status == "pass"
    gpu = get(
        "ollama-vm", "Ollama runs the model on the GPU (ollama ps: 100% GPU) when the host has one"
    )
    assert gpu.status == "skip" and "no NVIDIA GPU" in gpu.detail
    report = verify.Report(checks)
    assert report.broken_hops()[0] == verify.HOP_GITLAB
    cert = get(
        "gitlab-vm", "GitLab's certificate is valid for its domain and trusted as its TLS mode says"
    )
    assert (cert.hop, cert.detail) == (
        verify.HOP_GITLAB,
        "GitLab does not answer TLS on port 443 "
        "(ConnectionRefusedError: [Errno 111] Connection refused)",
    )
    assert verify.HOP_GATEWAY in report.broken_hops() and verify.HOP_MODEL in report.broken_hops()


@pytest.mark.slow
def test_verify_command_with_the_suite_only(
    tmp_path: Path, local_gateway: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """`duoctl verify --skip-rake --skip-completion`: the host checks alone, as JSON."""
    inventory = local_inventory(tmp_path / "inventory.yml", local_gateway, "https://localhost")
    args = ["verify", "--inventory", str(inventory), "--skip-rake", "--skip-completion"]
    code = main([*args, "--no-sudo", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["ok"] is False
    assert {c["source"] for c in report["checks"]} == {"testinfra"}
    assert report["broken_hops"][0] == verify.HOP_GITLAB
    details = [c["detail"] for c in report["checks"] if c["status"] == "fail"]
    assert "GitLab service gitlab-runsvdir is not running" in details


def test_rake_check_pins_in_the_known_hosts_beside_the_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / ".deploy" / "lab"
    folder.mkdir(parents=True)
    with ssh_hosts(["gitlab-vm", "gateway-vm", "ollama-vm"]) as hosts:
        inventory = folder / "inventory.yml"
        inventory.write_text(yaml.safe_dump(inventory_for(hosts)))
        args = ["verify", "--inventory", str(inventory), "--skip-suite", "--skip-completion"]
        args += ["--ssh-key", str(hosts.key_file), "--json"]
        assert main(args) == 1  # the stand-in prints no rake check
        key = hosts["gitlab-vm"].host_key
        name = f"[127.0.0.1]:{hosts['gitlab-vm'].port}"
        assert (folder / "known_hosts").read_text().splitlines() == [
            f"{name} {key.get_name()} {key.get_base64()}"
        ]
        capsys.readouterr()
        # A host whose key differs from the pinned one is refused before any command runs.
        forged = tmp_path / "forged_known_hosts"
        forged.write_text(
            f"{name} ssh-ed25519 "
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
        )
        executed = len(hosts["gitlab-vm"].execs)
        assert main([*args, "--known-hosts", str(forged)]) == 1
        report = json.loads(capsys.readouterr().out)
        (check,) = report["checks"]
        assert check["name"] == "SSH to the GitLab host"
        assert "differs from the key pinned" in check["detail"]
        assert len(hosts["gitlab-vm"].execs) == executed


@pytest.mark.parametrize("user", ["root'; id; '", "$(id)", "Root"])
def test_rake_user_that_is_not_a_user_name_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], user: str
) -> None:
    inventory = write_inventory(tmp_path / "inventory.yml", "https://gitlab.example.com")
    args = ["verify", "--inventory", str(inventory), "--skip-suite", "--skip-completion"]
    assert main([*args, "--user", user]) == 2
    err = capsys.readouterr().err
    assert "is not a user name" in err
    assert not (tmp_path / "known_hosts").exists()
