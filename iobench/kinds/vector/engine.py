"""Mode 1: a real DiskANN disk index (diskannpy) built on the target and searched there.

Searches run one query at a time, each timed on its own; queries in flight come from
searcher processes (`fleet.SearcherFleet`, --search-procs: diskannpy 0.7.0's searches
hold the GIL, so threads would take turns) and from MPI ranks (one searcher process per
rank). Its StaticDiskIndex hangs while loading with num_threads=1 (measured: 0.7.0 waits forever
for a search context), so the index is always loaded with two contexts.

DiskANN reads its disk index with O_DIRECT through Linux AIO; the bytes a query read
are counted here independently of the engine, from the kernel's per-process I/O
accounting (/proc/self/io read_bytes, which counts direct reads as they are submitted
to the block layer), and from the target device's /proc/diskstats when it can be
identified (device-wide: other processes' reads are included, so labelled so).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iobench.errors import RunFailed, ToolMissing
from iobench.kinds.vector.data import NOFOLLOW, open_read
from iobench.kinds.vector.spec import SECTOR, K
from iobench.stats import Histogram

PREFIX = "ann"
INSTALL = "pip install 'iobench[vector]'   (diskannpy 0.7.0: CPython 3.9-3.11, x86_64)"


def diskannpy() -> Any:
    """The diskannpy module, or one line naming the extra and the install command."""
    try:
        import diskannpy as dap
    except ImportError as e:
        raise ToolMissing(f"--engine diskann needs diskannpy, which is not installed "
                          f"({e}); install the extra: {INSTALL}") from None
    return dap


# --- C++ logs: captured at the file-descriptor level --------------------------------
_SIGS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def capture_fds(log: Path) -> Iterator[None]:
    """Send fds 1 and 2 (what C++ writes with std::cout/cerr) to `log` while the block
    runs, so iobench's own output and --json stay clean.

    SIGINT and SIGTERM are blocked meanwhile (main thread): DiskANN treats an interrupted
    io_getevents as fatal and exits, and a KeyboardInterrupt in the middle of restoring
    the fds would leave them redirected. A pending Ctrl-C is delivered when the block
    ends, or at an `interruption_point()` inside it (between queries).
    """
    main = threading.current_thread() is threading.main_thread()
    prev = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGS) if main else None
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        libc = ctypes.CDLL(None)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | NOFOLLOW, 0o644)
        saved = [os.dup(1), os.dup(2)]
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    except BaseException:
        if prev is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, prev)
        raise
    _PREV_MASK.append(prev)
    try:
        yield
    finally:
        _PREV_MASK.pop()
        if prev is not None:
            signal.pthread_sigmask(signal.SIG_BLOCK, _SIGS)
        libc.fflush(None)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)
        if prev is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, prev)


_PREV_MASK: list[Any] = []
_LET_IN_NS = 10_000_000  # Searcher.run lets a pending signal in this often


def interruption_point() -> None:
    """Inside capture_fds, between calls into diskannpy: let a pending Ctrl-C/SIGTERM in
    (it raises here, and capture_fds restores the fds on the way out)."""
    if _PREV_MASK and _PREV_MASK[-1] is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, _PREV_MASK[-1])
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGS)


def _ids(found: list[Any]) -> np.ndarray:
    """The per-query answers (K ids each) as one int64 array."""
    if not found:
        return np.empty((0, K), dtype=np.int64)
    return np.asarray(np.stack(found), dtype=np.int64)


# --- I/O counters -------------------------------------------------------------------
def proc_read_bytes() -> int:
    """Bytes this process caused to be read from storage (/proc/self/io read_bytes)."""
    with open("/proc/self/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    raise RunFailed("/proc/self/io has no read_bytes (kernel without task I/O accounting)")


def device_of(path: Path) -> str | None:
    """The block device name (as in /proc/diskstats) holding `path`, if identifiable."""
    st = path.stat()
    name = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    link = Path("/sys/dev/block") / name
    try:
        dev = link.resolve().name
    except OSError:
        return None
    try:
        with open("/proc/diskstats", encoding="ascii") as f:
            if any(line.split()[2] == dev for line in f if len(line.split()) > 5):
                return dev
    except OSError:
        return None
    return None


def diskstats(dev: str | None) -> tuple[int, int] | None:
    """(reads completed, bytes read) of a block device, device-wide."""
    if dev is None:
        return None
    with open("/proc/diskstats", encoding="ascii") as f:
        for line in f:
            p = line.split()
            if len(p) > 5 and p[2] == dev:
                return int(p[3]), int(p[5]) * 512
    return None


# --- page cache: evict the index files and verify ----------------------------------
_libc: Any = None


def resident_pages(path: Path) -> tuple[int, int]:
    """(pages of `path` in the page cache, pages in the file), by mincore(2) on a
    read-only mapping (mapping a file reads nothing)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mmap.restype = ctypes.c_void_p
        _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_long]
        _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    fd = open_read(path)
    try:
        size = os.fstat(fd).st_size
        npages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        if size == 0:
            return 0, 0
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return -1, npages
        try:
            vec = (ctypes.c_ubyte * npages)()
            if _libc.mincore(addr, size, vec) != 0:
                return -1, npages
            return int((np.ctypeslib.as_array(vec) & 1).sum()), npages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def evict(paths: list[Path]) -> dict[str, Any]:
    """posix_fadvise(DONTNEED) each file (never the global drop_caches) and check with
    mincore that nothing of them is left in the page cache."""
    left = 0
    total = 0
    unknown = False
    for p in paths:
        fd = open_read(p)
        try:
            os.fsync(fd)  # dirty pages (a fresh build) cannot be evicted until written
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        res, n = resident_pages(p)
        total += n
        left += n if res < 0 else res
        unknown = unknown or res < 0
    return {"method": "fadvise_dontneed", "files": len(paths), "pages": total,
            "resident_pages_after": left, "verified": not unknown and left == 0}


