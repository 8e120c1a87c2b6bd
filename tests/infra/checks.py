"""Pure helpers of the infra suite: parse what the hosts answer and say what is wrong.

Every function returns a problem sentence (or None) so that an assertion reads like
"gateway port 5052 is bound to 0.0.0.0 (must be the private address 10.0.2.10)".
Nothing here talks to a host: the test modules collect the output, these judge it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

# The remote side of an HTTP probe: python3 is on every host (Ansible needs it).
# argv: url, method, cafile ("" = system store), body ("" = none), timeout seconds.
HTTP_PROBE = r"""
import json, ssl, sys, urllib.error, urllib.request
url, method, cafile, body, timeout = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile or None)
req = urllib.request.Request(url, method=method, data=body.encode() or None)
if body:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=float(timeout), context=ctx) as resp:
        status, data = resp.status, resp.read()
except urllib.error.HTTPError as exc:
    status, data = exc.code, exc.read()
except Exception as exc:
    reason = getattr(exc, "reason", exc)
    print(json.dumps({"error": type(reason).__name__ + ": " + str(reason)}))
    sys.exit(0)
print(json.dumps({"status": status, "body": data.decode("utf-8", "replace")[:20000]}))
"""


# Every interface, as ss prints it ("*" for an IPv6 socket that also takes IPv4).
ANY_ADDRESSES = ("*", "0.0.0.0", "::")  # noqa: S104 - names them to refuse them


def unbracket(address: str) -> str:
    return address[1:-1] if address.startswith("[") and address.endswith("]") else address


def listening_addresses(ss_output: str, port: int) -> list[str]:
    """Local addresses listening on `port` in `ss -Hltn` output ("*" and "[::]" included)."""
    found: list[str] = []
    for line in ss_output.splitlines():
        fields = line.split()
        # State Recv-Q Send-Q Local:Port Peer:Port [Process]
        if len(fields) < 5:
            continue
        local = fields[3]
        address, _, local_port = local.rpartition(":")
        if local_port == str(port):
            address = unbracket(address).split("%", 1)[0]
            if address not in found:
                found.append(address)
    return found


def is_private_address(address: str) -> bool:
    """A specific, non-public address: RFC 1918, ULA, link-local or loopback."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # "*" and host names
    return not ip.is_unspecified and not ip.is_global


def binding_problem(
    label: str,
    port: int,
    addresses: Sequence[str],
    expected: str | None,
    public: Iterable[str] = (),
) -> str:
    """Empty when `port` listens only on private addresses (only on `expected` when known).

    `public` lists addresses known to be public (the inventory's public_ip), whatever their range.
    """
    known_public = set(public)
    where = f"the private address {expected}" if expected else "a private address"
    if not addresses:
        return f"{label} port {port} is not listening (must be bound to {where})"
    for address in addresses:
        if address in ANY_ADDRESSES:
            return f"{label} port {port} is bound to {address}, every interface (must be {where})"
        if address in known_public or not is_private_address(address):
            return f"{label} port {port} is bound to {address}, a public address (must be {where})"
        if expected and address != expected:
            return f"{label} port {port} is bound to {address} (must be {where})"
    return ""


def probe_result(output: str) -> dict[str, Any]:
    """The JSON line HTTP_PROBE printed: {status, body} or {error}."""
    try:
        data = json.loads(output.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no answer from the probe: {output.strip()[:200]!r}"}
    return data if isinstance(data, dict) else {"error": f"unexpected probe output {data!r}"}


def describe_answer(result: dict[str, Any]) -> str:
    if "error" in result:
        return str(result["error"])
    body = str(result.get("body", "")).strip().replace("\n", " ")
    return f"HTTP {result.get('status')} {body[:160]}"


def json_body(result: dict[str, Any]) -> Any:
    try:
        return json.loads(result.get("body") or "null")
    except json.JSONDecodeError:
        return None


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.value.get_values_for_type(x509.DNSName)]


def name_matches(pattern: str, domain: str) -> bool:
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


def split_pem_chain(text: str) -> list[str]:
    marker_start, marker_end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    chain, rest = [], text
    while marker_start in rest:
        start = rest.index(marker_start)
        end = rest.index(marker_end, start) + len(marker_end)
        chain.append(rest[start:end])
        rest = rest[end:]
    return chain


def certificate_problems(
    chain_pem: str, domain: str, self_signed_allowed: bool, now: datetime | None = None
) -> list[str]:
    """What is wrong with the certificate GitLab serves for `domain` (leaf first)."""
    chain = split_pem_chain(chain_pem)
    if not chain:
        return [f"GitLab served no certificate for {domain} on port 443"]
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    now = now or datetime.now(UTC)
    problems = []
    names = _names(leaf)
    if not any(name_matches(n, domain) for n in names):
        named = ", ".join(names) or "no DNS name"
        problems.append(f"GitLab's certificate is not valid for {domain} (it names {named})")
    if now < leaf.not_valid_before_utc:
        problems.append(
            f"GitLab's certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}"
        )
    if now > leaf.not_valid_after_utc:
        problems.append(f"GitLab's certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.issuer == leaf.subject and not self_signed_allowed:
        problems.append(
            "GitLab's certificate is self-signed, but gitlab_tls_mode does not allow it "
            "(Let's Encrypt or your own certificate expected)"
        )
    return problems


def secret_mode_problem(path: str, mode: int, user: str) -> str:
    """Empty when only its owner (root or a service user) can read the file."""
    if mode & 0o077:
        return (
            f"secret {path} has mode {mode:04o} (owner {user}): other users can access it "
            "(must be 0600, or 0700 for a directory)"
        )
    return ""


def model_matches(listed: str, wanted: str) -> bool:
    """Ollama names default their tag to latest: "mistral" is "mistral:latest"."""

    def norm(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    return norm(listed) == norm(wanted)


def missing_models(tags: Any, wanted: Iterable[str]) -> list[str]:
    listed = [
        str(m.get("name") or m.get("model"))
        for m in (tags or {}).get("models", [])
        if isinstance(m, dict)
    ]
    return [w for w in wanted if not any(model_matches(name, w) for name in listed)]


def gpu_problem(ps: Any, model: str) -> str:
    """Empty when `model` is loaded fully in GPU memory (`ollama ps` shows 100% GPU)."""
    for entry in (ps or {}).get("models", []):
        if model_matches(str(entry.get("name") or entry.get("model")), model):
            size, vram = int(entry.get("size") or 0), int(entry.get("size_vram") or 0)
            if vram <= 0:
                return f"Ollama runs {model} on the CPU (ollama ps: 0% GPU)"
            if size and vram < size:
                return f"Ollama runs {model} only {round(100 * vram / size)}% on the GPU"
            return ""
    return f"{model} is not loaded (ollama ps lists no such model)"
