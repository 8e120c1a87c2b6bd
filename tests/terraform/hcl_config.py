"""Parse a Terraform configuration with python-hcl2 and check it against a provider schema.

The schemas are `terraform providers schema -json` documents (descriptions
stripped), kept in the repository in tests/terraform/schemas/ (see its README).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_FILES = {
    "aws": ("aws_5.100.0.min.json.gz", "registry.terraform.io/hashicorp/aws"),
    "gcp": ("google_6.50.0.min.json.gz", "registry.terraform.io/hashicorp/google"),
}
RESOURCE_META = {"count", "for_each", "depends_on", "provider", "lifecycle"}
LIFECYCLE_KEYS = {
    "create_before_destroy",
    "prevent_destroy",
    "ignore_changes",
    "replace_triggered_by",
    "precondition",
    "postcondition",
}
_OPTIONS = SerializationOptions(strip_string_quotes=True, with_comments=False)

Body = dict[str, Any]


def config_dir(cloud: str) -> Path:
    return REPO / "terraform" / cloud


@cache
def load_config(cloud: str) -> dict[str, list[Any]]:
    """Every top-level block of terraform/<cloud>/*.tf, merged across files."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(config_dir(cloud).glob("*.tf")):
        parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for key, items in parsed.items():
            merged.setdefault(key, []).extend(items)
    return merged


def named(config: dict[str, list[Any]], kind: str) -> dict[str, Body]:
    """{"<type>.<name>": body} for resource/data, {"<name>": body} for variable/output/locals."""
    out: dict[str, Body] = {}
    for item in config.get(kind, []):
        for key, value in item.items():
            if kind in ("resource", "data"):
                for name, body in value.items():
                    out[f"{key}.{name}"] = body
            else:
                out[key] = value
    return out


def locals_of(cloud: str) -> Body:
    merged: Body = {}
    for item in load_config(cloud).get("locals", []):
        merged.update({k: v for k, v in item.items() if k != "__is_block__"})
    return merged


@cache
def provider_schema(cloud: str) -> dict[str, Any] | None:
    filename, source = SCHEMA_FILES[cloud]
    path = SCHEMA_DIR / filename
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        doc: dict[str, Any] = json.load(handle)
    return doc["provider_schemas"][source]  # type: ignore[no-any-return]


def is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _attrs(body: Body) -> Iterator[tuple[str, Any]]:
    for key, value in body.items():
        if key != "__is_block__":
            yield key, value


def check_block(body: Body, schema: dict[str, Any], where: str, top: bool) -> list[str]:
    """Unknown names, computed-only or deprecated arguments, missing required ones, block counts."""
    errors: list[str] = []
    attributes = schema.get("attributes", {})
    block_types = schema.get("block_types", {})
    seen_blocks: dict[str, int] = {}
    dynamic_blocks: set[str] = set()
    for key, value in _attrs(body):
        if top and key in RESOURCE_META:
            if key == "lifecycle":
                for lc in value:
                    unknown = set(lc) - LIFECYCLE_KEYS - {"__is_block__"}
                    errors += [f"{where}: unknown lifecycle argument {u}" for u in sorted(unknown)]
            continue
        if key == "dynamic":
            for dyn in value:
                for name, spec in _attrs(dyn):
                    if name not in block_types:
                        errors.append(f"{where}: dynamic block {name} is not a block of the schema")
                        continue
                    dynamic_blocks.add(name)
                    for content in spec.get("content", []):
                        errors += check_block(
                            content, block_types[name]["block"], f"{where}.{name}", False
                        )
            continue
        if is_block(value):
            if key not in block_types:
                errors.append(f"{where}: unknown block {key}")
                continue
            seen_blocks[key] = len(value)
            for index, nested in enumerate(value):
                errors += check_block(
                    nested, block_types[key]["block"], f"{where}.{key}[{index}]", False
                )
            continue
        if key not in attributes:
            hint = " (it is a block: write it without =)" if key in block_types else ""
            errors.append(f"{where}: unknown argument {key}{hint}")
            continue
        spec = attributes[key]
        if spec.get("computed") and not (spec.get("optional") or spec.get("required")):
            errors.append(f"{where}: {key} is computed only and cannot be set")
        if spec.get("deprecated"):
            errors.append(f"{where}: {key} is deprecated")
    for name, spec in attributes.items():
        if spec.get("required") and name not in body:
            errors.append(f"{where}: required argument {name} is missing")
    for name, spec in block_types.items():
        count = seen_blocks.get(name, 0)
        if name in dynamic_blocks:
            continue
        low, high = spec.get("min_items") or 0, spec.get("max_items")
        if spec["nesting_mode"] == "single":
            high = 1
        if count < low:
            errors.append(f"{where}: block {name} needs at least {low}, has {count}")
        if high is not None and count > high:
            errors.append(f"{where}: block {name} allows at most {high}, has {count}")
    return errors


def schema_errors(cloud: str) -> list[str]:
    schema = provider_schema(cloud)
    assert schema is not None
    config = load_config(cloud)
    errors: list[str] = []
    checks = [named(c, "data") for c in config.get("check", []) for c in c.values()]
    sections = [
        ("resource", named(config, "resource"), schema["resource_schemas"]),
        ("data", named(config, "data"), schema["data_source_schemas"]),
        *[("data", scoped, schema["data_source_schemas"]) for scoped in checks],
    ]
    for kind, blocks, schemas in sections:
        for address, body in blocks.items():
            rtype = address.split(".", 1)[0]
            if rtype not in schemas:
                errors.append(f"{kind} {address}: unknown {kind} type {rtype}")
                continue
            errors += check_block(body, schemas[rtype]["block"], f"{kind} {address}", True)
    return errors
