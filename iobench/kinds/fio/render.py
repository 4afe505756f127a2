"""The terminal table of `fio` results: the job file, fio's version, per-direction sums."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table

from iobench.results import Result
from iobench.units import format_bytes, format_count


def tables(result: Result) -> list[RenderableType]:
    t = Table(title="fio", title_justify="left", show_header=False)
    t.add_column("key")
    t.add_column("value")
    t.add_row("job file", str(result.spec.get("jobfile")))
    t.add_row("directory", str(result.spec.get("directory")))
    t.add_row("fio", str(result.metrics.get("fio_version")))
    for k, v in result.metrics.items():
        if k == "fio_version":
            continue
        if k.endswith("_bytes"):
            shown = format_bytes(v)
        elif k.endswith("_ops_per_s"):
            shown = format_count(v)
        else:
            shown = f"{v:.3f}" if isinstance(v, float) else str(v)
        t.add_row(k, shown)
    return [t]
