"""The one error type a command stops with: what is wrong, how to fix it, and the exit code.

Exit codes: 1 the operation failed, 2 bad input (nothing was written or changed),
130 interrupted. `cli.main` prints `error: MESSAGE` and `fix: FIX` and exits with the code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class DuoctlError(Exception):
    """A failure the user can act on; never shown with a traceback."""

    def __init__(self, message: str, fix: str = "", exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}" if self.fix else self.message

    def render(self) -> str:
        return f"error: {self.message}" + (f"\nfix: {self.fix}" if self.fix else "")


def unreadable(path: object, exc: OSError, fix: str) -> DuoctlError:
    """A file that cannot be read or written, named with the system's reason."""
    reason = exc.strerror or type(exc).__name__
    return DuoctlError(f"{path}: {reason}", fix)
