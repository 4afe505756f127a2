"""Terminal tables for `infer randread` results: the grid, rows block size, columns queue
depth, each cell 'IOPS / p99'."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from iobench.results import Result
from iobench.units import format_bytes, format_count, format_ns


def _block(p: Any) -> Any:
    return p["metrics"].get("block_bytes")


def tables(result: Result) -> list[Any]:
    cells = [p for p in result.phases if _block(p) is not None]
    bss = sorted({_block(p) for p in cells})
    qds = sorted({p["metrics"]["queue_depth"] for p in cells})
    t = Table(title=f"Random reads ({result.engine}): IOPS / p99 latency", title_justify="left")
    t.add_column("block size")
    for qd in qds:
        t.add_column(f"QD {qd}", justify="right")
    for bs in bss:
        row = [format_bytes(bs)]
        for qd in qds:
            p = next((c for c in cells if _block(c) == bs
                      and c["metrics"]["queue_depth"] == qd), None)
            row.append("-" if p is None else
                       f"{format_count(p['ops_per_s'])} / {format_ns(p['latency_ns'].get('p99'))}")
        t.add_row(*row)
    t.caption = "IOPS = reads/s; p99 of per-read latency; GB/s and p50..max per cell above"
    return [t]
