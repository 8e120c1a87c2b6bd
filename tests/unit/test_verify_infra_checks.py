"""The judging helpers of the infra suite (tests/infra/checks.py), without hosts."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.infra import checks, conftest

ANY4 = checks.ANY_ADDRESSES[1]

SS = """LISTEN 0      4096      10.0.2.10:5052       0.0.0.0:*
LISTEN 0      4096        0.0.0.0:22         0.0.0.0:*
LISTEN 0      4096           [::]:11434         [::]:*
LISTEN 0      4096              *:8080             *:*
LISTEN 0      4096      10.0.2.10:50052      0.0.0.0:*
LISTEN 0      4096   [fd00::10%eth0]:9000       [::]:*
"""


def test_listening_addresses_per_port() -> None:
    assert checks.listening_addresses(SS, 5052) == ["10.0.2.10"]
    assert checks.listening_addresses(SS, 11434) == ["::"]
    assert checks.listening_addresses(SS, 8080) == ["*"]
    assert checks.listening_addresses(SS, 9000) == ["fd00::10"]
    assert checks.listening_addresses(SS, 1234) == []


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        (["10.0.2.10"], ""),
        ([], "gateway port 5052 is not listening (must be bound to the private address 10.0.2.10)"),
        (
            [ANY4],
            "gateway port 5052 is bound to 0.0.0.0, every interface "
            "(must be the private address 10.0.2.10)",
        ),
        (["::"], "gateway port 5052 is bound to ::, every interface"),
        (["*"], "gateway port 5052 is bound to *, every interface"),
        (["52.1.2.3"], "gateway port 5052 is bound to 52.1.2.3, a public address"),
        (["203.0.113.10"], "gateway port 5052 is bound to 203.0.113.10, a public address"),
        (["10.0.2.11"], "gateway port 5052 is bound to 10.0.2.11 (must be the private address"),
        (["10.0.2.10", ANY4], "bound to 0.0.0.0"),
    ],
)
def test_binding_problem(addresses: list[str], message: str) -> None:
    public = ["203.0.113.10"]  # the inventory's public_ip, a documentation range here
    problem = checks.binding_problem("gateway", 5052, addresses, "10.0.2.10", public)
    assert (message in problem) if message else problem == ""


def test_binding_without_expected_address_accepts_any_private_one() -> None:
    assert checks.binding_problem("Ollama", 11434, ["172.18.0.4"], None) == ""
    assert "a private address" in checks.binding_problem("Ollama", 11434, [ANY4], None)


def make_cert(names: list[str], self_signed: bool, days: int = 30) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer = subject if self_signed else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_certificate_valid_for_domain() -> None:
    pem = make_cert(["gitlab.example.com"], self_signed=False)
    assert checks.certificate_problems(pem, "gitlab.example.com", False) == []
    wildcard = make_cert(["*.example.com"], self_signed=False)
    assert checks.certificate_problems(wildcard, "gitlab.example.com", False) == []


def test_certificate_for_another_name() -> None:
    pem = make_cert(["other.example.com"], self_signed=False)
    (problem,) = checks.certificate_problems(pem, "gitlab.example.com", False)
    assert problem == (
        "GitLab's certificate is not valid for gitlab.example.com (it names other.example.com)"
    )


def test_self_signed_only_when_allowed() -> None:
    pem = make_cert(["gitlab.example.com"], self_signed=True)
    (problem,) = checks.certificate_problems(pem, "gitlab.example.com", False)
    assert problem.startswith("GitLab's certificate is self-signed")
    assert checks.certificate_problems(pem, "gitlab.example.com", True) == []


def test_expired_certificate() -> None:
    pem = make_cert(["gitlab.example.com"], self_signed=False, days=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    (problem,) = checks.certificate_problems(pem, "gitlab.example.com", False, now=later)
    assert problem.startswith("GitLab's certificate expired on")


def test_no_certificate() -> None:
    assert checks.certificate_problems("", "gitlab.example.com", False) == [
        "GitLab served no certificate for gitlab.example.com on port 443"
    ]


@pytest.mark.parametrize(
    ("mode", "bad"), [(0o600, False), (0o400, False), (0o700, False), (0o640, True), (0o644, True)]
)
def test_secret_mode(mode: int, bad: bool) -> None:
    problem = checks.secret_mode_problem("/etc/ai-gateway/ai-gateway.env", mode, "root")
    assert bool(problem) == bad
    if bad:
        assert f"has mode {mode:04o}" in problem and "other users can access it" in problem


def test_models_listed_with_default_tag() -> None:
    tags = {"models": [{"name": "mistral:latest"}, {"model": "qwen2.5:0.5b"}]}
    assert checks.missing_models(tags, ["mistral", "qwen2.5:0.5b"]) == []
    assert checks.missing_models(tags, ["mistral:instruct"]) == ["mistral:instruct"]
    assert checks.missing_models(None, ["mistral"]) == ["mistral"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "mistral:instruct", "size": 100, "size_vram": 100}, ""),
        (
            {"name": "mistral:instruct", "size": 100, "size_vram": 0},
            "runs mistral:instruct on the CPU",
        ),
        ({"name": "mistral:instruct", "size": 100, "size_vram": 60}, "only 60% on the GPU"),
        ({"name": "other", "size": 1, "size_vram": 1}, "is not loaded"),
    ],
)
def test_gpu_problem(entry: dict[str, object], problem: str) -> None:
    found = checks.gpu_problem({"models": [entry]}, "mistral:instruct")
    assert (problem in found) if problem else found == ""


def test_probe_result_parsing() -> None:
    assert checks.probe_result('{"status": 200, "body": "{}"}\n') == {"status": 200, "body": "{}"}
    assert "no answer" in checks.probe_result("Traceback ...")["error"]
    assert checks.describe_answer({"status": 401, "body": '{"error":"x"}'}) == (
        'HTTP 401 {"error":"x"}'
    )
    assert checks.describe_answer({"error": "URLError: refused"}) == "URLError: refused"


class FakeAnsible:
    def __init__(self, variables: dict[str, object]) -> None:
        self.variables = variables

    def get_variables(self) -> dict[str, object]:
        return self.variables


class FakeHost:
    def __init__(self, variables: dict[str, object]) -> None:
        self.ansible = FakeAnsible(variables)


def test_expected_values_come_from_inventory_then_role_defaults() -> None:
    host = FakeHost({"ollama_port": 11500, "ai_gateway_http_port": "{{ some_var }}"})
    assert conftest.var(host, "ollama_port", "ollama", 1) == 11500
    # A Jinja expression is not a value: the role default applies.
    assert conftest.var(host, "ai_gateway_http_port", "ai_gateway", 1) == 5052
    assert conftest.var(host, "ollama_models", "ollama") == ["mistral:instruct"]
    assert conftest.var(host, "not_defined_anywhere", "ollama", "fallback") == "fallback"


def test_private_and_public_addresses_from_the_inventory() -> None:
    host = FakeHost({"private_ip": "10.0.1.10", "public_ip": "203.0.113.10"})
    assert conftest.private_address(host) == "10.0.1.10"
    assert conftest.public_addresses(host) == ["203.0.113.10"]
    assert conftest.public_addresses(FakeHost({"public_ip": "{{ x }}"})) == []


@pytest.mark.parametrize("module", ["test_gitlab", "test_ai_gateway", "test_ollama", "test_vllm"])
def test_every_infra_check_has_a_name_and_a_known_hop(module: str) -> None:
    """duoctl verify shows a check by its docstring and blames its hop: both must exist."""
    import importlib

    from duoctl import verify

    mod = importlib.import_module(f"tests.infra.{module}")
    tests = [getattr(mod, n) for n in dir(mod) if n.startswith("test_")]
    assert tests and mod.testinfra_hosts in (["gitlab"], ["ai_gateway"], ["ollama"], ["vllm"])
    for test in tests:
        assert (test.__doc__ or "").strip(), f"{module}.{test.__name__} has no docstring"
        assert (getattr(test, "hop", None) or mod.HOP) in verify.HOP_ORDER
