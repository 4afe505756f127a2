"""Terminal tables for `infer vector` results: mode 1's search sweep (one row per beam
width x complexity x cache state) and mode 2's QPS-vs-p99 curve. Queries per second
and per-read IOPS are separate columns: a query is many reads."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table

from iobench.kinds.vector.spec import RECALL_TARGET, SECTOR
from iobench.results import Result
from iobench.units import format_bytes, format_ns


def _us(v: Any) -> str:
    return format_ns(v * 1e3) if isinstance(v, int | float) else "-"


def _without_budget(b: dict[str, Any] | None) -> str:
    if not b:
        return ""
    return (f" (best at that recall, any p99: {b['queries_per_s']:.1f} queries/s at "
            f"W={b['beam_width']} L={b['complexity']}, p99 {_us(b['p99_us'])})")


def tables(result: Result) -> list[RenderableType]:
    if result.engine == "diskann":
        return _diskann(result)
    return _pattern(result)


def _diskann(result: Result) -> list[RenderableType]:
    out: list[RenderableType] = []
    t = Table(title="DiskANN search (diskannpy StaticDiskIndex): one row per beam width x "
                    "complexity x cache state", title_justify="left")
    for col in ("W", "L", "state", "queries/s", "recall@10", "p50", "p99", "p99.9",
                "4 KiB reads/q", "KiB read/q", "reads/s"):
        t.add_column(col, justify="left" if col == "state" else "right")
    for p in result.phases:
        m = p.metrics
        if "recall_at_10" not in m or "threads" in m:
            continue
        lat = p.latency_ns
        reads_s = m["reads_4k_per_query"] * m["queries_per_s"]
        t.add_row(str(m["beam_width"]), str(m["complexity"]), m["state"],
                  f"{m['queries_per_s']:.1f}", f"{m['recall_at_10']:.3f}",
                  format_ns(lat.get("p50")), format_ns(lat.get("p99")),
                  format_ns(lat.get("p99_9")), f"{m['reads_4k_per_query']:.1f}",
                  f"{m['query_read_bytes'] / 1024:.1f}", f"{reads_s:.0f}")
    r = result.metrics
    h = r.get("headline")
    t.caption = ("queries/s = queries per second (a query is many reads); latency per query; "
                 "reads measured from /proc/self/io (not DiskANN's own count), reads/s = "
                 "4 KiB reads per second. Headline: " +
                 (f"{h['queries_per_s']:.1f} queries/s at W={h['beam_width']} "
                  f"L={h['complexity']} ({h['state']}), recall@10 {h['recall_at_10']:.3f}, "
                  f"p99 {_us(h['p99_us'])}, {h['reads_4k_per_query']:.1f} reads/query"
                  if h else f"no setting met recall@10 >= {RECALL_TARGET} within "
                  f"{_us(r.get('latency_budget_us', 0))} p99" +
                  _without_budget(r.get("best_at_recall"))) +
                 f". Build {r.get('build_s', 0):.1f} s"
                 f"{' (reused)' if r.get('index_reused') else ''}, index "
                 f"{format_bytes(r.get('index_bytes', 0))}.")
    out.append(t)
    procs = [p for p in result.phases if "procs" in p.metrics]
    if procs:
        tt = Table(title="DiskANN concurrency (--search-procs): P searcher processes, "
                         "each query timed", title_justify="left")
        for col in ("procs", "in flight", "W", "L", "state", "queries/s", "recall@10",
                    "p50", "p99", "4 KiB reads/q"):
            tt.add_column(col, justify="left" if col == "state" else "right")
        for p in procs:
            m = p.metrics
            tt.add_row(str(m["procs"]), str(m["concurrency"]), str(m["beam_width"]),
                       str(m["complexity"]), m["state"], f"{m['queries_per_s']:.1f}",
                       f"{m['recall_at_10']:.3f}", format_ns(p.latency_ns.get("p50")),
                       format_ns(p.latency_ns.get("p99")), f"{m['reads_4k_per_query']:.1f}")
        tt.caption = ("queries/s vs p99 as queries in flight grow (processes x MPI ranks); "
                      "reads: the sum of the processes' own /proc/self/io")
        out.append(tt)
    return out


def _pattern(result: Result) -> list[RenderableType]:
    t = Table(title="DiskANN read pattern (no engine): queries/s vs p99 over concurrency",
              title_justify="left")
    for col in ("queries in flight", "queries/s", "query p50", "query p99", "read p50",
                "read p99", "read IOPS", "GB/s", "fio IOPS", "fio read p99"):
        t.add_column(col, justify="right")
    fio = {p.metrics.get("concurrency"): p for p in result.phases
           if p.name.startswith("fio ")}
    for p in result.phases:
        m = p.metrics
        if not p.name.startswith("pattern"):
            continue
        f = fio.get(m["concurrency"])
        t.add_row(str(m["concurrency"]), f"{m['queries_per_s']:.1f}",
                  format_ns(p.latency_ns.get("p50")), format_ns(p.latency_ns.get("p99")),
                  format_ns(m["read_latency_ns"].get("p50")),
                  format_ns(m["read_latency_ns"].get("p99")), f"{m['reads_per_s']:.0f}",
                  f"{p.gb_per_s:.3f}", f"{f.ops_per_s:.0f}" if f else "-",
                  format_ns(f.latency_ns.get("p99")) if f else "-")
    sp = result.spec
    t.caption = (f"{sp.get('hops')} rounds x {sp.get('beam_width')} reads of "
                 f"{format_bytes(sp.get('sector', SECTOR))} per query (O_DIRECT); "
                 "queries/s = queries per second, read IOPS = reads per second; GB/s = "
                 "10^9 B/s; fio: randread at queue depth = queries in flight x beam width")
    return [t]
