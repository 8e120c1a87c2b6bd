"""What GitLab sends the AI gateway for a code completion with a self-hosted model.

Part of the GitLab API double (see server.py). With `GitLabDouble.forward_to_gateway` on, a
`POST /api/v4/code_suggestions/completions` goes where GitLab sends it: the registered AI
gateway's `POST /v2/code/completions` (GitLab hands the request to Workhorse, which proxies
it, so the gateway's status and body come back unchanged, streamed when the IDE asked for a
stream). The body carries the self-hosted model's metadata (provider litellm, endpoint,
identifier, API key, family), as GitLab's self-hosted code completion request does; the
headers are GitLab's AI gateway headers with a self-issued OIDC token (Authorization: Bearer
<JWT>, X-Gitlab-Authentication-Type: oidc). Stand-in: the token is a JWT signed with a key of
this double, not with GitLab's OpenID Connect signing key, which lives in Rails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.doubles.gitlab_api.instance import Model

INSTANCE_ID = "5ad5e86c-6e1a-4b6f-9d6f-0fd4c5a1f2b3"
TIMEOUT_SECONDS = 60.0
_SIGNING_KEY = secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def self_issued_token(gitlab_url: str, user_id: int) -> str:
    """A JWT shaped like GitLab's self-issued Cloud Connector token for the gateway."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": gitlab_url,
        "aud": "gitlab-ai-gateway",
        "sub": INSTANCE_ID,
        "gitlab_realm": "self-managed",
        "scopes": ["complete_code", "generate_code", "duo_chat"],
        "iat": now,
        "nbf": now - 5,
        "exp": now + 3600,
        "jti": secrets.token_hex(8),
        "user_id": user_id,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(_SIGNING_KEY, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def gateway_request(model: Model, body: dict[str, Any]) -> dict[str, Any]:
    """The gateway request body for the IDE's completion request `body`."""
    current = dict(body["current_file"])
    current.setdefault("content_below_cursor", "")
    return {
        "current_file": current,
        "telemetry": [],
        "stream": bool(body.get("stream")),
        "prompt_version": 1,
        "model_provider": "litellm",
        "model_endpoint": model.endpoint,
        "model_name": model.model.lower(),
        "model_api_key": model.api_token,
        "model_identifier": model.identifier,
    }


@dataclass
class GatewayAnswer:
    status: int
    content_type: str
    chunks: Iterator[bytes]


def forward(
    gateway_url: str, gitlab_url: str, user_id: int, model: Model, body: dict[str, Any]
) -> GatewayAnswer:
    """POST the completion to the gateway; its answer, to be passed on as it comes."""
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {self_issued_token(gitlab_url, user_id)}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Instance-Id": INSTANCE_ID,
        "X-Gitlab-Global-User-Id": _b64(hashlib.sha256(str(user_id).encode()).digest()),
        "X-Gitlab-Realm": "self-managed",
        "X-Gitlab-Host-Name": gitlab_url.split("://", 1)[-1],
        "X-Request-ID": secrets.token_hex(8),
    }
    data = json.dumps(gateway_request(model, body)).encode()
    url = gateway_url.rstrip("/") + "/v2/code/completions"
    request = urllib.request.Request(url, data, headers, method="POST")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        return GatewayAnswer(exc.code, exc.headers.get("Content-Type", ""), iter([exc.read()]))
    except OSError:
        # Workhorse's answer when the upstream cannot be reached or times out.
        return GatewayAnswer(502, "text/plain", iter([b"Bad Gateway\n"]))

    def chunks() -> Iterator[bytes]:
        with response:
            while block := response.read1(65536):
                yield block

    return GatewayAnswer(response.status, response.headers.get("Content-Type", ""), chunks())
