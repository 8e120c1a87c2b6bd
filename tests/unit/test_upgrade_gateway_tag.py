"""The ai_gateway role's tag resolution (library/ai_gateway_image_tag.py): the newest existing
self-hosted-vX.Y.*-ee tag, read from the registry double through its token auth and pages."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.doubles.registry import GATEWAY_REPOSITORY, GATEWAY_TAGS, RegistryDouble, registry_double

ROOT = Path(__file__).resolve().parents[2]
MODULE_FILE = ROOT / "ansible/roles/ai_gateway/library/ai_gateway_image_tag.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ai_gateway_image_tag", MODULE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tagmod = load()


@pytest.fixture
def registry() -> Iterator[RegistryDouble]:
    with registry_double() as running:
        yield running


def resolve(registry: RegistryDouble, version: str, repository: str = GATEWAY_REPOSITORY) -> dict:
    fetch = tagmod.urllib_fetch(5)
    return tagmod.resolve("registry.gitlab.com", repository, version, fetch, registry.url)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("version", "tag"),
    [
        ("18.2.1", "self-hosted-v18.2.4-ee"),  # newer than GitLab's patch; 18.2.3 never published
        ("18.2.3", "self-hosted-v18.2.4-ee"),  # GitLab's own patch has no tag
        ("v18.5.0", "self-hosted-v18.5.10-ee"),  # numeric order: 10 after 2
        ("19.4.1-ee.0", "self-hosted-v19.4.1-ee"),
    ],
)
def test_newest_patch_of_the_minor(version: str, tag: str) -> None:
    major, minor, _ = tagmod.parse_version(version)
    assert tagmod.select_tag(GATEWAY_TAGS, major, minor)[0] == tag


def test_rc_nightly_and_other_forms_are_ignored() -> None:
    _, candidates = tagmod.select_tag(GATEWAY_TAGS, 18, 2)
    assert candidates == [
        "self-hosted-v18.2.0-ee",
        "self-hosted-v18.2.1-ee",
        "self-hosted-v18.2.2-ee",
        "self-hosted-v18.2.4-ee",
    ]
    # 18.11 has only a nightly and an old unprefixed form: nothing to use.
    assert tagmod.select_tag(GATEWAY_TAGS, 18, 11) == (None, [])


def test_reads_every_page_through_the_token_flow(registry: RegistryDouble) -> None:
    found = resolve(registry, "18.5.0")
    assert found["tag"] == "self-hosted-v18.5.10-ee"
    assert found["pages"] == 5  # 14 tags, 3 a page
    assert registry.token_requests() == 1  # one anonymous token serves every page
    first, second = registry.log[0], registry.log[1]
    assert first == f"/v2/{GATEWAY_REPOSITORY}/tags/list?n=1000"
    assert second.startswith("/jwt/auth?service=container_registry&scope=repository%3A")
    assert any("last=" in entry for entry in registry.log)


def test_an_expired_token_is_renewed(registry: RegistryDouble) -> None:
    tags_seen: list[str] = []
    fetch = tagmod.urllib_fetch(5)

    def expiring(url: str, headers: dict) -> tuple:
        if "last=" in url and not tags_seen:
            tags_seen.append(url)
            registry.expire_tokens()
        return fetch(url, headers)  # type: ignore[no-any-return]

    found = tagmod.resolve(
        "registry.gitlab.com", GATEWAY_REPOSITORY, "19.4.1", expiring, registry.url
    )
    assert found["tag"] == "self-hosted-v19.4.1-ee"
    assert registry.token_requests() == 2


def test_no_tag_for_the_minor_names_the_registry_and_the_fix(registry: RegistryDouble) -> None:
    with pytest.raises(tagmod.NoTag) as missing:
        resolve(registry, "18.11.2")
    message = str(missing.value)
    assert f"registry.gitlab.com/{GATEWAY_REPOSITORY} has no self-hosted-v18.11.*-ee tag" in message
    assert "14 tags read from" in message
    assert "Set ai_gateway_image_tag" in message


def test_unknown_repository_and_private_registry_are_named(registry: RegistryDouble) -> None:
    with pytest.raises(tagmod.RegistryError, match="no repository gitlab-org/nope"):
        resolve(registry, "18.2.1", "gitlab-org/nope")
    registry.public = False
    with pytest.raises(tagmod.RegistryError, match=r"token service .*/jwt/auth answered HTTP 401"):
        resolve(registry, "18.2.1")


def test_unreachable_registry_is_named() -> None:
    with registry_double() as gone:
        url = gone.url
    with pytest.raises(tagmod.RegistryError, match=f"cannot reach {url}/v2/"):
        tagmod.resolve(
            "registry.gitlab.com", GATEWAY_REPOSITORY, "18.2.1", tagmod.urllib_fetch(2), url
        )


def test_bad_version_is_named() -> None:
    with pytest.raises(ValueError, match=r"gitlab_version '18\.2' is not X\.Y\.Z"):
        tagmod.parse_version("18.2")


def test_docker_hub_is_asked_at_its_api_host() -> None:
    assert tagmod.base_url("docker.io") == "https://registry-1.docker.io"
    assert tagmod.base_url("registry.gitlab.com") == "https://registry.gitlab.com"


def test_the_module_runs_under_ansible(registry: RegistryDouble, tmp_path: Path) -> None:
    """The module as Ansible runs it: JSON arguments in, JSON result out."""
    args = {
        "ANSIBLE_MODULE_ARGS": {
            "registry": "registry.gitlab.com",
            "repository": GATEWAY_REPOSITORY,
            "gitlab_version": "18.2.1",
            "registry_url": registry.url,
            "_ansible_check_mode": True,
        }
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    run = subprocess.run(
        [sys.executable, str(MODULE_FILE), str(tmp_path / "args.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(run.stdout)
    assert result["tag"] == "self-hosted-v18.2.4-ee" and result["changed"] is False
    args["ANSIBLE_MODULE_ARGS"]["gitlab_version"] = "18.11.0"
    (tmp_path / "args.json").write_text(json.dumps(args))
    run = subprocess.run(
        [sys.executable, str(MODULE_FILE), str(tmp_path / "args.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    failed = json.loads(run.stdout)
    assert failed["failed"] is True
    assert "has no self-hosted-v18.11.*-ee tag" in failed["msg"]
