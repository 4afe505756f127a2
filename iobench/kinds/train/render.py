"""Terminal tables for `train` results: the AU verdict and headline figures, epochs, runs,
the find-max search, checkpoints in and out of their windows, and the per-second timeline
(iobench.report.terminal finds `tables` through the kinds table)."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from iobench.kinds.train.figures import window_bins
from iobench.results import Result
from iobench.units import format_ns

TIMELINE_ROWS = 40  # longer timelines are shown in coarser bins


def _pct(v: Any) -> str:
    return f"{v:.1f}%" if isinstance(v, int | float) else "n/a"


def _verdict(au: Any, passed: Any, threshold: Any) -> Text:
    if au is None:
        return Text("n/a (no compute time: data path only)")
    t = Text(f"{au:.1f}% (threshold {threshold:g}%: ")
    t.append("PASS" if passed else "FAIL", style="bold green" if passed else "bold red")
    t.append(")")
    return t


def summary_table(r: Result) -> Table:
    mt = r.metrics
    opts = (r.spec.get("options") or {})
    t = Table(title="Training replay", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    if mt.get("find_max_statement"):
        t.add_row("find-max", Text(mt["find_max_statement"], style="bold"))
    t.add_row("accelerators",
              f"{mt.get('accelerators', '?')} x {mt.get('accelerator', '?')}")
    if "compute_s" in mt:
        t.add_row("compute per step", f"{mt['compute_s'] * 1e3:.3g} ms "
                  f"({opts.get('compute_source', '')})")
    if mt.get("accelerators_fed") == 0:
        t.add_row("AU (first step excluded)",
                  Text("no accelerator count met the threshold", style="bold red"))
    elif "au_with_checkpoint_stalls_pct" in mt:  # --dlio-config: MLPerf's AU is the verdict
        t.add_row("AU, MLPerf (checkpoint stalls excluded)",
                  _verdict(mt.get("au_pct"), mt.get("au_pass"), mt.get("au_threshold_pct", 0)))
        t.add_row("AU with the checkpoint stalls",
                  _verdict(mt["au_with_checkpoint_stalls_pct"],
                           mt.get("au_pass_with_checkpoint_stalls"),
                           mt.get("au_threshold_pct", 0)))
    else:
        t.add_row("AU (first step excluded)",
                  _verdict(mt.get("au_pct"), mt.get("au_pass"), mt.get("au_threshold_pct", 0)))
    if "samples_per_s" in mt:
        t.add_row("samples/s", f"{mt['samples_per_s']:.1f}")
        t.add_row("read throughput (measured)",
                  f"{mt['gb_per_s']:.3f} GB/s  ({mt['gib_per_s']:.3f} GiB/s)")
        t.add_row("read latency p50 / p99",
                  f"{format_ns(mt['read_p50_us'] * 1e3)} / {format_ns(mt['read_p99_us'] * 1e3)}")
        t.add_row("data wait per step p50 / p99",
                  f"{format_ns(mt['data_wait_p50_us'] * 1e3)} / "
                  f"{format_ns(mt['data_wait_p99_us'] * 1e3)}")
        cl = Text(f"{mt['cpu_util_pct']:.0f}% of the client's cores")
        if mt.get("client_limited"):
            cl.append("  CLIENT-LIMITED", style="bold yellow")
        if mt.get("client_limited_why"):
            cl.append(f"  ({mt['client_limited_why']})")
        t.add_row("client CPU", cl)
        t.add_row("decode", "yes (framework parsing)" if mt.get("decode") else "no (bytes only)")
    res = r.cache.get("resident_start_pct") if r.cache else None
    if isinstance(res, int | float):
        t.add_row("page cache at start (measured)",
                  f"{res:.1f}% of the data set resident ({r.cache.get('resident_method')})")
    if "runs_cv_pct" in mt:
        agree = Text("agree within 5%" if mt["runs_agree"] else "DO NOT agree within 5%",
                     style="green" if mt["runs_agree"] else "bold yellow")
        t.add_row(f"{len(mt['runs'])} runs (warm-up excluded)",
                  Text(f"{mt['runs_mean_samples_per_s']:.1f} +- "
                       f"{mt['runs_stdev_samples_per_s']:.1f} samples/s, "
                       f"CV {mt['runs_cv_pct']:.1f}%, ") + agree)
    if "raw_gb_per_s" in mt:
        ratio = mt.get("train_to_raw")
        t.add_row("raw capability (fio, same files)",
                  f"{mt['raw_gb_per_s']:.3f} GB/s"
                  + (f"; training gets {ratio * 100:.0f}% of it" if ratio else ""))
    t.caption = "GB/s = 10^9 B/s, GiB/s = 2^30 B/s, from the bytes the reads returned"
    return t


def epochs_table(r: Result) -> Table | None:
    rows = [p for p in r.phases if p.get("direction") == "read" and "au_pct" in
            (p.get("metrics") or {}) and p["name"] != "train"]
    if not rows:
        return None
    t = Table(title="Epochs", title_justify="left")
    for col in ("phase", "steps", "samples/s", "GB/s", "AU", "pass", "wait p99", "CPU",
                "cached at start"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    for p in rows:
        pm = p["metrics"]
        w = (pm.get("data_wait_ns") or {}).get("p99")
        ok = pm.get("au_pass")
        t.add_row(p["name"], str(pm.get("steps", "")), f"{pm['samples_per_s']:.1f}",
                  f"{p['gb_per_s']:.3f}", _pct(pm.get("au_pct")),
                  "-" if ok is None else ("yes" if ok else "NO"), format_ns(w),
                  f"{pm.get('cpu_util_pct', 0):.0f}%", _pct(pm.get("resident_start_pct")))
    return t


def findmax_table(r: Result) -> Table | None:
    probes = r.metrics.get("find_max_probes")
    if not probes:
        return None
    t = Table(title="find-max search", title_justify="left")
    for col in ("run", "accelerators", "AU", "meets threshold", "samples/s", "GB/s"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for p in probes:
        t.add_row(p["kind"], str(p["accelerators"]), _pct(p["au_pct"]),
                  "yes" if p["passed"] else "no", f"{p['samples_per_s']:.1f}",
                  f"{p['bytes_per_s'] / 1e9:.3f}")
    t.caption = "probes are short runs; the answer is confirmed by a full run"
    return t


def checkpoint_tables(r: Result) -> list[RenderableType]:
    ck = next((p for p in r.phases if p["name"] == "checkpoint"), None)
    train = next((p for p in r.phases if p["name"] == "train"), None)
    if ck is None:
        return []
    cm = ck["metrics"]
    t = Table(title=f"Checkpoints ({cm['mode']}, every {cm['every_steps']} steps)",
              min_width=44,
              title_justify="left")
    for col in ("#", "write s", "stall s"):
        t.add_column(col, justify="right")
    for i, (w, s) in enumerate(zip(cm["write_s"], cm["stall_s"], strict=False)):
        t.add_row(str(i + 1), f"{w:.3f}", f"{s:.3f}")
    out: list[RenderableType] = [t]
    bare = train["metrics"].get("au_without_checkpoint_stalls_pct") if train else None
    if train is not None and bare is not None:
        out.append(Text(f"AU without the checkpoint stalls: {bare:.1f}% "
                        f"(with them: {_pct(train['metrics']['au_pct'])})"))
    if train is not None and "in_window" in train["metrics"]:
        w = Table(title="Reads inside vs outside checkpoint windows", title_justify="left")
        for col in ("", "GB/s", "read p50", "read p99", "seconds"):
            w.add_column(col, justify="left" if not col else "right")
        for label, key in (("inside", "in_window"), ("outside", "out_of_window")):
            d = train["metrics"][key]
            w.add_row(label, "-" if d["gb_per_s"] is None else f"{d['gb_per_s']:.3f}",
                      format_ns(d["p50_us"] * 1e3 if d["p50_us"] is not None else None),
                      format_ns(d["p99_us"] * 1e3 if d["p99_us"] is not None else None),
                      f"{d['seconds']:.2f}")
        out.append(w)
    return out


def timeline_text(r: Result) -> Text | None:
    train = next((p for p in r.phases if p["name"] == "train"), None)
    if train is None or not train.get("timeline"):
        return None
    tl = train["timeline"]
    interval, bins = float(tl["interval_s"]), list(tl["bytes"])
    if not bins:
        return None
    group = max(1, -(-len(bins) // TIMELINE_ROWS))
    windows = train["metrics"].get("checkpoint_windows_s") or []
    marks = window_bins(windows, interval, len(bins))
    span = float(train["metrics"].get("timeline_span_s") or len(bins) * interval)
    rows = []
    for i in range(0, len(bins), group):
        # the last bin is only as long as the run lasted into it
        secs = max(min(group * interval, span - i * interval), 1e-3)
        rows.append((i * interval, sum(bins[i:i + group]) / secs, any(marks[i:i + group])))
    peak = max(b for _, b, _ in rows) or 1.0
    t = Text(f"Read throughput per {group * interval:g} s"
             + ("  (# = a checkpoint was being written)" if windows else "") + "\n",
             style="bold")
    for start, bps, mark in rows:
        bar = "█" * int(round(30 * bps / peak))
        t.append(f"{start:7.0f}s {bps / 1e9:8.3f} GB/s {'#' if mark else ' '} {bar}\n")
    return t


def tables(r: Result) -> list[RenderableType]:
    out: list[RenderableType] = [summary_table(r)]
    for extra in (epochs_table(r), findmax_table(r)):
        if extra is not None:
            out.append(extra)
    out.extend(checkpoint_tables(r))
    tl = timeline_text(r)
    if tl is not None:
        out.append(tl)
    return out

