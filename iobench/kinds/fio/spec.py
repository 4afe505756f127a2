"""What `iobench fio JOBFILE` runs: a job file, checked, inside the target."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench.errors import UsageError


@dataclass(frozen=True)
class Spec:
    jobfile: Path
    timeout: float | None = None  # seconds; fio is stopped after it (the run fails)

    def validate(self) -> Spec:
        if self.timeout is not None and (not math.isfinite(self.timeout)
                                         or self.timeout <= 0):
            raise UsageError(f"--timeout {self.timeout}: give a number of seconds > 0")
        if not self.jobfile.is_file():
            what = "is a directory" if self.jobfile.is_dir() else "no such file"
            raise UsageError(f"JOBFILE {self.jobfile}: {what}; give the path of an fio job "
                             "file")
        return self

    def text(self) -> str:
        try:
            return self.jobfile.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"JOBFILE {self.jobfile}: cannot read it as text ({e})") from None


def build(jobfile: str | Path, timeout: float | None = None, **extra: Any) -> Spec:
    if extra:
        raise UsageError(f"fio: unknown option {sorted(extra)[0]!r}")
    return Spec(Path(jobfile), None if timeout is None else float(timeout)).validate()
