"""Mode 2: DiskANN's I/O pattern without an engine, at any index size.

A query is `hops` dependent rounds; each round issues `beam_width` random sector reads
together (one io_submit) and waits for all of them before the next round may start, as
a beam search waits for the neighbour lists it asked for before choosing the next
candidates. `concurrency` queries are in flight at once. One thread drives all of them
through one Linux AIO context (O_DIRECT), so the harness adds no lock contention; memory
is the read buffers only (concurrency x beam_width x sector).
"""

from __future__ import annotations

import heapq
import os
import signal
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from iobench.errors import RunFailed
from iobench.stats import Histogram


def layout(path: Path, size: int, seed: int = 0x7EC, chunk: int = 8 << 20) -> None:
    """Lay out the index file once: incompressible content (never deduplicated), written
    to a temporary name and renamed, never through a symlink."""
    from iobench.content import Content
    from iobench.engines.native import aligned_buffer, pwrite_full
    from iobench.infer.vector.data import open_new

    buf = aligned_buffer(chunk)
    arr = np.frombuffer(buf, dtype=np.uint8)
    gen = Content("random", seed, stream=0)
    tmp = path.with_name(path.name + ".part")
    fd = open_new(tmp)
    try:
        off = 0
        while off < size:
            n = min(chunk, size - off)
            gen.fill(arr[:n], off)
            pwrite_full(fd, memoryview(buf)[:n], off)
            off += n
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# Test hook (the throttled rig): hold each query this long after every round before the
# next round is issued, so a run's structure is computable from hop and beam counts.
ROUND_DELAY_NS = 0