# --- build ---------------------------------------------------------------------------
@dataclass
class BuildParams:
    metric: str
    graph_degree: int
    complexity: int
    pq_bytes: int
    threads: int


def node_bytes(dim: int, degree: int) -> int:
    """One graph node on disk: the full float32 vector, the neighbour count, the list."""
    return 4 * dim + 4 + 4 * degree


def build(vectors: Path, index_dir: Path, n: int, dim: int, bp: BuildParams,
          log: Path) -> float:
    """Build the disk index into `index_dir`; returns seconds."""
    dap = diskannpy()
    # diskannpy sizes PQ from a RAM budget in GiB: bytes per vector = budget / points
    search_gib = (n * bp.pq_bytes * 1.02 + 4096) / 2**30
    data_gib = n * dim * 4 / 2**30
    build_gib = max(0.25, min(data_gib * 3 + 0.25, _ram_gib() / 4))
    t0 = time.monotonic()
    with capture_fds(log):
        dap.build_disk_index(data=str(vectors), distance_metric=bp.metric,
                             index_directory=str(index_dir), complexity=bp.complexity,
                             graph_degree=bp.graph_degree,
                             search_memory_maximum=search_gib,
                             build_memory_maximum=build_gib, num_threads=bp.threads,
                             pq_disk_bytes=0, vector_dtype=np.float32, index_prefix=PREFIX)
    return time.monotonic() - t0


def _ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def index_files(index_dir: Path) -> list[Path]:
    return sorted(p for p in index_dir.iterdir() if p.name.startswith(PREFIX + "_")
                  and p.is_file() and not p.is_symlink())


def disk_index(index_dir: Path) -> Path:
    return index_dir / f"{PREFIX}_disk.index"


