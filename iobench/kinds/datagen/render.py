"""Terminal tables for `datagen` results (the data set), and the --what-if plan."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from iobench.results import Result
from iobench.units import format_bytes


def tables(result: Result) -> list[Any]:
    t = Table(title="Data set", title_justify="left")
    t.add_column("item")
    t.add_column("value", justify="right")
    s = result.spec
    t.add_row("workload", f"{result.name} ({s.get('format')}, content {s.get('content')})")
    if "directory" in result.metrics:
        t.add_row("directory", str(result.metrics["directory"]))
    for k in ("files", "files_skipped", "files_total", "files_checked", "files_bad"):
        if k in result.metrics:
            t.add_row(k.replace("_", " "), str(result.metrics[k]))
    for k in ("bytes", "dataset_bytes"):
        if k in result.metrics:
            v = int(result.metrics[k])
            t.add_row(k.replace("_", " "), f"{format_bytes(v)} ({v / 1e9:.3f} GB)")
    if "gb_per_s" in result.metrics:
        t.add_row("write GB/s", f"{result.metrics['gb_per_s']:.3f}")
    return [t]


def plan_table(info: dict[str, Any]) -> Table:
    """--what-if's plan (iobench.kinds.datagen.run.plan) as a table."""
    t = Table(title=f"datagen plan: {info['workload']} (nothing written)",
              title_justify="left")
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_row("format", info["format"])
    t.add_row("files", str(info["files"]))
    t.add_row("samples", str(info["samples"]))
    stdev = info["record_bytes_stdev"]
    sd = f" ± {format_bytes(stdev)}" if stdev else ""
    t.add_row("sample size", f"{format_bytes(info['record_bytes_mean'])}{sd}")
    est = info["bytes"]
    t.add_row("data set", f"{format_bytes(est)} ({est / 1e9:.3f} GB)"
              + ("" if info["bytes_exact"] else ", estimated from the mean"))
    ram = info["host_ram_bytes"]
    t.add_row("data set / host RAM", f"{est / ram:.2f} x" if ram else "-")
    t.add_row(f"steps per epoch ({info['accelerators']} x {info['accelerator']}, batch "
              f"{info['batch_size']})", str(info["steps_per_epoch"]))
    bps = info["write_bytes_per_s"]
    t.add_row("write speed", f"{bps / 1e9:.3f} GB/s")
    est_s = est / bps if bps else 0.0
    hours = f" ({est_s / 3600:.1f} h)" if est_s >= 3600 else ""
    t.add_row("time estimate", f"{est_s:.1f} s{hours}" if bps else "-")
    verdict = "enough" if info["fits"] else "SHORT"
    t.add_row("free space", f"{format_bytes(info['free_bytes'])} ({verdict})")
    t.caption = f"write speed from {info['write_speed_source']}; " + "; ".join(info["sizing"])
    return t
