"""Terminal tables for `checkpoint` results: the plan, the checkpoints, the slowest and
fastest ranks, and the checkpoint interval with the training time it costs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import RenderableType
from rich.table import Table

from iobench.kinds.checkpoint.metrics import RANK_ROW_RENAMES
from iobench.results import Result
from iobench.units import format_bytes, format_ns


def _gbps(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e9:.3f}"


def _row(row: Mapping[str, Any], key: str) -> Any:
    """A per-rank row's field, under its v1 name in an upgraded old result."""
    if key in row:
        return row[key]
    old = next((o for o, n in RANK_ROW_RENAMES.items() if n == key), None)
    return row.get(old) if old else None


def plan_table(d: Mapping[str, Any]) -> Table:
    t = Table(title="Checkpoint plan", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    n = d["params"]
    t.add_row("model", f"{d['model']}: " + (f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.3f} M")
              + " parameters")
    t.add_row("model checkpoint", f"{d['model_gb']:.2f} GB = {d['model_gib']:.2f} GiB")
    if d.get("vs_mlperf"):
        t.add_row("MLPerf Storage lists", f"{d['mlperf_total_gib']:.0f} GiB (printed as GB); "
                  f"ours is {100 * (d['vs_mlperf'] - 1):+.1f}%")
    t.add_row("parallelism", f"TP {d['tp']} x PP {d['pp']} x DP {d['dp']} = {d['world']}, "
              f"ZeRO-{d['zero']}, layout {d['layout']}")
    t.add_row("ranks (processes)", f"{d['ranks']} ({d['mode']}"
              + (f", scale {d['scale']:g}" if d["scale"] != 1 else "") + ")")
    t.add_row("files per checkpoint", str(d["files_per_checkpoint"]))
    t.add_row("bytes per rank", f"{format_bytes(d['rank_bytes_min'])} .. "
              f"{format_bytes(d['rank_bytes_max'])}")
    t.add_row("written per checkpoint", f"{d['checkpoint_gb']:.3f} GB = "
              f"{d['checkpoint_gib']:.3f} GiB ({d['checkpoint_bytes']} bytes)")
    t.add_row("checkpoints", f"{d['count']}" + (f", keeping the last {d['keep']}"
                                                 if d["keep"] else ", all kept"))
    t.add_row("peak on disk", format_bytes(d["peak_disk_bytes"]))
    return t


def tables(result: Result) -> list[RenderableType]:
    out: list[RenderableType] = []
    plan = result.spec.get("plan")
    if plan:
        out.append(plan_table(plan))
    phases = [p for p in result.phases if p["direction"] in ("write", "read")]
    if phases:
        t = Table(title="Checkpoints (duration = slowest rank; rank GB/s = slowest rank; "
                        "aggregate = bytes / (last end - first start))", title_justify="left")
        for col in ("phase", "step", "seconds", "fsync s", "stall s", "GB/s", "rank min GB/s",
                    "aggregate GB/s", "p99", "verified"):
            t.add_column(col, justify="left" if col == "phase" else "right")
        for p in phases:
            pm = p["metrics"]
            stall = pm.get("stall_max_s") if pm.get("async") else None
            t.add_row(
                p["name"], str(pm.get("step", "")), f"{p['seconds']:.3f}",
                f"{pm['fsync_max_s']:.3f}" if pm.get("fsync_max_s") is not None else "-",
                f"{stall:.3f}" if stall is not None else "-",
                _gbps(p["bytes_per_s"]), _gbps(pm.get("rank_min_bytes_per_s")),
                _gbps(pm.get("aggregate_bytes_per_s")),
                format_ns((p.get("latency_ns") or {}).get("p99")),
                ("-" if p["direction"] == "write" else
                 f"{pm.get('verified_files', 0) - pm.get('verify_errors', 0)}"
                 f"/{pm.get('verified_files', 0)}"))
        m = result.metrics
        nwrites = len([p for p in phases if p["direction"] == "write"])
        if m.get("write_last_vs_first") and nwrites > 1:
            t.caption = (f"last vs first write: {m['write_first_s']:.3f} s -> "
                         f"{m['write_last_s']:.3f} s "
                         f"(throughput x{m['write_last_vs_first']:.3f})")
        out.append(t)
    for direction in ("write", "read"):
        last = next((p for p in reversed(phases) if p["direction"] == direction), None)
        if last is None or not last["metrics"].get("ranks"):
            continue
        t = Table(title=f"Per rank ({last['name']})", title_justify="left")
        cols = ["rank", "bytes", "files", "seconds", "GB/s"]
        cols += ["fsync s", "stall s"] if direction == "write" else ["read rank's files"]
        cols += ["peak RSS growth"]
        for col in cols:
            t.add_column(col, justify="right")
        rows = last["metrics"]["ranks"]
        shown = rows if len(rows) <= 32 else rows[:16] + rows[-16:]
        for row in shown:
            cells = [str(row["rank"]), format_bytes(row["bytes"]), str(row["files"]),
                     f"{row['seconds']:.3f}", _gbps(row["bytes_per_s"])]
            if direction == "write":
                fs, st = _row(row, "fsync_s"), _row(row, "stall_s")
                cells += [f"{fs:.3f}" if fs is not None else "-",
                          f"{st:.3f}" if st is not None and last["metrics"].get("async")
                          else "-"]
            else:
                cells += [str(row.get("source_rank", row["rank"]))]
            growth = (row["peak_rss_bytes"] - (row.get("base_rss_bytes") or 0)
                      if row.get("peak_rss_bytes") else None)  # fio rows have none
            cells.append(format_bytes(growth) if growth is not None else "-")
            t.add_row(*cells)
        if len(rows) > 32:
            t.caption = f"{len(rows)} ranks: the first and last 16 shown"
        out.append(t)
    m = result.metrics
    if m.get("young_interval_s") is not None:
        t = Table(title="Checkpoint interval and lost training time", title_justify="left",
                  show_header=False)
        t.add_column("what")
        t.add_column("value", justify="right")
        if m.get("mtbf_s") is not None:
            src = f" ({m['mtbf_source']})" if m.get("mtbf_source") else ""
            t.add_row("job MTBF", f"{m['mtbf_s'] / 3600:.2f} h{src}")
        if m.get("write_s") is not None:
            t.add_row("checkpoint duration (measured)", f"{m['write_s']:.3f} s")
        if m.get("read_s") is not None:
            t.add_row("restore duration (measured)", f"{m['read_s']:.3f} s")
        t.add_row("Young interval sqrt(2 delta M)", _dur(m["young_interval_s"]))
        if m.get("daly_interval_s") is not None:
            t.add_row("Daly interval", _dur(m["daly_interval_s"]))
        if m.get("waste_pct") is not None:
            daly = (f", {m['waste_daly_pct']:.2f}% (Daly)"
                    if m.get("waste_daly_pct") is not None else "")
            t.add_row("training time lost at that interval",
                      f"{m['waste_pct']:.2f}% (Young){daly}")
        if m.get("async_young_interval_s") is not None and m.get("stall_s") is not None:
            t.add_row("async: stall only",
                      f"{m['stall_s']:.3f} s -> interval "
                      f"{_dur(m['async_young_interval_s'])}, "
                      f"{m['async_waste_pct']:.2f}% lost")
        out.append(t)
    return out


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"
