"""The prompts the bench sends: code around a cursor in several languages and sizes.

`code.json` (package data) holds, per language, a small (a few lines), a medium (a whole
function or class) and a large (a module) piece of code, split where a developer would pause
for a suggestion. The bench cycles through them in a fixed order, so two runs send the same
prompts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Prompt:
    language: str
    size: str  # small | medium | large
    file_name: str
    content_above_cursor: str
    content_below_cursor: str


def load() -> tuple[Prompt, ...]:
    """Every prompt of the package's `code.json`, in file order."""
    text = resources.files(__package__).joinpath("code.json").read_text(encoding="utf-8")
    return tuple(Prompt(**item) for item in json.loads(text)["prompts"])
