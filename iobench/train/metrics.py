"""Pure figures of a training replay: AU, run-to-run agreement, timeline windows, and the
client-limited verdict. Numbers in, numbers out; no I/O, so each is tested by hand."""

from __future__ import annotations

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
                   compute_s: float) -> bool:
    """The client, not storage, is the limit: its cores are nearly all busy while the
    accelerators starve (AU under the threshold), or, with no compute to hide behind,
    while reading as fast as it can."""
    if cpu_pct < CLIENT_LIMITED_CPU_PCT:
        return False
    if compute_s <= 0:
        return True
    return au is not None and au < threshold_pct
