"""Terminal tables for `infer load` results: precisions side by side (size ratio vs time
ratio, residency at start), and replicas loading at once."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from iobench.results import Result
from iobench.units import format_bytes, format_ns


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}%"


def tables(result: Result) -> list[Any]:
    loads = [p for p in result.phases if "state" in p["metrics"]
             and "replicas" not in p["metrics"]]
    out: list[Any] = []
    t = Table(title="Model load: precisions side by side (ratios vs the first precision, "
                    "same method and cache state)", title_justify="left")
    for col in ("precision", "method", "state", "resident at start", "tensors", "size",
                "size ratio", "load s", "time ratio", "GB/s", "first tensor", "p99/read"):
        t.add_column(col, justify="left" if col in ("precision", "method", "state") else "right")
    base: dict[tuple[str, str], float] = {}
    for p in loads:
        mt = p["metrics"]
        k = (mt["method"], mt["state"])
        base.setdefault(k, p["seconds"])
        b0 = base[k]
        t.add_row(mt["precision"], mt["method"], mt["state"],
                  _pct(mt.get("resident_start_pct")), str(mt["tensors"]),
                  format_bytes(p["bytes"]), f"{mt['size_ratio']:.3f}", f"{p['seconds']:.3f}",
                  f"{p['seconds'] / b0:.3f}" if b0 else "-",
                  f"{p['gb_per_s']:.2f}" + (" touched" if mt.get("throughput_kind") ==
                                            "touched bytes/s" else ""),
                  f"{mt['first_tensor_s'] * 1e3:.1f} ms", format_ns(p["latency_ns"].get("p99")))
    t.caption = ("resident at start: the weight files' share in the page cache when the "
                 "load began (measured); GB/s = 10^9 B/s of file bytes; 'touched' (mmap, "
                 "gguf): every 4 KiB page mapped and one byte of it read, no copy: from the "
                 "page cache that is page-mapping speed, not bytes moved; time ratio < size "
                 "ratio means per-tensor or per-file overhead dominates; p99 is per read "
                 "(read/pread/direct) or per tensor (mmap, libraries)")
    out.append(t)
    reps = [p for p in result.phases if "replicas" in p["metrics"]]
    if reps:
        r = Table(title="Replicas cold-loading at once", title_justify="left")
        for col in ("precision", "method", "replicas", "resident at start",
                    "aggregate GB/s", "ready p50", "ready p99", "ready max"):
            r.add_column(col, justify="left" if col in ("precision", "method") else "right")
        for p in reps:
            mt = p["metrics"]
            r.add_row(mt["precision"], mt["method"], str(mt["replicas"]),
                      _pct(mt.get("resident_start_pct")),
                      f"{mt['aggregate_gb_per_s']:.2f}", f"{mt['ready_p50_s']:.3f} s",
                      f"{mt['ready_p99_s']:.3f} s", f"{mt['ready_max_s']:.3f} s")
        out.append(r)
    return out