# --- search -------------------------------------------------------------------------
class Searcher:
    """A loaded StaticDiskIndex (logs captured); one query at a time."""

    def __init__(self, index_dir: Path, metric: str, dim: int, cache_nodes: int,
                 log: Path, threads: int = 2) -> None:
        dap = diskannpy()
        with capture_fds(log):  # a search context per thread that may search at once
            self.index = dap.StaticDiskIndex(
                index_directory=str(index_dir), num_threads=max(2, threads),
                num_nodes_to_cache=cache_nodes, cache_mechanism=1 if cache_nodes else 0,
                distance_metric=metric, vector_dtype=np.float32, dimensions=dim,
                index_prefix=PREFIX)
            try:
                interruption_point()  # a Ctrl-C during the load: free the index in here
            except BaseException:
                import gc

                self.index = None
                gc.collect()
                raise
        self.log = log

    def _search(self, complexity: int, beam_width: int) -> Any:
        """query (a row of a C-contiguous float32 array) -> neighbour ids, as lean as the
        binding allows: diskannpy 0.7.0's compiled `batch_search` over that one query,
        positional arguments, one thread. Measured against `batch_search` over all the
        queries at once, with every node cached (CPU-bound, the harness's share at its
        largest; 2-core VM, 2026-12-02): the public `search` wrapper cost 25-45 us a query
        (it re-checks what the spec checked and copies the query; pybind11's keyword
        parsing adds more), the compiled `search` (it also times itself into a
        QueryStats) ~14 us, this ~7 us, iobench's own loop ~2 us. Else the public
        wrapper."""
        raw = getattr(self.index, "_index", None)
        if raw is not None and hasattr(raw, "batch_search"):
            srch = raw.batch_search

            def one(q: np.ndarray) -> Any:
                return srch(q[None], 1, K, complexity, beam_width, 1)[0][0]
            return one
        index = self.index

        def public(q: np.ndarray) -> Any:
            return index.search(q, k_neighbors=K, complexity=complexity,
                                beam_width=beam_width).identifiers
        return public

    def run(self, queries: np.ndarray, complexity: int, beam_width: int,
            dev: str | None) -> dict[str, Any]:
        """Search every query, each timed on its own (from the previous query's end: the
        latency includes storing the answer, never less than the search); the I/O
        counters around the pass. A pending Ctrl-C is let in between queries at most
        every 10 ms, not per query (each costs two signal-mask calls)."""
        hist = Histogram()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = len(queries)
        lat = [0] * n  # lists, filled in the loop, made arrays after it: cheaper per item
        found: list[Any] = [None] * n
        search = self._search(complexity, beam_width)
        mono = time.monotonic_ns
        import resource

        with capture_fds(self.log):
            d0 = diskstats(dev)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
            r0 = proc_read_bytes()
            w0 = time.time_ns()
            t0 = a = mono()
            nxt = t0 + _LET_IN_NS
            try:
                for i in range(n):
                    if a >= nxt:  # outside the timed region
                        interruption_point()
                        a = mono()
                        nxt = a + _LET_IN_NS
                    found[i] = search(queries[i])
                    b = mono()
                    lat[i] = b - a
                    a = b
            finally:
                del search  # an interrupted pass's traceback must not keep the index alive
            t1 = mono()
            r1 = proc_read_bytes()
            f1 = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
            d1 = diskstats(dev)
        hist.record_many(np.array(lat, dtype=np.int64))
        out: dict[str, Any] = {"queries": n, "seconds": (t1 - t0) / 1e9,
                               "start_wall_ns": w0, "end_wall_ns": w0 + (t1 - t0),
                               "read_bytes": r1 - r0, "major_faults": f1 - f0,
                               "hist": hist, "found": _ids(found)}
        if d0 is not None and d1 is not None:
            out["device_reads"] = d1[0] - d0[0]
            out["device_bytes"] = d1[1] - d0[1]
        return out

    def close(self) -> None:
        """Free the index inside the capture: its destructor prints too."""
        import gc

        with capture_fds(self.log):
            self.index = None
            gc.collect()

    def batch(self, queries: np.ndarray, complexity: int, beam_width: int,
              threads: int = 1) -> tuple[float, np.ndarray]:
        """diskannpy's own batch_search over the same queries: (seconds, ids)."""
        with capture_fds(self.log):
            t0 = time.monotonic_ns()
            res = self.index.batch_search(queries, k_neighbors=K, complexity=complexity,
                                          num_threads=threads, beam_width=beam_width)
            t1 = time.monotonic_ns()
        return (t1 - t0) / 1e9, np.asarray(res.identifiers)


def sector_bytes(dim: int, degree: int) -> int:
    """Bytes DiskANN reads per node: whole 4 KiB sectors."""
    nb = node_bytes(dim, degree)
    return SECTOR * max(1, -(-nb // SECTOR))
