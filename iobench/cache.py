"""Page-cache control, measured residency, and the honest verdict every result carries.

Policies: `drop` (evict the data set's own files: fsync, posix_fadvise DONTNEED per file;
the rest of the host's page cache is left alone), `drop-global` (root: write
/proc/sys/vm/drop_caches, which empties the whole host's page cache, every process's:
MLPerf's way, an explicit choice on a shared host), `direct` (O_DIRECT: the page cache is
bypassed), `allow` (nothing is done: figures may come from RAM). Neither drop clears a
hypervisor's or an array's cache; the verdict says so.

`residency(files)` measures how much of the files is in the page cache (the cachestat
syscall where the kernel has it, Linux 6.5+, else mincore over a mapping of each file),
so a result states what was resident, not what a policy is assumed to have achieved.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from iobench.errors import UsageError

POLICIES = ("drop", "drop-global", "direct", "allow")
DROP_POLICIES = ("drop", "drop-global")
RESIDENT_WARN_PCT = 1.0  # after an eviction, more than this still resident is a warning


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        from iobench.errors import did_you_mean

        raise UsageError(f"--cache {policy!r}: unknown policy{did_you_mean(policy, POLICIES)}")
    return policy


def ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _sync(paths: Sequence[Path]) -> None:
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


def evict(files: Iterable[Path]) -> str:
    """Evict the given files (and nothing else) from the page cache: fsync, then
    posix_fadvise(DONTNEED) over each whole file. Returns the method."""
    paths = list(files)
    _sync(paths)
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


def drop_global(files: Iterable[Path]) -> str:
    """Empty the whole host's page cache (drop_caches=3, root only): every process's cached
    files, not just ours. Falls back to per-file eviction where the kernel refuses it
    (containers without --privileged); the method returned says which happened."""
    paths = list(files)
    _sync(paths)
    if os.geteuid() == 0:
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return "drop_caches"
        except OSError:
            pass
    return evict(paths)


def drop(files: Iterable[Path], global_: bool = False) -> str:
    """Drop the files from the page cache: per file (default), or the whole host's cache
    with `global_`. Returns the method that worked."""
    return drop_global(files) if global_ else evict(files)


def prepare(policy: str, files: Iterable[Path]) -> str:
    """Apply the policy before a read phase; returns the method used."""
    if policy in DROP_POLICIES:
        return drop(files, global_=policy == "drop-global")
    if policy == "direct":
        return "o_direct"
    return "none"


# --- residency: what is really in the page cache -------------------------------------------
_CACHESTAT_NR = 451  # the same number on every architecture (asm-generic), Linux 6.5+


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [("nr_cache", ctypes.c_uint64), ("nr_dirty", ctypes.c_uint64),
                ("nr_writeback", ctypes.c_uint64), ("nr_evicted", ctypes.c_uint64),
                ("nr_recently_evicted", ctypes.c_uint64)]


_libc: Any = None
_cachestat_ok: list[bool] = []


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.mmap.restype = ctypes.c_void_p
        _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_long]
        _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    return _libc


def _cachestat(fd: int, length: int) -> int | None:
    """Resident pages of [0, length) of fd by cachestat(2), or None where it is missing."""
    if _cachestat_ok == [False] or platform.system() != "Linux":
        return None
    lib = _lib()
    rng = _CachestatRange(0, length)
    st = _Cachestat()
    r = lib.syscall(ctypes.c_long(_CACHESTAT_NR), ctypes.c_int(fd), ctypes.byref(rng),
                    ctypes.byref(st), ctypes.c_uint(0))
    if r < 0:
        if not _cachestat_ok:
            _cachestat_ok.append(False)
        return None
    if not _cachestat_ok:
        _cachestat_ok.append(True)
    return int(st.nr_cache)


def _mincore(fd: int, length: int) -> int:
    """Resident pages of [0, length) of fd: mincore(2) over a read-only shared mapping
    (mapping touches nothing: no page is read in)."""
    lib = _lib()
    page = mmap.PAGESIZE
    npages = (length + page - 1) // page
    addr = lib.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        err = ctypes.get_errno()
        raise OSError(err, f"mmap for mincore: {os.strerror(err)}")
    try:
        vec = (ctypes.c_ubyte * npages)()
        if lib.mincore(ctypes.c_void_p(addr), length, vec) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mincore: {os.strerror(err)}")
        import numpy as np

        return int((np.frombuffer(memoryview(vec).cast("B"), dtype=np.uint8) & 1).sum())
    finally:
        lib.munmap(ctypes.c_void_p(addr), length)


def residency(files: Iterable[Path], size: int | None = None) -> dict[str, Any]:
    """How much of the files (each its first `size` bytes, or all of it) is in the page
    cache now: {'bytes', 'resident_bytes', 'resident_pct', 'method'}. Missing files count
    as not resident; a file that cannot be measured makes the method 'unavailable'."""
    page = mmap.PAGESIZE
    total = resident = 0
    methods: set[str] = set()
    for p in files:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            length = os.fstat(fd).st_size
            if size is not None:
                length = min(length, size)
            total += length
            if length == 0:
                continue
            pages = _cachestat(fd, length)
            if pages is not None:
                methods.add("cachestat")
            else:
                try:
                    pages = _mincore(fd, length)
                    methods.add("mincore")
                except OSError:
                    methods.add("unavailable")
                    continue
            resident += min(length, pages * page)
        finally:
            os.close(fd)
    method = "unavailable" if "unavailable" in methods else "+".join(sorted(methods)) or "none"
    return {"bytes": int(total), "resident_bytes": int(resident),
            "resident_pct": round(100.0 * resident / total, 2) if total else 0.0,
            "method": method}


def verdict(
    policy: str, method: str, data_bytes: int, *, reads: bool = True, rereads: bool = False,
    resident: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a result may say about where its figures came from.

    `rereads`: the phase reads the same bytes more than once (time-based random reads,
    several epochs), so a data set smaller than RAM can be served from the page cache
    after the first pass even when the cache was dropped before it. `resident`: the
    data set's measured residency (`residency`) at the start of the phase.
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
    elif policy in DROP_POLICIES:
        may_be_cached = reads and rereads and ratio < 1.0
        how = ("drop_caches (the whole host's page cache)" if method == "drop_caches"
               else "fio's invalidate=1 on each server (fadvise DONTNEED per file)"
               if method == "fio_invalidate"
               else "fadvise(DONTNEED) of the data set's files only" if policy == "drop"
               else "fadvise(DONTNEED) per file (drop_caches refused)")
        note = f"page cache dropped with {how} before the phase"
        if may_be_cached:
            note += f"; the data ({ratio:.2f} x RAM) is re-read, so later passes may hit RAM"
        note += "; a hypervisor or array cache is not cleared"
    else:
        may_be_cached = reads
        note = (f"page cache allowed, data set {ratio:.2f} x RAM: figures may come from "
                "memory, not storage" if reads else
                "buffered writes: data reaches storage only at fsync, which is timed")
    out_resident: dict[str, Any] = {}
    if resident is not None and resident.get("method") not in ("unavailable", "none"):
        pct = float(resident["resident_pct"])
        out_resident = {"resident_start_pct": pct, "resident_method": resident["method"]}
        note += f"; measured ({resident['method']}): {pct:.1f}% of the data set resident at start"
        if reads and policy in DROP_POLICIES and pct > RESIDENT_WARN_PCT:
            may_be_cached = True
            note += " (the eviction did not take: mapped or locked by another process?)"
    return {
        **out_resident,
        "policy": policy,
        "method": method,
        "data_bytes": int(data_bytes),
        "ram_bytes": int(ram),
        "data_to_ram": round(ratio, 4),
        "may_be_cached": may_be_cached,
        "note": note,
    }
