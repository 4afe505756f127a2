"""The native data path: Python threads, page-aligned buffers, os.preadv/pwritev, O_DIRECT.

os.preadv/pwritev release the GIL, so threads behave like fio jobs. Buffers are anonymous
mmaps (page-aligned, as O_DIRECT needs); memory is bounded by threads x block size.
Latency per I/O goes into a per-thread recorder, merged into one histogram at the end.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iobench import interrupt, safepath
from iobench.content import Content
from iobench.engines import IOSpec
from iobench.errors import RunFailed, UsageError
from iobench.results import make_phase
from iobench.stats import Histogram, LatencyRecorder, Timeline

ALIGN = 4096
O_DIRECT = getattr(os, "O_DIRECT", 0)


def aligned_buffer(nbytes: int) -> mmap.mmap:
    """A page-aligned, zero-filled buffer of at least `nbytes` (rounded up to 4 KiB)."""
    n = max(ALIGN, (nbytes + ALIGN - 1) // ALIGN * ALIGN)
    return mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def widen(offset: int, length: int, align: int = ALIGN) -> tuple[int, int, int]:
    """Widen [offset, offset+length) to `align` boundaries for O_DIRECT.

    Returns (aligned_offset, aligned_length, skip) where the wanted bytes start `skip`
    bytes into the aligned read.
    """
    start = offset - offset % align
    end = offset + length
    end = (end + align - 1) // align * align
    return start, end - start, offset - start


def open_file(path: Path, *, write: bool = False, direct: bool = False,
              create: bool = False, truncate: bool = False) -> int:
    """Open for the data path; a filesystem without O_DIRECT gives one clear line."""
    flags = os.O_RDWR if write else os.O_RDONLY
    if create:
        flags |= os.O_CREAT
    if truncate:
        flags |= os.O_TRUNC
    if direct:
        if not O_DIRECT:
            raise UsageError("O_DIRECT is not available on this platform; use --cache drop")
        flags |= O_DIRECT
    try:
        if write:  # never through a link, never a file with other hard links
            from iobench import safepath

            return safepath.open_write(path, flags, 0o644)
        return os.open(path, flags, 0o644)
    except OSError as e:
        if direct and e.errno == errno.EINVAL:
            raise UsageError(
                f"{path}: the filesystem refuses O_DIRECT (e.g. tmpfs); use --cache drop "
                "or a target on real storage"
            ) from None
        raise


def pread_full(fd: int, buf: memoryview, offset: int) -> int:
    """Read len(buf) bytes at offset, looping on short reads; returns bytes read (< len at EOF)."""
    got = 0
    n = len(buf)
    while got < n:
        r = os.preadv(fd, [buf[got:]], offset + got)
        if r == 0:
            break
        got += r
    return got


def pwrite_full(fd: int, buf: memoryview, offset: int) -> int:
    done = 0
    n = len(buf)
    while done < n:
        done += os.pwritev(fd, [buf[done:]], offset + done)
    return done


@dataclass
class WorkerStats:
    """What one worker measured; merged across workers (and ranks) by addition."""

    bytes: int = 0
    ops: int = 0
    recorder: LatencyRecorder = field(default_factory=LatencyRecorder)
    timeline: Timeline | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    error: BaseException | None = None


def merge_workers(
    workers: Sequence[WorkerStats], start_ns: int
) -> tuple[int, int, Histogram, Timeline]:
    hist = Histogram.merged(w.recorder.flush() for w in workers)
    tl = Timeline(start_ns)
    for w in workers:
        if w.timeline is not None:
            tl.merge(w.timeline)
    return sum(w.bytes for w in workers), sum(w.ops for w in workers), hist, tl


def run_threads(n: int, target: Callable[[int, WorkerStats], None],
                stop: threading.Event | None = None) -> tuple[list[WorkerStats], int, int]:
    """Run `target(i, stats)` in n threads; returns (stats, start_ns, end_ns).

    A worker's exception stops the others (via `stop`) and is re-raised here. Ctrl-C or
    SIGTERM sets `stop`; every worker is waited for until it has returned (never a join
    timeout: descriptors and buffers the workers use are released only after that), then
    the interrupt is re-raised with `partial_stats` = (stats, start_ns, end_ns) attached,
    so the caller keeps what was measured up to the interruption.
    """
    stop = stop or threading.Event()
    start_ns = time.monotonic_ns()
    stats = [WorkerStats(timeline=Timeline(start_ns)) for _ in range(n)]

    def body(i: int) -> None:
        try:
            target(i, stats[i])
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            stats[i].error = e
            stop.set()

    threads = [interrupt.Worker(target=body, args=(i,)) for i in range(n)]
    sig = interrupt.start_and_wait(threads, stop)
    end_ns = time.monotonic_ns()
    if sig is not None:
        sig.partial_stats = (stats, start_ns, end_ns)  # type: ignore[attr-defined]
        raise sig
    for s in stats:
        if s.error is not None:
            raise s.error
    return stats, start_ns, end_ns


def io_window(stats: Sequence[WorkerStats], start_ns: int, end_ns: int) -> tuple[int, int]:
    """The phase's window: the first worker's first I/O to the last one's end, as fio
    times a job from its first I/O, not from thread start and buffer set-up (~0.3-1 ms,
    1-3% of a 30 ms pass over 256 MiB of cached file); (start_ns, end_ns) where a worker
    did no I/O or did not say when."""
    ran = [s for s in stats if s.ops]
    if not ran or any(s.first_ns is None or s.last_ns is None for s in ran):
        return start_ns, end_ns
    first = min(s.first_ns for s in ran if s.first_ns is not None)
    last = max(s.last_ns for s in ran if s.last_ns is not None)
    return (first, last) if start_ns <= first < last <= end_ns else (start_ns, end_ns)


def layout(files: Sequence[Path], size: int, content: str = "random", seed: int = 0,
           chunk: int = 8 << 20, progress: Any = None, first_stream: int = 0) -> None:
    """Create each file at `size` bytes of content, unless it already has that size.

    File i gets content stream `first_stream + i`, so files laid out by different ranks
    never share a 4 KiB block.
    """
    buf = aligned_buffer(chunk)
    arr = np.frombuffer(buf, dtype=np.uint8)
    for i, path in enumerate(files):
        if path.exists() and path.stat().st_size == size:
            continue
        gen = Content(content, seed, stream=first_stream + i)
        tmp = path.with_name(path.name + ".part")
        fd = safepath.open_write(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            off = 0
            while off < size:
                n = min(chunk, size - off)
                gen.fill(arr[:n], off)
                pwrite_full(fd, memoryview(buf)[:n], off)
                off += n
                if progress is not None:
                    progress.advance(n)
            os.fsync(fd)
        finally:
            os.close(fd)
        safepath.replace(tmp, path)


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    t = os.times()
    return t.user + t.system


def _offsets(spec: IOSpec, job: int, file_size: int) -> np.ndarray:
    nblocks = file_size // spec.block_size
    if nblocks == 0:
        raise UsageError(f"--size {file_size} is smaller than --block-size {spec.block_size}; "
                         "give a larger --size")
    if spec.is_random:
        # every block once per pass, in random order (fio's random map, its default)
        rng = np.random.default_rng([spec.seed, spec.first_job + job])
        return rng.permutation(nblocks).astype(np.int64) * spec.block_size
    return np.arange(nblocks, dtype=np.int64) * spec.block_size


def run(spec: IOSpec, progress: Any = None) -> list[dict[str, Any]]:
    """Run one pattern; returns its phases (the I/O phase, and `fsync` for writes).

    Each job owns one file. Queue depth d > 1 with O_DIRECT uses Linux native AIO: one
    thread per job keeps d requests in the kernel (as fio's libaio); otherwise d threads
    per job issue synchronous I/O, each with its own buffer. Either way jobs x depth
    requests are in flight; `metrics.queue` says which was used.
    """
    if spec.direct and spec.block_size % ALIGN:
        raise UsageError(f"--block-size {spec.block_size}: O_DIRECT needs a multiple of 4096; "
                         "use e.g. 4k or 1m")
    from iobench.engines import aio

    deep = spec.direct and spec.queue_depth > 1
    ring = aio.ring_kind() if deep and not spec.is_write else None
    use_aio = deep and ring is None and aio.available()
    fast = aio.fastio() if not spec.is_write else None  # the compiled pread loop
    lanes = 1 if (use_aio or ring) else spec.queue_depth  # threads per job
    nthreads = spec.jobs * lanes
    stop = threading.Event()
    deadline_ns = int(spec.runtime * 1e9) if spec.runtime > 0 else 0
    fds = [open_file(f, write=spec.is_write, direct=spec.direct, create=spec.is_write)
           for f in spec.files]
    try:
        # exactly --size per file, as fio's size=: a larger existing file is not read past it
        sizes = [spec.size if spec.is_write else min(spec.size, os.fstat(fd).st_size)
                 for fd in fds]
        offsets = [_offsets(spec, j, sizes[j]) for j in range(spec.jobs)]
        gens = [Content("random", spec.seed, stream=spec.first_job + j)
                for j in range(spec.jobs)]
        t0 = [0]

        in_flight: list[float] = []  # per ring / AIO thread: measured mean in the kernel

        def fast_worker(i: int, st: WorkerStats) -> None:
            # reads through the compiled pread loop (GIL released): bounded steps, each
            # within one timeline second, then progress and the stop check
            job, lane = divmod(i, spec.queue_depth)
            buf = aligned_buffer(spec.block_size)
            mv = memoryview(buf)[: spec.block_size]
            offs = offsets[job]
            lat = np.zeros(aio.STEP_OPS, dtype=np.int64)
            tl = st.timeline
            assert tl is not None
            hist = st.recorder.hist
            origin, interval = tl.start_ns, tl.interval_ns
            mono = time.monotonic_ns
            assert fast is not None
            loop = fast.pread_loop
            pos = lane
            # the window and --runtime open at the first I/O (set-up excluded), as fio's
            st.first_ns = mono()
            end = st.first_ns + deadline_ns if deadline_ns else 0
            while True:
                now = mono()
                until = min(now + aio.STEP_NS,
                            origin + ((now - origin) // interval + 1) * interval)
                if end:
                    until = min(until, end)
                n, nbytes, pos, now, eof = loop(fds[job], offs, pos, spec.queue_depth, lane,
                                                bool(end), aio.STEP_OPS, until, mv, lat)
                if n:
                    hist.record_many(lat[:n])
                    tl.add(min(now, until) - 1, nbytes)  # the step ends at `until`
                    st.bytes += nbytes
                    st.ops += n
                    if progress is not None:
                        progress.advance(nbytes)
                if eof or (end and now >= end) or stop.is_set():
                    break
            st.last_ns = mono()

        def ring_worker(i: int, st: WorkerStats) -> None:
            tl = st.timeline
            assert tl is not None
            assert ring is not None
            hist = st.recorder.hist

            def on_batch(lats: np.ndarray, nbytes: int, now: int) -> None:
                hist.record_many(lats)
                st.bytes += nbytes
                st.ops += len(lats)
                tl.add(now - 1, nbytes)
                if progress is not None:
                    progress.advance(nbytes)

            st.first_ns = first = time.monotonic_ns()
            got = aio.run_ring(ring, spec.queue_depth, spec.block_size, fds[i], offsets[i],
                               wrap=bool(deadline_ns),
                               deadline_ns=first + deadline_ns if deadline_ns else 0,
                               should_stop=stop.is_set, on_batch=on_batch,
                               timeline_origin=tl.start_ns, timeline_interval=tl.interval_ns)
            st.last_ns = time.monotonic_ns()
            in_flight.append(got["in_flight_mean"])

        def worker(i: int, st: WorkerStats) -> None:
            # The hot loop: every attribute lookup and call here costs IOPS at small block
            # sizes, so state lives in locals and is folded into `st` every BATCH I/Os.
            job, lane = divmod(i, spec.queue_depth)
            fd = fds[job]
            offs = offsets[job].tolist()
            buf = aligned_buffer(spec.block_size)
            bufs = [memoryview(buf)[: spec.block_size]]
            arr = np.frombuffer(buf, dtype=np.uint8)[: spec.block_size]
            rec = st.recorder
            tl = st.timeline
            assert tl is not None
            lat = rec._buf
            append = lat.append
            write = spec.is_write
            fill = gens[job].fill
            step = spec.queue_depth
            pos = lane
            n = len(offs)
            mono = time.monotonic_ns
            io = os.pwritev if write else os.preadv
            origin = tl.start_ns
            interval = tl.interval_ns
            sec = -1
            sec_bytes = 0
            done_bytes = 0
            done_ops = 0
            pending = 0  # bytes not yet shown by the progress bar
            st.first_ns = mono()
            end = st.first_ns + deadline_ns if deadline_ns else 0
            while True:
                if pos >= n:
                    if not end:
                        break
                    pos = lane  # time-based: wrap around, as fio's time_based
                off = offs[pos]
                if write:
                    fill(arr, off)  # refilled content: incompressible, never deduped
                t1 = mono()
                got = io(fd, bufs, off)
                t2 = mono()
                append(t2 - t1)
                done_bytes += got
                done_ops += 1
                s = (t2 - origin) // interval
                if s == sec:
                    sec_bytes += got
                else:
                    if sec_bytes:
                        tl.add(origin + sec * interval, sec_bytes)
                    sec, sec_bytes = s, got
                pos += step
                if not done_ops & 255:
                    if progress is not None:
                        progress.advance(done_bytes - pending)
                        pending = done_bytes
                    if len(lat) >= 65536:
                        rec.flush()
                    if stop.is_set():
                        break
                if end and t2 >= end:
                    break
            st.last_ns = mono()
            if sec_bytes:
                tl.add(origin + sec * interval, sec_bytes)
            if progress is not None:
                progress.advance(done_bytes - pending)
            st.bytes += done_bytes
            st.ops += done_ops

        def aio_worker(i: int, st: WorkerStats) -> None:
            job, lane = divmod(i, lanes)
            depth = spec.queue_depth // lanes + (1 if lane < spec.queue_depth % lanes else 0)
            fd = fds[job]
            offs = offsets[job][lane::lanes].tolist()
            n = len(offs)
            pos = [0]
            st.first_ns = time.monotonic_ns()
            end = st.first_ns + deadline_ns if deadline_ns else 0
            rec = st.recorder
            tl = st.timeline
            assert tl is not None
            seen = [0, 0]  # bytes, ops

            def next_ios(k: int) -> tuple[int, list[int]] | None:
                # fewer than k only when a one-pass run has no more offsets
                i = pos[0]
                if i >= n and not end:
                    return None
                out = offs[i : i + k]
                pos[0] = i + len(out)
                while end and len(out) < k:  # time-based: wrap around, as fio's time_based
                    more = offs[: k - len(out)]
                    out += more
                    pos[0] = len(more)
                return fd, out

            def on_batch(lats: list[int], nbytes: int, now: int) -> None:
                rec._buf.extend(lats)
                seen[0] += nbytes
                seen[1] += len(lats)
                tl.add(now, nbytes)
                if len(rec._buf) >= 65536:
                    rec.flush()
                if progress is not None:
                    progress.advance(nbytes)

            got = aio.run_depth(depth, spec.block_size, next_ios, write=spec.is_write,
                                fill=gens[job].fill, deadline_ns=end, should_stop=stop.is_set,
                                on_batch=on_batch)
            st.last_ns = time.monotonic_ns()
            in_flight.append(got["in_flight_mean"])
            st.bytes += seen[0]
            st.ops += seen[1]

        body = (ring_worker if ring else aio_worker if use_aio else
                fast_worker if fast is not None else worker)
        cpu0 = _cpu_seconds()
        t0[0] = time.monotonic_ns()
        wall0 = time.time_ns()
        queue = ("linux-aio" if ring == "libaio" else ring) if ring else \
            "linux-aio" if use_aio else "threads"
        try:
            stats, start_ns, end_ns = run_threads(nthreads, body, stop)
        except KeyboardInterrupt as e:  # keep the bytes, ops and latencies measured so far
            part = getattr(e, "partial_stats", None)
            if part is not None:
                stats, start_ns, end_ns = part
                nbytes, ops, hist, tl = merge_workers(stats, start_ns)
                p = make_phase(spec.pattern, nbytes=nbytes, seconds=(end_ns - start_ns) / 1e9,
                               ops=ops, latency=hist, timeline=tl, engine="native",
                               direction="write" if spec.is_write else "read",
                               metrics={"queue": queue, "interrupted": True,
                                        "includes_fsync": False})
                w0 = wall0 + start_ns - t0[0]
                p["start_wall_ns"], p["end_wall_ns"] = w0, w0 + (end_ns - start_ns)
                e.phases = [p]  # type: ignore[attr-defined]
            raise
        start_ns, end_ns = io_window(stats, start_ns, end_ns)
        wall0 += start_ns - t0[0]
        cpu_s = _cpu_seconds() - cpu0
        nbytes, ops, hist, tl = merge_workers(stats, start_ns)
        seconds = (end_ns - start_ns) / 1e9
        metrics: dict[str, Any] = {
            "queue": queue, "cpu_s": cpu_s,
            "loop": "compiled" if ring or (fast is not None and not use_aio) else "python"}
        if in_flight:  # measured in the kernel's queue, summed over the jobs
            metrics["in_flight_mean"] = sum(in_flight)
            metrics["in_flight_method"] = "time integral of requests in the kernel queue"
        elif hist.count and seconds > 0:  # threads: each is in flight while in its call
            metrics["in_flight_mean"] = hist.total / (seconds * 1e9)
            metrics["in_flight_method"] = "time inside the I/O calls / wall time"
        phases = [make_phase(spec.pattern, nbytes=nbytes, seconds=seconds, ops=ops,
                             latency=hist, timeline=tl, engine="native",
                             direction="write" if spec.is_write else "read",
                             metrics=metrics)]
        if spec.is_write and spec.end_fsync:
            # Writes are reported until durable (as fio's end_fsync counts the final fsync
            # in the job's runtime); the fsync alone is also shown as its own phase.
            f0 = time.monotonic_ns()
            for fd in fds:
                os.fsync(fd)
            f1 = time.monotonic_ns()
            fsync_s = (f1 - f0) / 1e9
            total = (f1 - start_ns) / 1e9
            phases = [make_phase(spec.pattern, nbytes=nbytes, seconds=total, ops=ops,
                                 latency=hist, timeline=tl, engine="native", direction="write",
                                 metrics={**metrics, "fsync_s": fsync_s,
                                          "write_excl_fsync_s": seconds,
                                          "includes_fsync": True,
                                          "cpu_s": _cpu_seconds() - cpu0})]
            phases.append(make_phase("fsync", nbytes=0, seconds=fsync_s, ops=len(fds),
                                     engine="native", direction="sync"))
            end_ns = f1
        # wall-clock bounds, for merging ranks (iobench.dist)
        phases[0]["start_wall_ns"] = wall0
        phases[0]["end_wall_ns"] = wall0 + (end_ns - start_ns)
        if len(phases) > 1:  # the fsync phase ends with the write phase
            phases[1]["start_wall_ns"] = wall0 + (f0 - start_ns)
            phases[1]["end_wall_ns"] = phases[0]["end_wall_ns"]
        return phases
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise RunFailed(f"disk full while writing ({e.filename or 'target'}); "
                            "free space or use a smaller --size") from None
        raise
    finally:
        for fd in fds:
            os.close(fd)
