"""Timed reads of whole files, as model loaders read weights: every byte of every file once.

- `read_chunked`: the files cut into chunks, in order, pulled by `threads` workers
  (native.run_threads) with pread into one preallocated buffer per file (or a bounded
  per-thread buffer), optionally O_DIRECT (reads widened to 4 KiB);
- `read_sequential`: one file with read(2) in `step`-byte calls, into one buffer;
- `touch_mapped`: a file mapped and one byte of every 4 KiB page of each range read
  (page faults, not bytes copied).
Each returns what it moved, the I/O count and per-I/O latency, and when given bytes were
ready, so a loader can say when its first tensor was in memory.
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iobench.engines.native import ALIGN, aligned_buffer, open_file, run_threads
from iobench.stats import Histogram, LatencyRecorder


@dataclass(frozen=True)
class ChunkedRead:
    """What `read_chunked` measured. `done`: (file, begin, end, monotonic ns) per read."""

    bytes: int
    ops: int
    latency: Histogram
    end_ns: int
    done: tuple[tuple[int, int, int, int], ...]


def read_chunked(files: Sequence[Path], sizes: Sequence[int], chunk: int, threads: int, *,
                 direct: bool, bufs: Sequence[mmap.mmap] | None) -> ChunkedRead:
    """Read every file in `chunk`-byte preads by `threads` workers, into bufs[file] at the
    file offset (None: each worker reads into its own buffer of one chunk)."""
    work = [(fi, off, min(chunk, sizes[fi] - off))
            for fi in range(len(files)) for off in range(0, sizes[fi], chunk)]
    fds = [open_file(p, direct=direct) for p in files]
    nthreads = min(threads, max(1, len(work)))
    done: list[list[tuple[int, int, int, int]]] = [[] for _ in range(nthreads)]
    counter = itertools.count()
    nwork = len(work)
    stop = threading.Event()

    def worker(i: int, st: Any) -> None:
        own = aligned_buffer(chunk) if bufs is None else None
        rec: LatencyRecorder = st.recorder
        mine = done[i]
        mono = time.monotonic_ns
        while not stop.is_set():
            k = next(counter)
            if k >= nwork:
                return
            fi, off, n = work[k]
            length = (n + ALIGN - 1) // ALIGN * ALIGN if direct else n
            if own is not None:
                mv = memoryview(own)[:length]
            else:
                assert bufs is not None
                mv = memoryview(bufs[fi])[off: off + length]
            a = mono()
            got = 0
            while got < n:  # short reads: loop (O_DIRECT returns less only at EOF)
                r = os.preadv(fds[fi], [mv[got:]], off + got)
                if r == 0:
                    break
                got += r
            b = mono()
            rec.add(b - a)
            st.bytes += got
            st.ops += 1
            mine.append((fi, off, off + n, b))

    try:
        stats, _, t_end = run_threads(nthreads, worker, stop)
    finally:
        for fd in fds:
            os.close(fd)
    hist = Histogram.merged(s.recorder.flush() for s in stats)
    return ChunkedRead(sum(s.bytes for s in stats), sum(s.ops for s in stats), hist, t_end,
                       tuple(d for w in done for d in w))


def read_sequential(path: Path, size: int, step: int, buf: mmap.mmap, *, into_place: bool,
                    rec: LatencyRecorder, mark: int = 0) -> tuple[int, int, int]:
    """read(2) `path` in `step`-byte calls into `buf` (at the file offset when
    `into_place`, else at its start each time). Returns (bytes read, reads, monotonic ns
    at which the first `mark` bytes were in, 0 if never)."""
    mv = memoryview(buf)
    nread = ops = ready = 0
    try:
        with open(path, "rb", buffering=0) as f:
            off = 0
            while off < size:
                n = min(size - off, step)
                a = time.monotonic_ns()
                got = f.readinto(mv[off: off + n] if into_place else mv[:n])
                b = time.monotonic_ns()
                rec.add(b - a)
                ops += 1
                if not got:
                    break
                off += got
                nread += got
                if mark and not ready and off >= mark:
                    ready = b
    finally:
        mv.release()
    return nread, ops, ready


def _touch(arr: np.ndarray) -> int:
    """Read one byte of every 4 KiB page (and the last byte): each page is faulted in."""
    if arr.size == 0:
        return 0
    return int(arr[::ALIGN].sum(dtype=np.uint64)) + int(arr[-1])


def touch_array(arr: np.ndarray) -> int:
    """Fault in every page of a byte array (a library's memory-mapped tensor)."""
    return _touch(arr)


def touch_mapped(path: Path, ranges: Sequence[tuple[int, int]],
                 rec: LatencyRecorder) -> int:
    """Map `path` and fault in each [begin, end) range, one latency sample per range.
    Returns the monotonic ns at which the first range was in (0: no ranges)."""
    first = 0
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        whole = np.frombuffer(mm, dtype=np.uint8)
        for begin, end in ranges:
            a = time.monotonic_ns()
            _touch(whole[begin:end])
            b = time.monotonic_ns()
            rec.add(b - a)
            first = first or b
        del whole
    finally:
        mm.close()
    return first
