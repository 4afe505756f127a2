"""Rich tables for results: throughput in GB/s and GiB/s, IOPS, latency percentiles.

Formatters return Rich renderables and are testable without a terminal; `render` prints
them. Workload modules register extra tables per result kind with `register`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from iobench.results import Result
from iobench.units import format_bytes, format_count, format_ns

_EXTRA: dict[str, Callable[[Result], list[RenderableType]]] = {}


def register(kind: str, fn: Callable[[Result], list[RenderableType]]) -> None:
    """Add workload-specific tables for results of `kind` (shown after the phases)."""
    _EXTRA[kind] = fn


def kind_tables(kind: str) -> Callable[[Result], list[RenderableType]] | None:
    """A kind's own tables: iobench.kinds.<kind>.render.tables (the kinds table), else one
    registered by a command module not yet moved there."""
    from iobench import kinds

    mod = kinds.module(kind, "render")
    fn = getattr(mod, "tables", None) if mod is not None else None
    return fn if fn is not None else _EXTRA.get(kind)


def console(stderr: bool = False) -> Console:
    """A console that is wide enough for the tables even when output is piped."""
    con = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not con.is_terminal:
        con = Console(stderr=stderr, highlight=False, soft_wrap=False, width=160)
    return con


def header(result: Result) -> Text:
    state = result.status
    style = {"ok": "bold green", "partial": "bold yellow", "failed": "bold red"}[state]
    t = Text()
    t.append(f"iobench {result.kind} {result.name}", style="bold")
    t.append(f"  engine={result.engine}  status=")
    t.append(state.upper(), style=style)
    if result.reason:
        t.append(f" ({result.reason})")
    c = result.cache
    if c:
        t.append(f"\ncache: {c.get('policy')} via {c.get('method')}; {c.get('note', '')}")
        if c.get("may_be_cached"):
            t.append("  [MAY BE FROM RAM]", style="bold yellow")
    if result.audit:
        from iobench.verify import audit_line

        line = audit_line(result.audit)
        if line:
            t.append(f"\n{line}", style=None if result.audit.get("agrees") else "yellow")
    for w in result.warnings:
        t.append(f"\nwarning: {w}", style="yellow")
    return t


def phases_table(phases: Sequence[Mapping[str, Any]], title: str = "Phases") -> Table:
    t = Table(title=title, title_justify="left")
    for col, just in (
        ("phase", "left"), ("engine", "left"), ("bytes", "right"), ("s", "right"),
        ("GB/s", "right"), ("GiB/s", "right"), ("IOPS", "right"), ("p50", "right"),
        ("p99", "right"), ("p99.9", "right"), ("max", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    per_op = False
    for p in phases:
        lat = p.get("latency_ns") or {}
        # a phase whose ops are not I/Os (metrics.op_unit, e.g. "query": one query is
        # many reads) shows its rate as such, never as IOPS
        unit = (p.get("metrics") or {}).get("op_unit")
        rate = format_count(p.get("ops_per_s", 0.0))
        if unit:
            rate = f"{rate} {unit}/s"
            per_op = True
        t.add_row(
            p["name"], p.get("engine", ""), format_bytes(p["bytes"]), f"{p['seconds']:.3f}",
            f"{p['bytes_per_s'] / 1e9:.3f}", f"{p['bytes_per_s'] / 2**30:.3f}",
            rate, format_ns(lat.get("p50")),
            format_ns(lat.get("p99")), format_ns(lat.get("p99_9")), format_ns(lat.get("max")),
        )
    t.caption = "GB/s = 10^9 B/s, GiB/s = 2^30 B/s; latency per I/O (completion)"
    if per_op:
        t.caption += ("; rows with a unit in the IOPS column (query/s) count that unit, "
                      "not I/Os, and their latency is per that unit")
    return t


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def metrics_table(metrics: Mapping[str, Any], title: str = "Metrics") -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in metrics.items():
        if isinstance(v, dict | list):
            continue
        t.add_row(k, _num(v))
    return t


def renderables(result: Result) -> list[RenderableType]:
    out: list[RenderableType] = [header(result)]
    if result.phases:
        out.append(phases_table(result.phases))
    extra = kind_tables(result.kind)
    if extra is not None:
        out.extend(extra(result))
    elif result.metrics:
        out.append(metrics_table(result.metrics))
    return out


def render(result: Result, con: Console | None = None) -> None:
    (con or console()).print(Group(*renderables(result)))
