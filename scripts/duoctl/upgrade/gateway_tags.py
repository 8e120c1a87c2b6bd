"""The gateway tag of each hop, read at plan time with the ai_gateway role's own resolver.

The role reads the registry on the gateway host when a hop runs; the plan reads it from here
too, so that a hop whose X.Y has no gateway release yet is known before GitLab is touched.
The resolver is the role-local module (ansible/roles/ai_gateway/library/ai_gateway_image_tag.py),
loaded from the checkout: one implementation of GitLab's rule. A registry this machine cannot
reach (air-gapped) leaves the plan with the tag pattern.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from duoctl.upgrade.planner import Hop

RESOLVER = Path("ansible/roles/ai_gateway/library/ai_gateway_image_tag.py")
ROLE_DEFAULTS = Path("ansible/roles/ai_gateway/defaults/main.yml")


@dataclass(frozen=True)
class Image:
    registry: str
    repository: str
    registry_url: str = ""  # empty: https://<registry>


@dataclass(frozen=True)
class TagReport:
    tags: dict[tuple[int, int], str]  # X.Y -> the newest existing tag
    missing: dict[tuple[int, int], str]  # X.Y -> why there is none (the resolver's message)
    unreachable: str = ""  # the registry could not be read: the reason

    def by_minor(self) -> dict[tuple[int, int], str]:
        """X.Y -> what the plan shows for its gateway."""
        shown = dict(self.tags)
        shown.update({key: f"NONE: {why}" for key, why in self.missing.items()})
        return shown

    def lines(self) -> list[str]:
        if not self.unreachable:
            return []
        return [
            f"  gateway tags not read ({self.unreachable}); the gateway host reads them when "
            "each hop runs"
        ]


def load_resolver(repo: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ai_gateway_image_tag", repo / RESOLVER)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(repo / RESOLVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_image(repo: Path, inventory_vars: dict[str, Any] | None = None) -> Image:
    """The role's image, with the inventory's overrides."""
    defaults = yaml.safe_load((repo / ROLE_DEFAULTS).read_text(encoding="utf-8")) or {}
    merged = {**defaults, **(inventory_vars or {})}
    return Image(
        str(merged.get("ai_gateway_image_registry", "registry.gitlab.com")),
        str(merged.get("ai_gateway_image_repository", "")),
        str(merged.get("ai_gateway_image_registry_url", "") or ""),
    )


def resolve_tags(hops: list[Hop], image: Image, repo: Path, timeout: int = 10) -> TagReport:
    resolver = load_resolver(repo)
    fetch = resolver.urllib_fetch(timeout)
    base = resolver.base_url(image.registry, image.registry_url)
    try:
        tags, _ = resolver.list_tags(base, image.repository, fetch)
    except resolver.RegistryError as exc:
        return TagReport({}, {}, str(exc))
    found: dict[tuple[int, int], str] = {}
    missing: dict[tuple[int, int], str] = {}
    for hop in hops:
        key = hop.version.minor_key
        tag, _ = resolver.select_tag(tags, *key)
        if tag:
            found[key] = tag
        else:
            missing[key] = (
                f"{image.registry}/{image.repository} has no self-hosted-v{key[0]}.{key[1]}.*-ee "
                "tag yet"
            )
    return TagReport(found, missing)
