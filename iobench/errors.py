"""One exception hierarchy: every message names the bad value and the fix.

A traceback shown to a user means a bug in iobench, never bad input. Exit codes:
0 ok, 1 the run failed, 2 bad input, 130 interrupted (partial result kept).
"""

from __future__ import annotations

import sys
from typing import IO, Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class IobenchError(Exception):
    """Base class: one line `error: <message>` and exit code 2 (the command line shows
    it; a library caller catches it). Independent of Click, so iobench's run code is too."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *args: Any) -> None:
        super().__init__(message, *args)
        self.message = message

    def format_message(self) -> str:
        return self.message

    def __str__(self) -> str:
        return self.message

    def show(self, file: IO[str] | None = None) -> None:
        print(f"error: {self.format_message()}", file=file or sys.stderr, flush=True)


class UsageError(IobenchError):
    """Bad input: a value, flag, YAML key or path the user can fix."""


class SpecError(UsageError):
    """A workload file or flag combination is invalid."""


class TargetError(UsageError):
    """The target directory cannot be used safely."""


class ToolMissing(UsageError):
    """An external tool (fio, mpirun) or optional package is not installed."""


class ReportedByRoot(IobenchError):
    """Under MPI: bad input that rank 0 found and reported; the other ranks leave with the
    same exit code and print nothing (the user sees the error once)."""

    def __init__(self, code: int) -> None:
        super().__init__("bad input, reported by rank 0")
        self.exit_code = code

    def show(self, file: IO[str] | None = None) -> None:
        return None


class RunFailed(IobenchError):
    """The benchmark ran but failed (fio error, I/O error, disk full, corrupt data)."""

    exit_code = EXIT_FAILED


def did_you_mean(value: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or the list of valid ones."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (valid: {', '.join(sorted(choices))})"