def run(path: Path, *, sector: int, hops: int, beam_width: int, concurrency: int,
        runtime_s: float, seed: int = 0, should_stop: Callable[[], bool] | None = None,
        max_queries: int = 0) -> dict[str, Any]:
    """Run the pattern for `runtime_s` (or `max_queries` queries); every query started
    is finished, so reads == queries x hops x beam_width exactly."""
    from iobench.engines import aio
    from iobench.engines.native import O_DIRECT, aligned_buffer
    from iobench.infer.vector.data import NOFOLLOW

    fd = os.open(path, os.O_RDONLY | O_DIRECT | NOFOLLOW)  # a planted symlink: ELOOP
    depth = concurrency * beam_width
    try:
        nsect = os.fstat(fd).st_size // sector
        if nsect == 0:
            raise RunFailed(f"{path}: smaller than one --sector of {sector} bytes")
        ctx = aio.AioContext(depth)
    except BaseException:
        os.close(fd)
        raise
    buf = aligned_buffer(depth * sector)
    import ctypes

    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    for i in range(depth):
        cb = ctx.iocbs[i]
        cb.aio_lio_opcode = aio.IOCB_CMD_PREAD
        cb.aio_nbytes = sector
        cb.aio_fildes = fd
        cb.aio_buf = base + i * sector
    pack_q = struct.Struct("<q").pack_into
    pack_u64 = struct.Struct("<Q").pack_into
    unpack_ev = struct.Struct("<QQqq").unpack_from
    cbv, ptrv, evv = ctx.cb_view, ctx.ptr_view, ctx.ev_view
    cb_base = ctx.cb_base
    rng = np.random.default_rng([seed, time.monotonic_ns()])
    pool: list[int] = []
    mono = time.monotonic_ns
    sent = [0] * depth
    remaining = [0] * concurrency
    hop = [0] * concurrency
    qstart = [0] * concurrency
    read_lat: list[int] = []
    query_lat: list[int] = []
    read_hist = Histogram()
    query_hist = Histogram()
    delay = ROUND_DELAY_NS
    timers: list[tuple[int, int]] = []

    started = 0
    reads = 0
    stopping = False
    active = 0
    reads_in_flight = 0

    def submit_rounds(qs: list[int]) -> int:
        """Aim and submit one round (beam_width reads) for each query in `qs`, all in one
        io_submit: a round's reads reach the kernel together, and one system call per
        batch of completions keeps the Python cost per read small."""
        nonlocal pool
        k = len(qs) * beam_width
        if len(pool) < k:
            pool = pool + (rng.integers(0, nsect, max(8192, k)) * sector).tolist()
        offs = pool[:k]
        del pool[:k]
        j = 0
        for q in qs:
            remaining[q] = beam_width
            s = q * beam_width
            for _ in range(beam_width):
                pack_q(cbv, 64 * s + 40, offs[j])
                pack_u64(ptrv, 8 * j, cb_base + 64 * s)
                s += 1
                j += 1
        t = mono()
        for q in qs:
            s = q * beam_width
            sent[s:s + beam_width] = [t] * beam_width
        ctx.submit(k)
        return k

    def end_query(q: int, now: int, todo: list[int]) -> None:
        """Query q finished its last round: count it, and start a new one in its place."""
        nonlocal active, started
        query_lat.append(now - qstart[q])
        if stopping or (max_queries and started >= max_queries):
            active -= 1
            return
        hop[q] = 0
        qstart[q] = now
        started += 1
        todo.append(q)

    t0 = mono()
    w0 = time.time_ns()
    deadline = t0 + int(runtime_s * 1e9) if runtime_s > 0 else 0
    # Ctrl-C / SIGTERM only set a flag here: an exception raised between a completion and
    # its bookkeeping would lose count of the reads still in the kernel. New queries stop;
    # the ones in flight finish their rounds, so the counts stay exact.
    signals: list[int] = []
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda signum, frame: signals.append(signum))
    rl_append = read_lat.append
    try:
        first = list(range(min(concurrency, max_queries or concurrency)))
        now = mono()
        for q in first:
            qstart[q] = now
        started = active = len(first)
        reads_in_flight += submit_rounds(first)
        while active:
            todo: list[int] = []
            if timers:  # the throttled rig: rounds whose hold has expired go next
                now = mono()
                if timers[0][0] <= now or not reads_in_flight:
                    due, q = heapq.heappop(timers)
                    if due > now:
                        time.sleep((due - now) / 1e9)
                    if hop[q] < hops:
                        todo.append(q)
                    else:
                        end_query(q, mono(), todo)
                    if todo:
                        reads_in_flight += submit_rounds(todo)
                    continue
            n = ctx.getevents(1)
            now = mono()
            reads_in_flight -= n
            reads += n
            if (deadline and now >= deadline) or signals or \
                    (should_stop is not None and should_stop()):
                stopping = True  # no new queries; the ones in flight finish
            for i in range(n):
                slot, _obj, res, _res2 = unpack_ev(evv, 32 * i)
                if res != sector:
                    raise RunFailed(f"{path}: AIO read returned {res} "
                                    f"({os.strerror(-res) if res < 0 else 'short read'})")
                rl_append(now - sent[slot])
                q = slot // beam_width
                remaining[q] -= 1
                if remaining[q]:
                    continue
                hop[q] += 1  # the round is complete: only now may the next one start
                if delay:
                    heapq.heappush(timers, (now + delay, q))
                elif hop[q] < hops:
                    todo.append(q)
                else:
                    end_query(q, now, todo)
            if todo:
                reads_in_flight += submit_rounds(todo)
            if len(read_lat) >= 65536:  # memory stays bounded however long the run
                read_hist.record_many(read_lat)
                read_lat.clear()
                query_hist.record_many(query_lat)
                query_lat.clear()
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        if reads_in_flight > 0:
            try:
                while reads_in_flight > 0:
                    reads_in_flight -= ctx.getevents(1)
            except OSError:
                pass
        ctx.close()
        os.close(fd)
        t1 = mono()

    read_hist.record_many(read_lat)
    query_hist.record_many(query_lat)
    return {"queries": query_hist.count, "reads": reads, "bytes": reads * sector,
            "seconds": (t1 - t0) / 1e9,
            "start_wall_ns": w0, "end_wall_ns": w0 + (t1 - t0),
            "query_hist": query_hist, "read_hist": read_hist,
            "interrupted": signals[0] if signals else 0}
