"""Pure figures of a training replay: AU, run-to-run agreement, timeline windows, and the
client-limited verdict. Numbers in, numbers out; no I/O, so each is tested by hand."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iobench.stats import mean_stdev

RUNS_AGREE_PCT = 5.0  # MLPerf Storage: the measured runs must agree within 5%
CLIENT_LIMITED_CPU_PCT = 85.0  # the client's cores are this busy: it, not storage, limits


def au_pct(step_end_ns: Sequence[int] | np.ndarray,
           compute_ns: np.ndarray) -> float | None:
    """Accelerator utilisation in percent, as MLPerf Storage defines it: compute time over
    wall time, the first step excluded (it pays for the empty pipeline).

    `step_end_ns[s]` is when step s ended for all accelerators (the barrier), and
    `compute_ns[a, s]` the compute accelerator a spent in step s. The wall time is from
    the end of step 0 to the end of the last step; the compute is averaged over the
    accelerators. None when there is no step after the first, or no compute at all.
    """
    ends = np.asarray(step_end_ns, dtype=np.int64)
    comp = np.asarray(compute_ns, dtype=np.int64)
    if ends.size < 2:
        return None
    wall = int(ends[-1] - ends[0])
    if wall <= 0:
        return None
    busy = comp[:, 1:ends.size].sum(axis=1).mean() if comp.ndim == 2 else comp[1:].sum()
    if busy <= 0:
        return None
    return float(100.0 * busy / wall)


def au_overall(per_epoch: Sequence[tuple[float, float]]) -> float | None:
    """AU over several epochs from (busy_ns, wall_ns) per epoch: total busy / total wall
    (not a mean of percentages, so a long epoch weighs more)."""
    busy = sum(b for b, _ in per_epoch)
    wall = sum(w for _, w in per_epoch)
    if wall <= 0 or busy <= 0:
        return None
    return 100.0 * busy / wall


def au_parts(step_end_ns: Sequence[int] | np.ndarray,
             compute_ns: np.ndarray) -> tuple[float, float]:
    """(busy_ns, wall_ns) behind `au_pct`, for `au_overall`."""
    ends = np.asarray(step_end_ns, dtype=np.int64)
    comp = np.asarray(compute_ns, dtype=np.int64)
    if ends.size < 2:
        return 0.0, 0.0
    busy = float(comp[:, 1:ends.size].sum(axis=1).mean())
    return busy, float(ends[-1] - ends[0])


@dataclass(frozen=True)
class RunsSummary:
    """Measured runs (warm-up excluded): mean, sample stdev, CV and the 5% verdict."""

    values: tuple[float, ...]
    mean: float
    stdev: float
    cv_pct: float
    spread_pct: float  # (max - min) / mean
    agree: bool


def runs_summary(values: Sequence[float]) -> RunsSummary:
    """Runs agree when every run lies within 5% of their mean (MLPerf's rule)."""
    vals = tuple(float(v) for v in values)
    m, sd = mean_stdev(list(vals))
    cv = 100.0 * sd / m if m else 0.0
    spread = 100.0 * (max(vals) - min(vals)) / m if m else 0.0
    agree = all(abs(v - m) <= RUNS_AGREE_PCT / 100.0 * m for v in vals)
    return RunsSummary(vals, m, sd, cv, spread, agree)


def window_bins(windows_s: Sequence[tuple[float, float]], interval_s: float,
                nbins: int) -> list[bool]:
    """Which timeline bins overlap a window (e.g. a checkpoint write), for marking."""
    out = [False] * nbins
    for start, end in windows_s:
        first = max(0, int(start // interval_s))
        last = min(nbins - 1, int(end // interval_s))
        for i in range(first, last + 1):
            out[i] = True
    return out


def cpu_util_pct(cpu_s: float, wall_s: float, ncpu: int) -> float:
    """Share of the client's cores this process kept busy (100 = every core, all along)."""
    if wall_s <= 0 or ncpu <= 0:
        return 0.0
    return 100.0 * cpu_s / (wall_s * ncpu)


def client_limited(cpu_pct: float, au: float | None, threshold_pct: float,
                   compute_s: float, host: dict[str, float] | None = None) -> bool:
    """The client, not storage, is the limit: see `client_limited_why`."""
    return client_limited_why(cpu_pct, au, threshold_pct, compute_s, host)[0]


def host_window(before: dict[str, int], after: dict[str, int], own_cpu_s: float,
                wall_s: float, ncpu: int, load1: float, runnable: int) -> dict[str, float]:
    """The host's CPU over a window (/proc/stat deltas, clock ticks): busy % of all cores
    (steal included), steal %, the share other processes took, and the run queue."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    d = {k: after.get(k, 0) - before.get(k, 0) for k in before}
    total = sum(d.values())
    if total <= 0 or wall_s <= 0:
        return {}
    idle = d.get("idle", 0) + d.get("iowait", 0)
    busy_pct = 100.0 * (total - idle) / total
    steal_pct = 100.0 * d.get("steal", 0) / total
    own_pct = 100.0 * own_cpu_s * tick / total
    return {"host_busy_pct": round(busy_pct, 1), "steal_pct": round(steal_pct, 1),
            "others_pct": round(max(0.0, busy_pct - steal_pct - own_pct), 1),
            "load1": load1, "runnable": float(runnable), "ncpu": float(ncpu)}


def client_limited_why(cpu_pct: float, au: float | None, threshold_pct: float,
                       compute_s: float, host: dict[str, float] | None = None,
                       ) -> tuple[bool, str]:
    """Is the client, not storage, the limit, and why. Only while the accelerators starve
    (AU under the threshold) or, with no compute to hide behind, always. The client's CPU
    is the limit when this run kept its cores nearly all busy, or when the host's cores
    were (other processes, hypervisor steal, a run queue longer than the cores): then
    this run got less CPU than it needed although its own share looks modest."""
    starving = compute_s <= 0 or (au is not None and au < threshold_pct)
    if not starving:
        return False, "the accelerators were fed (AU at or above the threshold)"
    if cpu_pct >= CLIENT_LIMITED_CPU_PCT:
        return True, f"this run kept {cpu_pct:.0f}% of the client's cores busy"
    if host:
        busy = host.get("host_busy_pct", 0.0)
        ncpu = host.get("ncpu", 0.0) or 1.0
        crowded = host.get("runnable", 0.0) > ncpu or host.get("load1", 0.0) > ncpu
        if busy >= CLIENT_LIMITED_CPU_PCT or (crowded and busy >= 50.0):
            return True, (f"the host's cores were {busy:.0f}% busy (this run {cpu_pct:.0f}%, "
                          f"other processes {host.get('others_pct', 0.0):.0f}%, steal "
                          f"{host.get('steal_pct', 0.0):.0f}%; load {host.get('load1', 0):.1f}"
                          f" on {ncpu:.0f} cores): this run could not get the CPU it needed")
        return False, (f"CPU not saturated: this run {cpu_pct:.0f}%, host {busy:.0f}% busy, "
                       f"load {host.get('load1', 0):.1f} on {ncpu:.0f} cores")
    return False, f"this run used {cpu_pct:.0f}% of the cores (host load not measured)"
