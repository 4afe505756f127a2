"""Compare results side by side: deltas in percent, and whether a delta is noise.

The noise band a delta must exceed, per metric, from the best evidence available:
  1. both results carry per-run values (`metrics.runs`, a list of {metric: value} from
     `--runs`): Welch's t-test band, t(0.975, df) * sqrt(sA^2/nA + sB^2/nB) / |mean A|,
     with df from the Welch-Satterthwaite equation (a two-sided 95% band; with 3 runs a
     side t is 2.78, not the 2 a normal approximation would use); the means are compared;
  2. both carry `metrics.runs_cv_pct`: twice the larger coefficient of variation, but
     never under 5% (the CV is of the headline rate; it says little about, e.g., a p99);
  3. otherwise 5% (MLPerf asks repeated runs to agree within 5%).
Suites are compared step by step (children matched by step id).

Whether higher is better comes from the metric's declaration (iobench.kinds.suite.declared
`BETTER`) where one exists, else from its unit suffix; a metric declared neutral (a size,
a count, an interval) is reported as "changed", never as better or worse.

Results are compared only when they measured the same thing the same way: same kind and
workload, engine, cache policy, may-be-cached verdict and host; `--force` overrides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from iobench import kinds
from iobench.errors import UsageError
from iobench.results import Result

NOISE_PCT = 5.0

# (label, getter, higher_is_better)
_PHASE_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("GB/s", "gb_per_s", True), ("IOPS", "ops_per_s", True), ("seconds", "seconds", False),
    ("p50 us", "lat:p50", False), ("p99 us", "lat:p99", False), ("p99.9 us", "lat:p99_9", False),
)


@dataclass(frozen=True)
class Value:
    mean: float
    stdev: float | None = None  # per-run sample stdev, when runs were repeated
    n: int = 1


Row = tuple[str, str, float | None, float | None, float | None, str]


def _get(phase: Mapping[str, Any], key: str) -> float | None:
    if key.startswith("lat:"):
        v = (phase.get("latency_ns") or {}).get(key[4:])
        return v / 1e3 if v is not None else None
    v = phase.get(key)
    return float(v) if isinstance(v, int | float) else None


# Two-sided 95% critical values of Student's t, t(0.975, df) (any statistics table, e.g.
# NIST/SEMATECH e-Handbook 1.4.2.1 table); df between entries rounds down (conservative).
_T975: tuple[tuple[int, float], ...] = (
    (1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (6, 2.447), (7, 2.365),
    (8, 2.306), (9, 2.262), (10, 2.228), (11, 2.201), (12, 2.179), (13, 2.160),
    (14, 2.145), (15, 2.131), (16, 2.120), (17, 2.110), (18, 2.101), (19, 2.093),
    (20, 2.086), (25, 2.060), (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980),
)


def t_critical(df: float) -> float:
    """t(0.975, df): the two-sided 95% critical value; 1.96 past 120 degrees of freedom."""
    if not df >= 1:
        return _T975[0][1]
    best = _T975[0][1]
    for d, t in _T975:
        if df >= d:
            best = t
    return best if df < 1000 else 1.960


def welch_df(a: Value, b: Value) -> float:
    """Welch-Satterthwaite degrees of freedom of the difference of two means."""
    va, vb = (a.stdev or 0.0) ** 2 / a.n, (b.stdev or 0.0) ** 2 / b.n
    if va + vb == 0:
        return float(a.n + b.n - 2)
    den = (va ** 2 / (a.n - 1) if a.n > 1 else 0.0) + (vb ** 2 / (b.n - 1) if b.n > 1 else 0.0)
    return (va + vb) ** 2 / den if den else float(a.n + b.n - 2)


def direction(metric: str, kind: str | None = None) -> bool | None:
    """True: higher is better; False: lower is better; None: neither (a count, a size,
    a setting) or not declared: the kind's declaration (iobench/kinds/<kind>/metrics.py)
    is the only source, no guessing from the name."""
    declared = kinds.better(kind, metric)
    if declared is None or declared == "neither":
        return None
    return declared == "higher"


def _identity(r: Result) -> dict[str, Any]:
    """What two results must share to be compared: what was measured, and how."""
    return {
        "workload": f"{r.kind} {r.name}",
        "engine": r.engine,
        "cache policy": (r.cache or {}).get("policy"),
        "may-be-cached verdict": (r.cache or {}).get("may_be_cached"),
        "host": (r.sysinfo or {}).get("host"),
    }


def check_comparable(results: list[tuple[str, Result]], force: bool) -> None:
    if force:
        return
    first_label, first = results[0]
    want = _identity(first)
    for label, r in results[1:]:
        got = _identity(r)
        for what, v in want.items():
            if got[what] != v:
                raise UsageError(
                    f"{label} has {what} {got[what]!r} but {first_label} has {v!r}; "
                    "compare like with like or pass --force"
                )


def noise_pct(r: Result) -> float | None:
    runs = r.metrics.get("runs_cv_pct")
    return float(runs) if isinstance(runs, int | float) else None


def run_values(r: Result) -> dict[str, Value]:
    """Per-metric mean and stdev over `metrics.runs` (a list of {metric: value} dicts)."""
    runs = r.metrics.get("runs")
    if not isinstance(runs, list):
        return {}
    cols: dict[str, list[float]] = {}
    for run in runs:
        if not isinstance(run, dict):
            continue
        for k, v in run.items():
            if k != "run" and isinstance(v, int | float) and not isinstance(v, bool):
                cols.setdefault(k, []).append(float(v))
    out = {}
    for k, vals in cols.items():
        if len(vals) >= 2:
            m = sum(vals) / len(vals)
            sd = math.sqrt(sum((x - m) ** 2 for x in vals) / (len(vals) - 1))
            out[k] = Value(m, sd, len(vals))
    return out


def _flatten(r: Result, prefix: str = "") -> dict[tuple[str, str], tuple[Value, bool | None]]:
    """(section, metric) -> value and direction; sections are phases, 'result' and steps."""
    out: dict[tuple[str, str], tuple[Value, bool | None]] = {}
    for p in r.phases:
        for label, key, higher in _PHASE_METRICS:
            v = _get(p, key)
            if v is not None:
                out[(f"{prefix}{p['name']}", label)] = (Value(v), higher)
    runs = run_values(r)
    for k, v in r.metrics.items():
        if k.startswith("runs") or k.startswith("criteria") or k.startswith("steps"):
            continue
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[(f"{prefix}result", k)] = (runs.get(k, Value(float(v))), direction(k, r.kind))
    for child in r.children:
        c = Result.from_dict(child, source="suite step")
        sid = child.get("step_id") or f"{c.kind}-{c.name}"
        out.update(_flatten(c, f"{sid}/"))
    return out


def _band(a: Value, b: Value, base: Result, other: Result) -> tuple[float, str]:
    """Noise band in % of the baseline, and where it came from."""
    if a.stdev is not None and b.stdev is not None and a.mean:
        se = math.sqrt(a.stdev ** 2 / a.n + b.stdev ** 2 / b.n)
        return t_critical(welch_df(a, b)) * se / abs(a.mean) * 100.0, "runs"
    nb, no = noise_pct(base), noise_pct(other)
    if nb is not None and no is not None:
        return max(NOISE_PCT, 2 * max(nb, no)), "cv"
    return NOISE_PCT, "5%"


def delta_rows(base: Result, other: Result) -> list[Row]:
    """(section, metric, base value, other value, delta %, verdict) for every shared metric."""
    fa, fb = _flatten(base), _flatten(other)
    out: list[Row] = []
    for key, (a, higher) in fa.items():
        if key not in fb:
            continue
        b = fb[key][0]
        d = (b.mean - a.mean) / abs(a.mean) * 100.0 if a.mean else None
        band, _src = _band(a, b, base, other)
        if d is None:
            verdict = "-" if b.mean != a.mean else "same"
        elif abs(d) <= band:
            verdict = f"within noise (±{band:.1f}%)"
        elif higher is None:
            verdict = f"changed (beyond ±{band:.1f}%)"
        else:
            verdict = ("better" if (d > 0) == higher else "worse") + f" (beyond ±{band:.1f}%)"
        out.append((key[0], key[1], a.mean, b.mean, d, verdict))
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
    runs = all(run_values(r) for _, r in results)
    if runs:
        noise = ("from the repeated runs: Student's t (Welch, 95%) x the standard error of the "
                 "difference of the means (metrics with per-run values); elsewhere 2 x the "
                 "larger run-to-run CV, at least 5%")
    elif all(noise_pct(r) is not None for _, r in results):
        noise = "2 x the larger run-to-run coefficient of variation, at least 5%"
    else:
        noise = "5% (no repeated runs: repeat with --runs N for a measured band)"
    t.caption = f"noise band: {noise}; GB/s = 10^9 B/s; means compared where runs repeat"
    return t
