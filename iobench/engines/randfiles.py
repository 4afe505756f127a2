"""Timed random reads over a set of files (embedding / KV / vector lookups): `depth` reads
in flight, each at a uniformly random block of a uniformly random file, as fio's
randrepeat=0, norandommap, file_service_type=random.

With O_DIRECT and depth > 1 one thread keeps the reads in the kernel: the compiled ring
(aio.run_ring: io_uring or Linux AIO) where it is built, else the Python AIO loop
(aio.run_depth). Otherwise `depth` threads (native.run_threads), each with one
page-aligned buffer and one read in flight. The job file fio runs for the same cell is
iobench.engines.fio.jobfile_random_files.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iobench.engines import aio
from iobench.engines.native import aligned_buffer, merge_workers, open_file, run_threads
from iobench.stats import Histogram

BATCH = 4096  # random offsets drawn per refill (one numpy call, not one per I/O)
RING_DRAW = 1 << 18  # (file, block) pairs the compiled ring wraps around


@dataclass(frozen=True)
class RandomReads:
    """What one timed run measured."""

    bytes: int
    ops: int
    seconds: float
    latency: Histogram
    threads: int
    queue: str  # threads | linux-aio | io_uring
    in_flight_mean: float | None = None  # measured by the compiled ring


def run(files: Sequence[Path], block_size: int, depth: int, runtime_s: float,
        direct: bool, seed: int = 0) -> RandomReads:
    """`depth` random reads of `block_size` in flight over `files` for `runtime_s`."""
    fds = [open_file(p, direct=direct) for p in files]
    try:
        return _run(fds, block_size, depth, runtime_s, direct, seed)
    finally:
        for fd in fds:
            os.close(fd)


def _run(fds: list[int], block_size: int, depth: int, runtime_s: float, direct: bool,
         seed: int) -> RandomReads:
    nblocks = min(os.fstat(fd).st_size for fd in fds) // block_size
    stop = threading.Event()
    end_ns = [0]
    nf = len(fds)
    fd_arr = np.array(fds, dtype=np.int64)
    in_flight: list[float] = []

    def worker(i: int, st: Any) -> None:
        rng = np.random.default_rng([seed, i, time.monotonic_ns()])
        buf = aligned_buffer(block_size)
        mv = memoryview(buf)[:block_size]
        rec = st.recorder
        mono = time.monotonic_ns
        preadv = os.preadv
        stop_at = end_ns[0]
        ops = 0
        nbytes = 0
        while not stop.is_set():
            fsel = rng.integers(0, nf, BATCH).tolist()
            offs = (rng.integers(0, nblocks, BATCH) * block_size).tolist()
            done = False
            for f, off in zip(fsel, offs, strict=False):
                a = mono()
                got = preadv(fds[f], [mv], off)
                b = mono()
                rec.add(b - a)
                ops += 1
                nbytes += got
                if b >= stop_at:
                    done = True
                    break
            if done:
                break
        st.ops, st.bytes = ops, nbytes

    ring = aio.ring_kind() if direct and depth > 1 else None
    use_aio = ring is None and direct and depth > 1 and aio.available()

    def ring_worker(i: int, st: Any) -> None:
        # the compiled loop keeps `depth` reads in flight (io_uring / Linux AIO) over a
        # drawn sequence of (file, block) pairs, wrapping around
        assert ring is not None
        rng = np.random.default_rng([seed, i, time.monotonic_ns()])
        sel = rng.integers(0, nf, RING_DRAW)
        offs = rng.integers(0, nblocks, RING_DRAW).astype(np.int64) * block_size
        hist = st.recorder.hist

        def on_batch(lats: np.ndarray, nbytes: int, now: int) -> None:
            hist.record_many(lats)
            st.ops += len(lats)
            st.bytes += nbytes

        got = aio.run_ring(ring, depth, block_size, fd_arr[sel].astype(np.int32), offs,
                           wrap=True, deadline_ns=end_ns[0], should_stop=stop.is_set,
                           on_batch=on_batch)
        in_flight.append(got["in_flight_mean"])

    def aio_worker(i: int, st: Any) -> None:
        # one thread keeps `depth` reads in the kernel (Linux AIO, as fio's libaio)
        rng = np.random.default_rng([seed, i, time.monotonic_ns()])
        rec = st.recorder

        def next_ios(k: int) -> tuple[list[int], list[int]]:
            return (fd_arr[rng.integers(0, nf, k)].tolist(),
                    (rng.integers(0, nblocks, k) * block_size).tolist())

        def on_batch(lats: list[int], nbytes: int, now: int) -> None:
            rec.add_many(lats)
            st.ops += len(lats)
            st.bytes += nbytes

        aio.run_depth(depth, block_size, next_ios, deadline_ns=end_ns[0],
                      should_stop=stop.is_set, on_batch=on_batch)

    end_ns[0] = time.monotonic_ns() + int(runtime_s * 1e9)
    one = bool(use_aio or ring)
    stats, start_ns, stop_ns = run_threads(
        1 if one else depth, ring_worker if ring else aio_worker if use_aio else worker,
        stop)
    nbytes, ops, hist, _ = merge_workers(stats, start_ns)
    queue = (("linux-aio" if ring == "libaio" else ring) if ring else
             "linux-aio" if use_aio else "threads")
    return RandomReads(nbytes, ops, (stop_ns - start_ns) / 1e9, hist, 1 if one else depth,
                       queue, in_flight[0] if in_flight else None)
