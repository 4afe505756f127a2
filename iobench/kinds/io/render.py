"""Terminal tables for `io` results: the phases table is common; this adds what was
verified (achieved depth, residency, byte audit, CPU per GB)."""

from __future__ import annotations

from typing import Any

from iobench import verify
from iobench.results import Result


def tables(result: Result) -> list[Any]:
    t = verify.table(result.phases)
    return [t] if t is not None else []
