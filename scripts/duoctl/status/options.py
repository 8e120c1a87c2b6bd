"""What `duoctl status` takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def _print(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class StatusOptions:
    """`name` None: the deployment named after its cloud (aws, else gcp), as verify finds it;
    `inventory`: own hosts (their inventory, the deployment folder optional)."""

    name: str | None = None
    deploy_dir: Path = Path(".deploy")
    inventory: Path | None = None
    token_file: Path | None = None
    ca_file: str | None = None
    gitlab_url: str | None = None
    ssh_key: str | None = None
    timeout: float = 6.0  # seconds for each check; they run at once
    json: bool = False
    allow_http: bool = False
    out: Callable[[str], None] = field(default=_print)
