"""Checks the ai_gateway role's result inside its test container (Docker runs inside it).

The gateway there is the stand-in image from tests/doubles/ai_gateway_image, loaded through
the role's air-gapped archive path.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

CONTAINER = "ai-gateway"
IMAGE = "localhost/ai-gateway-standin:self-hosted-v19.4.1-ee"
UNAUTHENTICATED = {"error": "No authorization header presented"}


@pytest.fixture(scope="module")
def private_ip(host: Any) -> str:
    route = host.check_output("ip -4 route get 192.0.2.1")
    return str(route.split(" src ")[1].split()[0])


@pytest.fixture(scope="module")
def inspect(host: Any) -> dict[str, Any]:
    data = json.loads(host.check_output(f"docker inspect {CONTAINER}"))
    return dict(data[0])


def _get(host: Any, url: str, *extra: str) -> tuple[int, str]:
    out = host.check_output(" ".join(["curl -s -w '\\n%{http_code}'", *extra, url]))
    body, _, code = out.rpartition("\n")
    return int(code), body


def test_docker_engine_enabled_with_daemon_config(host: Any) -> None:
    assert host.service("docker").is_running
    assert host.service("docker").is_enabled
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["bip"] == "192.168.223.1/24"


def test_container_runs_derived_image_restart_always(inspect: dict[str, Any]) -> None:
    assert inspect["State"]["Running"]
    assert inspect["Config"]["Image"] == IMAGE
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "always"


def test_ports_published_on_private_address_only(
    host: Any, inspect: dict[str, Any], private_ip: str
) -> None:
    bindings = inspect["HostConfig"]["PortBindings"]
    assert bindings == {
        "5052/tcp": [{"HostIp": private_ip, "HostPort": "5052"}],
        "50052/tcp": [{"HostIp": private_ip, "HostPort": "50052"}],
        "8082/tcp": [{"HostIp": private_ip, "HostPort": "8082"}],  # metrics
    }
    listening = host.check_output("ss -Hltn")
    for port in (5052, 50052, 8082):
        assert f"{private_ip}:{port} " in listening
        assert f"0.0.0.0:{port} " not in listening
        assert f"*:{port} " not in listening


def test_gateway_answers_like_the_real_one(host: Any, private_ip: str) -> None:
    code, body = _get(host, f"http://{private_ip}:5052/")
    assert (code, json.loads(body)) == (401, UNAUTHENTICATED)
    code, body = _get(host, f"http://{private_ip}:5052/monitoring/healthz")
    assert (code, json.loads(body)) == (200, {})
    assert host.addr(private_ip).port(50052).is_reachable


def test_env_file_is_private_and_complete(host: Any) -> None:
    env_file = host.file("/etc/ai-gateway/ai-gateway.env")
    assert (env_file.user, env_file.group, env_file.mode) == ("root", "root", 0o600)
    assert host.file("/etc/ai-gateway").mode == 0o700
    lines = set(env_file.content_string.splitlines())
    for line in (
        "AIGW_GITLAB_URL=https://gitlab.example.test",
        "AIGW_GITLAB_API_URL=https://gitlab.example.test/api/v4/",
        "AIGW_AUTH__BYPASS_EXTERNAL=false",
        "LITELLM_LOCAL_MODEL_COST_MAP=True",
        "AIGW_CUSTOMER_PORTAL_URL=https://customers.gitlab.com",
        "DUO_WORKFLOW_AUTH__OIDC_CUSTOMER_PORTAL_URL=https://customers.gitlab.com",
        "REQUESTS_CA_BUNDLE=/etc/ai-gateway/ca-bundle.pem",
        "SSL_CERT_FILE=/etc/ai-gateway/ca-bundle.pem",
        "AIGW_LOGGING__LEVEL=INFO",
    ):
        assert line in lines
    assert "SIGNING_KEY" not in env_file.content_string


BEDROCK_ENDPOINT = (
    "https://vpce-0123456789abcdef0-abcdefgh.bedrock-runtime.us-east-1.vpce.amazonaws.com"
)
AWS_SECRET = "test-only-secret-not-real-0123456789"  # noqa: S105 (test-only value)
AWS_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_REGION_NAME": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_BEDROCK_RUNTIME_ENDPOINT": BEDROCK_ENDPOINT,
    "AWS_ACCESS_KEY_ID": "AKIATESTONLY0000000",
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
}


def test_bedrock_env_from_the_variables_and_the_credentials_file(host: Any) -> None:
    """Region, endpoint and the keys of ai_gateway_aws_credentials_file, each once, in the
    0600 env file; nothing else AWS_ (the file's comment line is not copied)."""
    env_file = host.file("/etc/ai-gateway/ai-gateway.env")
    assert (env_file.user, env_file.group, env_file.mode) == ("root", "root", 0o600)
    aws_lines = [line for line in env_file.content_string.splitlines() if line.startswith("AWS_")]
    assert sorted(aws_lines) == sorted(f"{k}={v}" for k, v in AWS_ENV.items())
    assert "test-only values" not in env_file.content_string


def test_bedrock_credentials_reach_the_container_but_no_command_line(
    host: Any, inspect: dict[str, Any]
) -> None:
    env = dict(item.split("=", 1) for item in inspect["Config"]["Env"])
    assert {k: env.get(k) for k in AWS_ENV} == AWS_ENV
    command = [
        inspect["Path"],
        *inspect["Args"],
        *(inspect["Config"]["Cmd"] or []),
        *(inspect["Config"]["Entrypoint"] or []),
    ]
    assert not any(AWS_SECRET in part for part in command)
    assert AWS_SECRET not in host.check_output("ps -eo args")


def test_signing_key_generated_private_and_passed_to_container(
    host: Any, inspect: dict[str, Any]
) -> None:
    key = host.file("/etc/ai-gateway/duo_workflow_jwt.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    bits = host.check_output(
        "python3 -c 'import sys; from cryptography.hazmat.primitives.serialization import "
        'load_pem_private_key as l; print(l(open(sys.argv[1], "rb").read(), None).key_size)\' '
        "/etc/ai-gateway/duo_workflow_jwt.key"
    )
    assert bits == "2048"
    env = dict(item.split("=", 1) for item in inspect["Config"]["Env"])
    assert env["DUO_WORKFLOW_SELF_SIGNED_JWT__SIGNING_KEY"].strip() == key.content_string.strip()
    assert env["AIGW_GITLAB_URL"] == "https://gitlab.example.test"
    assert env["AIGW_AUTH__BYPASS_EXTERNAL"] == "false"


def test_container_resolves_gitlab_and_trusts_its_ca(host: Any, inspect: dict[str, Any]) -> None:
    """The host trusts the private CA and its whole bundle is what the container sees."""
    assert "gitlab.example.test:192.0.2.10" in inspect["HostConfig"]["ExtraHosts"]
    bundle = host.check_output(
        f"docker exec {CONTAINER} python3 -c "
        "'print(open(\"/etc/ai-gateway/ca-bundle.pem\").read())'"
    )
    test_ca = host.file("/usr/local/share/ca-certificates/gitlab-private-ca.crt").content_string
    assert test_ca.strip() in bundle
    assert bundle.count("BEGIN CERTIFICATE") > 10  # the system CAs are kept


def test_tls_proxy_forwards_to_gateway(host: Any, private_ip: str) -> None:
    code, body = _get(host, f"https://{private_ip}:443/", "-k")
    assert (code, json.loads(body)) == (401, UNAUTHENTICATED)
    key = host.file("/etc/nginx/ssl/ai-gateway.key")
    assert key.mode == 0o600
    assert not host.socket("tcp://0.0.0.0:80").is_listening


def test_bypass_switch_changes_the_answer_like_the_real_gateway(host: Any) -> None:
    """The stand-in honours AIGW_AUTH__BYPASS_EXTERNAL as the real image does (404 at /)."""
    name = "ai-gateway-bypass-check"
    host.run(f"docker rm -f {name}")
    host.check_output(
        f"docker run -d --name {name} -e AIGW_AUTH__BYPASS_EXTERNAL=true "
        f"-p 127.0.0.1:15052:5052 {IMAGE}"
    )
    try:
        host.run(
            "for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:15052/ && break; "
            "sleep 0.2; done"
        )
        code, body = _get(host, "http://127.0.0.1:15052/")
        assert (code, json.loads(body)) == (404, {"detail": "Not Found"})
    finally:
        host.run(f"docker rm -f {name}")
