#!/usr/bin/python
"""Role-local module: the newest existing self-hosted-vX.Y.*-ee tag of the gateway image."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ai_gateway_image_tag
short_description: Find the newest existing AI gateway image tag for a GitLab X.Y
description:
  - Reads the image's tag list from its registry (Docker Registry HTTP API v2,
    C(GET /v2/<name>/tags/list)), following C(Link) pagination and the registry's token
    authentication (an anonymous pull token from the C(realm) of the C(WWW-Authenticate)
    challenge, as registry.gitlab.com and Docker Hub require).
  - Returns the newest C(self-hosted-vX.Y.Z-ee) tag of GitLab's X.Y, as GitLab's AI gateway
    install guide asks; release candidates and other suffixes are ignored. Some patch tags are
    never published, so the tag derived from GitLab's own patch may not exist.
  - Read-only; runs in check mode.
options:
  registry:
    description: Registry host of the image (C(registry.gitlab.com); C(docker.io) for Docker Hub).
    type: str
    required: true
  repository:
    description: Repository path of the image in the registry.
    type: str
    required: true
  gitlab_version:
    description: GitLab's version, C(X.Y.Z) (C(vX.Y.Z) and C(X.Y.Z-ee.0) work too).
    type: str
    required: true
  registry_url:
    description: Base URL of the registry API; empty derives C(https://<registry>).
    type: str
    default: ""
  timeout:
    description: Seconds per HTTP request.
    type: int
    default: 30
  max_pages:
    description: Pages of the tag list read at most.
    type: int
    default: 200
author: duoctl
"""

EXAMPLES = r"""
- name: Find the gateway tag for GitLab 18.2.1
  ai_gateway_image_tag:
    registry: registry.gitlab.com
    repository: gitlab-org/modelops/applied-ml/code-suggestions/ai-assist/model-gateway
    gitlab_version: 18.2.1
  register: found
"""

RETURN = r"""
tag:
  description: The newest existing self-hosted-vX.Y.*-ee tag.
  type: str
  returned: success
  sample: self-hosted-v18.2.2-ee
candidates:
  description: Every self-hosted tag of that X.Y found, oldest first.
  type: list
  elements: str
  returned: success
pages:
  description: Pages of the tag list read.
  type: int
  returned: success
"""

import json  # noqa: E402
import re  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-ee(?:\.\d+)?)?$")
TAG = re.compile(r"^self-hosted-v(\d+)\.(\d+)\.(\d+)-ee$")
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
# Docker Hub's API is not at the name images carry.
API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}
PAGE_SIZE = 1000


class RegistryError(Exception):
    """The registry could not be read; the message names the URL and the reason."""


class NoTag(Exception):
    """No self-hosted tag of that X.Y exists; the message names the registry and the fix."""


def parse_version(text: str) -> tuple[int, int, int]:
    match = VERSION.match(str(text).strip())
    if match is None:
        raise ValueError(
            f"gitlab_version {text!r} is not X.Y.Z (set ai_gateway_gitlab_version to GitLab's "
            "version, for example 18.2.1, or set ai_gateway_image_tag)"
        )
    return int(match[1]), int(match[2]), int(match[3])


def select_tag(tags: list[str], major: int, minor: int) -> tuple[str | None, list[str]]:
    """The newest self-hosted-vX.Y.Z-ee of X.Y (by patch number) and every such tag, sorted."""
    found = []
    for tag in tags:
        match = TAG.match(tag)
        if match and (int(match[1]), int(match[2])) == (major, minor):
            found.append((int(match[3]), tag))
    found.sort()
    candidates = [tag for _, tag in found]
    return (candidates[-1] if candidates else None), candidates


def base_url(registry: str, registry_url: str = "") -> str:
    if registry_url:
        return registry_url.rstrip("/")
    return "https://" + API_HOSTS.get(registry, registry)


Fetch = Callable[[str, dict], tuple]  # (url, headers) -> (status, headers, body bytes)


def urllib_fetch(timeout: int) -> Fetch:
    def fetch(url: str, headers: dict) -> tuple:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (https or a test URL)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                return answer.status, dict(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"cannot reach {url}: {reason}") from None

    return fetch


