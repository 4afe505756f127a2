"""CSV export: every metric of every phase, one row each, stable column names."""

from __future__ import annotations

import csv
import io
from typing import Any

from iobench.results import Result

COLUMNS = ("result", "kind", "name", "status", "phase", "engine", "metric", "value", "unit")

_PHASE_FIELDS = (
    ("bytes", "B"), ("seconds", "s"), ("bytes_per_s", "B/s"), ("gb_per_s", "GB/s"),
    ("gib_per_s", "GiB/s"), ("ops", "count"), ("ops_per_s", "1/s"),
)


def rows(result: Result, label: str) -> list[dict[str, Any]]:
    base = {"result": label, "kind": result.kind, "name": result.name, "status": result.status}
    out: list[dict[str, Any]] = []
    for p in result.phases:
        common = {**base, "phase": p["name"], "engine": p.get("engine", "")}
        for key, unit in _PHASE_FIELDS:
            out.append({**common, "metric": key, "value": p.get(key), "unit": unit})
        for key, v in (p.get("latency_ns") or {}).items():
            unit = "count" if key == "count" else "ns"
            out.append({**common, "metric": f"latency_{key}", "value": v, "unit": unit})
        for key, v in (p.get("metrics") or {}).items():
            if isinstance(v, int | float | str | bool) or v is None:
                out.append({**common, "metric": key, "value": v, "unit": ""})
    for key, v in result.metrics.items():
        if isinstance(v, int | float | str | bool) or v is None:
            out.append({**base, "phase": "", "engine": result.engine, "metric": key,
                        "value": v, "unit": ""})
    # a suite's steps: each step's rows, labelled <suite label>/<step id>
    for child in result.children:
        c = Result.from_dict(child, source=f"{label} step")
        out += rows(c, f"{label}/{child.get('step_id') or c.kind}")
    return out


def to_csv(results: list[tuple[str, Result]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for label, r in results:
        for row in rows(r, label):
            w.writerow(row)
    return buf.getvalue()
