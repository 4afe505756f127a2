"""Compare results side by side: deltas in percent, and whether a delta is noise.

Without repeated runs a delta under 5% is flagged as within noise (MLPerf asks runs to
agree within 5%). Where a result carries `metrics.runs` (per-run values), the noise band
is twice the larger coefficient of variation of the two results.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from iobench.errors import UsageError
from iobench.results import Result

NOISE_PCT = 5.0

# (label, getter, higher_is_better)
_PHASE_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("GB/s", "gb_per_s", True), ("IOPS", "iops", True), ("seconds", "seconds", False),
    ("p50 us", "lat:p50", False), ("p99 us", "lat:p99", False), ("p99.9 us", "lat:p99_9", False),
)


def _get(phase: dict[str, Any], key: str) -> float | None:
    if key.startswith("lat:"):
        v = (phase.get("latency_ns") or {}).get(key[4:])
        return v / 1e3 if v is not None else None
    v = phase.get(key)
    return float(v) if isinstance(v, int | float) else None


def check_comparable(results: list[tuple[str, Result]], force: bool) -> None:
    first_label, first = results[0]
    for label, r in results[1:]:
        if (r.kind, r.name) != (first.kind, first.name) and not force:
            raise UsageError(
                f"{label} is '{r.kind} {r.name}' but {first_label} is "
                f"'{first.kind} {first.name}'; compare like with like or pass --force"
            )


def noise_pct(r: Result) -> float | None:
    runs = r.metrics.get("runs_cv_pct")
    return float(runs) if isinstance(runs, int | float) else None


def delta_rows(base: Result, other: Result) -> list[tuple[str, str, float | None, float | None,
                                                          float | None, str]]:
    """(phase, metric, base value, other value, delta %, verdict) for every shared metric."""
    noise = NOISE_PCT
    nb, no = noise_pct(base), noise_pct(other)
    if nb is not None and no is not None:
        noise = 2 * max(nb, no)
    out: list[tuple[str, str, float | None, float | None, float | None, str]] = []
    by_name = {p["name"]: p for p in other.phases}
    for p in base.phases:
        q = by_name.get(p["name"])
        if q is None:
            continue
        for label, key, higher in _PHASE_METRICS:
            a, b = _get(p, key), _get(q, key)
            if a is None or b is None:
                continue
            d = (b - a) / a * 100.0 if a else None
            if d is None:
                verdict = "-"
            elif abs(d) < noise:
                verdict = "within noise"
            else:
                verdict = "better" if (d > 0) == higher else "worse"
            out.append((p["name"], label, a, b, d, verdict))
    return out


def table(results: list[tuple[str, Result]]) -> Table:
    base_label, base = results[0]
    t = Table(title=f"compare (baseline {base_label})", title_justify="left")
    t.add_column("phase")
    t.add_column("metric")
    t.add_column(base_label, justify="right")
    for label, _ in results[1:]:
        t.add_column(label, justify="right")
        t.add_column("delta", justify="right")
        t.add_column("verdict")
    per_other = [delta_rows(base, r) for _, r in results[1:]]
    keys = [(ph, m) for ph, m, *_ in per_other[0]] if per_other else []
    for ph, m in keys:
        row: list[str] = [ph, m]
        first = True
        for rows in per_other:
            match = next((x for x in rows if x[0] == ph and x[1] == m), None)
            if match is None:
                row += (["-"] if first else []) + ["-", "-", "-"]
                first = False
                continue
            _, _, a, b, d, verdict = match
            if first:
                row.append(f"{a:.4g}")
                first = False
            row += [f"{b:.4g}", f"{d:+.1f}%" if d is not None else "-", verdict]
        t.add_row(*row)
    noise = "5% (no repeated runs)" if not all(noise_pct(r) for _, r in results) else \
        "2 x the run-to-run coefficient of variation"
    t.caption = f"noise band: {noise}; GB/s = 10^9 B/s"
    return t
