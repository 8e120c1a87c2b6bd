"""Reading the GitLab automation token from its file (it never goes on a command line)."""

from __future__ import annotations

from pathlib import Path

from duoctl.errors import DuoctlError


class TokenFileError(DuoctlError):
    """The token file cannot be used; the message names the file and the problem."""


def read_token_file(path: str | Path) -> str:
    file = Path(path).expanduser()
    try:
        token = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenFileError(f"cannot read the token file {file}: {exc.strerror}") from exc
    if not token:
        raise TokenFileError(f"the token file {file} is empty")
    return token