def _header(headers: dict, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def bearer_token(challenge: str, fetch: Fetch, url: str) -> str:
    """An anonymous token from the realm of a `Bearer realm=...,service=...,scope=...` challenge."""
    if not challenge.lower().startswith("bearer "):
        raise RegistryError(
            f"{url} asks for {challenge.split(' ')[0] or 'an unknown'} authentication; only "
            "the token (Bearer) flow of public registries is supported"
        )
    params = dict(CHALLENGE_PARAM.findall(challenge))
    realm = params.pop("realm", "")
    if not realm:
        raise RegistryError(f"{url} sent a Bearer challenge without a realm: {challenge}")
    token_url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(params)
    status, _, body = fetch(token_url, {})
    if status != 200:
        raise RegistryError(f"the token service {realm} answered HTTP {status}")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise RegistryError(f"the token service {realm} did not answer JSON") from None
    token = data.get("token") or data.get("access_token")
    if not token:
        raise RegistryError(f"the token service {realm} answered without a token")
    return str(token)


def list_tags(
    base: str, repository: str, fetch: Fetch, max_pages: int = 200
) -> tuple[list[str], int]:
    """Every tag of the repository: GET /v2/<name>/tags/list, page by page (Link rel=next)."""
    url = f"{base}/v2/{repository}/tags/list?n={PAGE_SIZE}"
    tags: list[str] = []
    token = ""
    pages = 0
    while url:
        if pages >= max_pages:
            raise RegistryError(f"{base}: more than {max_pages} pages of tags; raise max_pages")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        status, answer_headers, body = fetch(url, headers)
        if status == 401:  # no token yet, or it expired: one new token, one retry
            challenge = _header(answer_headers, "WWW-Authenticate")
            new_token = bearer_token(challenge, fetch, url)
            headers["Authorization"] = f"Bearer {new_token}"
            status, answer_headers, body = fetch(url, headers)
            token = new_token
        if status == 404:
            raise RegistryError(f"{url}: the registry has no repository {repository} (HTTP 404)")
        if status != 200:
            raise RegistryError(f"{url} answered HTTP {status}: {body[:200]!r}")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise RegistryError(f"{url} did not answer JSON") from None
        tags.extend(str(t) for t in (data.get("tags") or []))
        pages += 1
        match = LINK_NEXT.search(_header(answer_headers, "Link"))
        url = urllib.parse.urljoin(base + "/", match[1]) if match else ""
    return tags, pages


def resolve(
    registry: str,
    repository: str,
    gitlab_version: str,
    fetch: Fetch,
    registry_url: str = "",
    max_pages: int = 200,
) -> dict[str, Any]:
    major, minor, _ = parse_version(gitlab_version)
    base = base_url(registry, registry_url)
    tags, pages = list_tags(base, repository, fetch, max_pages)
    tag, candidates = select_tag(tags, major, minor)
    if tag is None:
        raise NoTag(
            f"{registry}/{repository} has no self-hosted-v{major}.{minor}.*-ee tag "
            f"({len(tags)} tags read from {base}) for GitLab {gitlab_version}: no AI gateway "
            f"release matches GitLab {major}.{minor} yet. Set ai_gateway_image_tag (or "
            "ai_gateway_image_digest) to a gateway release you have checked, or deploy a "
            "GitLab version whose gateway is published"
        )
    return {"tag": tag, "candidates": candidates, "pages": pages}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "registry": {"type": "str", "required": True},
            "repository": {"type": "str", "required": True},
            "gitlab_version": {"type": "str", "required": True},
            "registry_url": {"type": "str", "default": ""},
            "timeout": {"type": "int", "default": 30},
            "max_pages": {"type": "int", "default": 200},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        found = resolve(
            p["registry"],
            p["repository"],
            p["gitlab_version"],
            urllib_fetch(p["timeout"]),
            p["registry_url"],
            p["max_pages"],
        )
    except (NoTag, ValueError) as exc:
        module.fail_json(msg=str(exc))
    except RegistryError as exc:
        module.fail_json(
            msg=f"cannot read the gateway image's tags: {exc}. The gateway host needs HTTPS "
            f"access to {p['registry']}; otherwise set ai_gateway_image_tag (or a digest), or "
            "use ai_gateway_image_archive (air-gapped)"
        )
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
