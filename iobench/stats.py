"""Mergeable latency histograms, percentiles and throughput timelines.

The histogram is log-linear (the HdrHistogram scheme): values below 128 ns have a bucket
each; above, every power of two is split into 128 equal sub-buckets. A value is reported
as its bucket's midpoint, so the relative error is at most 1/256 (0.4%) at every
percentile, memory is a fixed ~60 KiB whatever the number of operations, and merging
two histograms is adding their bucket counts. Percentiles are read off the (merged)
counts by the nearest-rank method, never averaged across workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

SUB_BITS = 7
SUB = 1 << SUB_BITS  # 128 sub-buckets per power of two
MAX_EXP = 52  # values up to 2**53 ns (104 days); larger ones are clamped into the top bucket
NBUCKETS = (MAX_EXP - SUB_BITS + 1) * SUB + SUB

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9), ("p99_99", 99.99),
)


def bucket_index(values: np.ndarray) -> np.ndarray:
    """Bucket index of each non-negative int64 value (vectorised)."""
    v = np.asarray(values, dtype=np.int64)
    v = np.clip(v, 0, (1 << (MAX_EXP + 1)) - 1)
    idx = v.copy()
    big = v >= SUB
    if big.any():
        vb = v[big]
        # floor(log2(v)) exactly for int64: frexp is exact for integers below 2**53,
        # and latencies above 2**53 ns (104 days) do not occur.
        exp = np.frexp(vb.astype(np.float64))[1].astype(np.int64) - 1
        shift = exp - SUB_BITS
        mant = vb >> shift
        idx[big] = shift * SUB + mant
    return idx


def bucket_bounds(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[low, high) value range of each bucket index."""
    i = np.asarray(index, dtype=np.int64)
    low = i.copy()
    width = np.ones_like(i)
    big = i >= 2 * SUB
    shift = np.where(big, (i // SUB) - 1, 0)
    mant = np.where(big, i - shift * SUB, i)
    low = np.where(big, mant << shift, i)
    width = np.where(big, np.int64(1) << shift, 1)
    return low, low + width


@dataclass
class Histogram:
    """Latency histogram in nanoseconds; exact count, sum, min, max; mergeable by addition."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(NBUCKETS, dtype=np.int64))
    count: int = 0
    total: int = 0  # sum of values, exact (Python int)
    sumsq: float = 0.0
    min: int | None = None
    max: int | None = None

    def record(self, value_ns: int) -> None:
        self.record_many(np.array([value_ns], dtype=np.int64))

    def record_many(self, values_ns: Iterable[int] | np.ndarray) -> None:
        v = np.asarray(values_ns, dtype=np.int64)
        if v.size == 0:
            return
        self.counts += np.bincount(bucket_index(v), minlength=NBUCKETS)[:NBUCKETS]
        self.count += int(v.size)
        self.total += int(v.sum(dtype=np.int64))
        vf = v.astype(np.float64)
        # einsum, not np.dot: a BLAS call wakes OpenBLAS's worker threads, which then
        # spin in sched_yield and take a core from the I/O loop that calls this per step
        # (measured: 3x the CPU per read of a 4 KiB ring at depth 32 on 2 cores)
        self.sumsq += float(np.einsum("i,i->", vf, vf))
        lo, hi = int(v.min()), int(v.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def merge(self, other: Histogram) -> Histogram:
        """Add another histogram into this one (in place) and return self."""
        self.counts += other.counts
        self.count += other.count
        self.total += other.total
        self.sumsq += other.sumsq
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
        if other.max is not None:
            self.max = other.max if self.max is None else max(self.max, other.max)
        return self

    @classmethod
    def merged(cls, hists: Iterable[Histogram]) -> Histogram:
        out = cls()
        for h in hists:
            out.merge(h)
        return out

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def stddev(self) -> float | None:
        """Population standard deviation from the exact sum and sum of squares."""
        if not self.count:
            return None
        m = self.total / self.count
        return math.sqrt(max(self.sumsq / self.count - m * m, 0.0))

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile: the smallest value with at least p% of values <= it.

        Returns the midpoint of the bucket holding that rank, clamped to the exact min and
        max, so p0 = min and p100 = max exactly.
        """
        if not self.count:
            return None
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile {p} outside [0, 100]")
        rank = max(1, math.ceil(p / 100.0 * self.count))
        assert self.min is not None
        assert self.max is not None
        if rank >= self.count:
            return float(self.max)
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, rank))
        low, high = bucket_bounds(np.array([i]))
        mid = (int(low[0]) + int(high[0]) - 1) / 2.0
        return float(min(max(mid, self.min), self.max))

    def summary(self) -> dict[str, float | None]:
        """p50/p90/p99/p99.9/p99.99/max/mean/stddev/min in ns (the results schema)."""
        out: dict[str, float | None] = {k: self.percentile(p) for k, p in PERCENTILES}
        out["max"] = float(self.max) if self.max is not None else None
        out["min"] = float(self.min) if self.min is not None else None
        out["mean"] = self.mean
        out["stddev"] = self.stddev
        out["count"] = self.count
        return out

    def cdf_points(self, max_points: int = 200) -> list[tuple[float, float]]:
        """(latency_ns, fraction <= latency) pairs for plotting a CDF."""
        nz = np.nonzero(self.counts)[0]
        if nz.size == 0:
            return []
        cum = np.cumsum(self.counts[nz]) / self.count
        _, high = bucket_bounds(nz)
        step = max(1, nz.size // max_points)
        pts = [(float(high[i]), float(cum[i])) for i in range(0, nz.size, step)]
        if pts[-1][1] < 1.0:
            pts.append((float(high[-1]), 1.0))
        return pts

    # Sparse JSON form: only non-empty buckets, so results stay small.
    def to_dict(self) -> dict:
        nz = np.nonzero(self.counts)[0]
        return {
            "scheme": f"log-linear-{SUB}",
            "count": self.count,
            "sum_ns": self.total,
            "sumsq_ns2": self.sumsq,
            "min_ns": self.min,
            "max_ns": self.max,
            "buckets": {str(int(i)): int(self.counts[i]) for i in nz},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Histogram:
        if d.get("scheme") != f"log-linear-{SUB}":
            raise ValueError(f"unknown histogram scheme {d.get('scheme')!r}")
        h = cls()
        for k, c in d["buckets"].items():
            h.counts[int(k)] = int(c)
        h.count = int(d["count"])
        h.total = int(d["sum_ns"])
        h.sumsq = float(d["sumsq_ns2"])
        h.min = d["min_ns"]
        h.max = d["max_ns"]
        return h

    @classmethod
    def from_buckets(cls, pairs: Iterable[tuple[int, int]]) -> Histogram:
        """Build from (value_ns, count) pairs, e.g. fio's json+ clat bins."""
        h = cls()
        vals: list[int] = []
        cnts: list[int] = []
        for v, c in pairs:
            vals.append(int(v))
            cnts.append(int(c))
        if not vals:
            return h
        va = np.array(vals, dtype=np.int64)
        ca = np.array(cnts, dtype=np.int64)
        np.add.at(h.counts, bucket_index(va), ca)
        h.count = int(ca.sum())
        h.total = int((va * ca).sum())
        h.sumsq = float(np.dot(va.astype(np.float64) ** 2, ca.astype(np.float64)))
        h.min = int(va[ca > 0].min()) if (ca > 0).any() else None
        h.max = int(va[ca > 0].max()) if (ca > 0).any() else None
        return h


class LatencyRecorder:
    """Cheap per-I/O recording for a worker thread: append to a list, fold into a
    histogram every `batch` values so memory stays bounded."""

    __slots__ = ("hist", "_buf", "_batch")

    def __init__(self, batch: int = 65536) -> None:
        self.hist = Histogram()
        self._buf: list[int] = []
        self._batch = batch

    def add(self, ns: int) -> None:
        self._buf.append(ns)
        if len(self._buf) >= self._batch:
            self.flush()

    def add_many(self, ns: list[int]) -> None:
        """Record a batch of latencies (a completion batch of the AIO lane)."""
        self._buf.extend(ns)
        if len(self._buf) >= self._batch:
            self.flush()

    def flush(self) -> Histogram:
        if self._buf:
            self.hist.record_many(np.fromiter(self._buf, dtype=np.int64, count=len(self._buf)))
            self._buf.clear()
        return self.hist


@dataclass
class Timeline:
    """Bytes completed per fixed interval since `start_ns` (monotonic clock)."""

    start_ns: int
    interval_ns: int = 1_000_000_000
    bins: list[int] = field(default_factory=list)

    def add(self, t_ns: int, nbytes: int) -> None:
        i = (t_ns - self.start_ns) // self.interval_ns
        if i < 0:
            i = 0
        if i >= len(self.bins):
            self.bins.extend([0] * (i + 1 - len(self.bins)))
        self.bins[i] += nbytes

    def merge(self, other: Timeline) -> Timeline:
        """Add another timeline, aligning on absolute time; returns self."""
        if other.interval_ns != self.interval_ns:
            raise ValueError("cannot merge timelines with different intervals")
        offset = (other.start_ns - self.start_ns) // self.interval_ns
        if offset < 0:  # the other started earlier: shift ours right
            self.bins = [0] * (-offset) + self.bins
            self.start_ns -= (-offset) * self.interval_ns
            offset = 0
        for i, b in enumerate(other.bins):
            j = i + offset
            if j >= len(self.bins):
                self.bins.extend([0] * (j + 1 - len(self.bins)))
            self.bins[j] += b
        return self

    def to_dict(self) -> dict:
        return {"interval_s": self.interval_ns / 1e9, "bytes": list(self.bins)}


def mean_stdev(values: list[float]) -> tuple[float, float]:
    """Sample mean and sample standard deviation (n-1); stdev 0 for one value."""
    if not values:
        raise ValueError("no values")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in values) / (len(values) - 1))
