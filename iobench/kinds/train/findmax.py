"""How many accelerators this storage feeds: the largest count whose AU still meets the
threshold, found with short probe runs (doubling, then bisection) and confirmed by a
full run, stepping down while the confirmation fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CONFIRMS = 3  # a confirmation that fails steps down by one, at most this many times


@dataclass(frozen=True)
class Probe:
    accelerators: int
    au_pct: float | None
    passed: bool
    samples_per_s: float = 0.0
    bytes_per_s: float = 0.0
    kind: str = "probe"  # probe | confirm


@dataclass
class Search:
    best: int = 0
    probes: list[Probe] = field(default_factory=list)


def search(probe: Callable[[int], Probe], *, limit: int, start: int = 1) -> Search:
    """Largest n in [1, limit] with probe(n).passed, assuming AU falls as n grows.

    Doubles from `start` until a probe fails (or `limit`), then bisects between the last
    pass and the first fail: about 2 log2(answer) probes.
    """
    out = Search()
    seen: dict[int, Probe] = {}

    def ok(n: int) -> bool:
        if n not in seen:
            seen[n] = probe(n)
            out.probes.append(seen[n])
        return seen[n].passed

    start = max(1, min(start, limit))
    if not ok(start):
        lo, hi = 0, start  # bisect below the start
    else:
        lo = n = start
        while True:
            if n >= limit:
                out.best = n
                return out
            n = min(n * 2, limit)
            if not ok(n):
                hi = n
                break
            lo = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    out.best = lo
    return out


def confirm(run: Callable[[int], Probe], best: int, out: Search) -> int:
    """Confirm `best` with a full run; step down while it fails. Returns the count fed."""
    n = best
    for _ in range(MAX_CONFIRMS):
        if n <= 0:
            return 0
        p = run(n)
        out.probes.append(p)
        if p.passed:
            return n
        n -= 1
    return 0
