"""Small random reads over a file set (embedding / KV / vector lookups): one cell per
block size x queue depth, native threads or fio on the same files."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iobench.engines.native import aligned_buffer, merge_workers, open_file, run_threads
from iobench.errors import UsageError
from iobench.results import make_phase
from iobench.units import format_bytes

BATCH = 4096  # random offsets drawn per refill (one numpy call, not one per I/O)


def file_set(root: Path, count: int) -> list[Path]:
    return [root / f"file-{i:03d}.dat" for i in range(count)]


def cell_name(block_size: int, queue_depth: int) -> str:
    return f"randread bs={format_bytes(block_size).replace(' ', '')} qd={queue_depth}"


def check(block_sizes: Sequence[int], file_size: int, direct: bool) -> None:
    for bs in block_sizes:
        if direct and bs % 4096:
            raise UsageError(f"--block-size {bs}: O_DIRECT (--cache direct) needs a multiple "
                             "of 4096; use e.g. 4k, 16k, or --cache drop")
        if bs > file_size:
            raise UsageError(f"--block-size {format_bytes(bs)} is larger than --file-size "
                             f"{format_bytes(file_size)}; give a larger --file-size")


def native_cell(files: Sequence[Path], block_size: int, queue_depth: int, runtime_s: float,
                direct: bool, seed: int = 0) -> dict[str, Any]:
    """`queue_depth` reads in flight, each at a uniformly random block of a uniformly random
    file (as fio's randrepeat=0, norandommap, file_service_type=random): with O_DIRECT and
    depth > 1 one thread keeps them in the kernel through Linux AIO (iobench.engines.aio);
    otherwise `queue_depth` threads, each with one page-aligned buffer and one read in
    flight."""
    fds = [open_file(p, direct=direct) for p in files]
    try:
        nblocks = min(os.fstat(fd).st_size for fd in fds) // block_size
        stop = threading.Event()
        end_ns = [0]

        def worker(i: int, st: Any) -> None:
            rng = np.random.default_rng([seed, i, time.monotonic_ns()])
            buf = aligned_buffer(block_size)
            mv = memoryview(buf)[:block_size]
            rec = st.recorder
            mono = time.monotonic_ns
            preadv = os.preadv
            nf = len(fds)
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

        from iobench.engines import aio

        ring = aio.ring_kind() if direct and queue_depth > 1 else None
        use_aio = ring is None and direct and queue_depth > 1 and aio.available()
        fd_arr = np.array(fds, dtype=np.int64)
        in_flight: list[float] = []

        def ring_worker(i: int, st: Any) -> None:
            # the compiled loop keeps queue_depth reads in flight (io_uring / Linux AIO)
            # over a drawn sequence of (file, block) pairs, wrapping around
            assert ring is not None
            rng = np.random.default_rng([seed, i, time.monotonic_ns()])
            n = 1 << 18
            sel = rng.integers(0, len(fds), n)
            offs = rng.integers(0, nblocks, n).astype(np.int64) * block_size
            hist = st.recorder.hist

            def on_batch(lats: np.ndarray, nbytes: int, now: int) -> None:
                hist.record_many(lats)
                st.ops += len(lats)
                st.bytes += nbytes

            got = aio.run_ring(ring, queue_depth, block_size,
                               fd_arr[sel].astype(np.int32), offs, wrap=True,
                               deadline_ns=end_ns[0], should_stop=stop.is_set,
                               on_batch=on_batch)
            in_flight.append(got["in_flight_mean"])

        def aio_worker(i: int, st: Any) -> None:
            # one thread keeps queue_depth reads in the kernel (Linux AIO, as fio's libaio)
            rng = np.random.default_rng([seed, i, time.monotonic_ns()])
            rec = st.recorder

            def next_ios(k: int) -> tuple[list[int], list[int]]:
                return (fd_arr[rng.integers(0, len(fds), k)].tolist(),
                        (rng.integers(0, nblocks, k) * block_size).tolist())

            def on_batch(lats: list[int], nbytes: int, now: int) -> None:
                rec._buf.extend(lats)
                if len(rec._buf) >= 65536:
                    rec.flush()
                st.ops += len(lats)
                st.bytes += nbytes

            aio.run_depth(queue_depth, block_size, next_ios, deadline_ns=end_ns[0],
                          should_stop=stop.is_set, on_batch=on_batch)

        end_ns[0] = time.monotonic_ns() + int(runtime_s * 1e9)
        stats, start_ns, stop_ns = run_threads(
            1 if use_aio or ring else queue_depth,
            ring_worker if ring else aio_worker if use_aio else worker, stop)
        nbytes, ops, hist, _ = merge_workers(stats, start_ns)
    finally:
        for fd in fds:
            os.close(fd)
    return make_phase(cell_name(block_size, queue_depth), nbytes=nbytes,
                      seconds=(stop_ns - start_ns) / 1e9, ops=ops, latency=hist,
                      engine="native", direction="read",
                      metrics={"block_size": block_size, "queue_depth": queue_depth,
                               "direct": direct,
                               "threads": 1 if use_aio or ring else queue_depth,
                               "queue": ("linux-aio" if ring == "libaio" else ring) if ring
                               else "linux-aio" if use_aio else "threads",
                               **({"in_flight_mean": in_flight[0]} if in_flight else {})})


def fio_jobfile(files: Sequence[Path], block_size: int, queue_depth: int, runtime_s: float,
                direct: bool, ioengine: str, file_size: int) -> str:
    """One fio job, `queue_depth` I/Os in flight over all files (the native total)."""
    from iobench import __version__
    from iobench.engines.fio import PERCENTILE_LIST, _escape

    return "\n".join([
        f"; iobench {__version__}: {cell_name(block_size, queue_depth)}, fio engine",
        "[global]", "rw=randread", f"bs={block_size}", f"ioengine={ioengine}",
        f"iodepth={queue_depth}", f"direct={int(direct)}", "randrepeat=0", "norandommap=1",
        "invalidate=0", "time_based=1", f"runtime={max(1, round(runtime_s * 1000))}ms",
        "file_service_type=random", f"nrfiles={len(files)}", f"filesize={file_size}",
        "lat_percentiles=1", f"percentile_list={PERCENTILE_LIST}",
        "", "[randread]", "filename=" + ":".join(_escape(p) for p in files), "",
    ])


def fio_cell(files: Sequence[Path], block_size: int, queue_depth: int, runtime_s: float,
             direct: bool, ioengine: str, file_size: int, workdir: Path) -> dict[str, Any]:
    from iobench.engines import fio

    name = cell_name(block_size, queue_depth)
    text = fio_jobfile(files, block_size, queue_depth, runtime_s, direct, ioengine, file_size)
    doc = fio.run_fio(text, workdir)
    phase = fio.parse(doc, name=name)[0]
    phase["metrics"].update({"block_size": block_size, "queue_depth": queue_depth,
                             "direct": direct, "ioengine": ioengine})
    phase["fio"] = {"jobfile": text, "command": (doc.get("iobench") or {}).get("command")}
    return phase
