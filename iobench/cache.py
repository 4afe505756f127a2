"""Page-cache control and the honest verdict every result carries.

Policies: `drop` (drop_caches when root, else posix_fadvise DONTNEED per file),
`direct` (O_DIRECT: the page cache is bypassed), `allow` (nothing is done: figures may
come from RAM). Neither drop method clears a hypervisor's or an array's cache; the
verdict says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from iobench.errors import UsageError

POLICIES = ("drop", "direct", "allow")


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        from iobench.errors import did_you_mean

        raise UsageError(f"--cache {policy!r}: unknown policy{did_you_mean(policy, POLICIES)}")
    return policy


def ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def drop(files: Iterable[Path]) -> str:
    """Evict the given files from the page cache. Returns the method that worked."""
    paths = list(files)
    for p in paths:  # dirty pages cannot be dropped: write them first
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
    if os.geteuid() == 0:
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return "drop_caches"
        except OSError:
            pass  # containers without --privileged: fall back to fadvise
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return "fadvise_dontneed"


def prepare(policy: str, files: Iterable[Path]) -> str:
    """Apply the policy before a read phase; returns the method used."""
    if policy == "drop":
        return drop(files)
    if policy == "direct":
        return "o_direct"
    return "none"


def verdict(
    policy: str, method: str, data_bytes: int, *, reads: bool = True, rereads: bool = False
) -> dict[str, Any]:
    """What a result may say about where its figures came from.

    `rereads`: the phase reads the same bytes more than once (time-based random reads,
    several epochs), so a data set smaller than RAM can be served from the page cache
    after the first pass even when the cache was dropped before it.
    """
    ram = ram_bytes()
    ratio = data_bytes / ram if ram else 0.0
    if not reads:
        may_be_cached = False
        note = ("O_DIRECT writes; throughput counts the final fsync" if policy == "direct"
                else "buffered writes; throughput counts the final fsync, so data is on "
                "storage when the clock stops")
    elif policy == "direct":
        may_be_cached = False
        note = ("O_DIRECT: the host page cache is bypassed (a hypervisor or array cache "
                "may still serve reads)")
    elif policy == "drop":
        may_be_cached = reads and rereads and ratio < 1.0
        how = ("drop_caches" if method == "drop_caches"
               else "fadvise(DONTNEED) per file (not root, or drop_caches refused)")
        note = f"page cache dropped with {how} before the phase"
        if may_be_cached:
            note += f"; the data ({ratio:.2f} x RAM) is re-read, so later passes may hit RAM"
        note += "; a hypervisor or array cache is not cleared"
    else:
        may_be_cached = reads
        note = (f"page cache allowed, data set {ratio:.2f} x RAM: figures may come from "
                "memory, not storage" if reads else
                "buffered writes: data reaches storage only at fsync, which is timed")
    return {
        "policy": policy,
        "method": method,
        "data_bytes": int(data_bytes),
        "ram_bytes": int(ram),
        "data_to_ram": round(ratio, 4),
        "may_be_cached": may_be_cached,
        "note": note,
    }
