"""Dependent batches of reads: submit N reads together, wait for all of them, then the
next batch; several such streams in flight. The access shape of a beam search over a
disk-resident graph index (DiskANN: a query is `rounds` hops, each hop reads the `batch`
= beam-width neighbour lists it chose, and the next hop needs them all), and of any
reader whose next requests depend on the last ones.

`run_rounds` opens the file with O_DIRECT and keeps `streams` streams in flight; each
stream is `rounds` rounds of `batch` random `block_size`-aligned reads. It returns the
reads, bytes and time, a per-read latency histogram (submit to completion) and a
per-stream one (first submit of round 1 to the last completion of the last round). The
loop runs in the compiled helper (iobench._fastio Ring.rounds: io_uring where the kernel
allows it, else Linux AIO; the GIL released, handing back every 0.1 s) and otherwise in
Python over ctypes Linux AIO. Memory: the read buffers (streams x batch x block_size) and
bounded latency buffers. When the runtime ends (or a stop is asked: Ctrl-C, SIGTERM) no
new stream starts and the ones in flight finish, so reads == streams x rounds x batch.
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

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
STEP_NS = 100_000_000  # the compiled loop hands back control at least every 0.1 s
STEP_READS = 65536  # latencies per step (bounded memory however long the run)


def queue_kind() -> str | None:
    """How run_rounds queues reads here: the compiled ring's kind (io_uring, libaio),
    "python-aio" (ctypes Linux AIO), or "threads" (pread threads: neither is allowed;
    IOBENCH_BATCH_QUEUE=threads forces it)."""
    from iobench.engines import aio

    if os.environ.get("IOBENCH_BATCH_QUEUE") == "threads":  # tests: force the fallback
        return "threads"
    kind = aio.ring_kind()
    if kind is not None:
        return kind
    return "python-aio" if aio.available() else "threads"


def run_rounds(path: Path, *, block_size: int, rounds: int, batch: int, streams: int,
               runtime_s: float, seed: int = 0, should_stop: Callable[[], bool] | None = None,
               max_streams: int = 0, queue: str | None = None) -> dict[str, Any]:
    """Run `streams` streams of `rounds` dependent batches of `batch` reads for
    `runtime_s` (or until `max_streams` streams started); every stream started finishes.

    Returns {streams, reads, bytes, seconds, start_wall_ns, end_wall_ns, stream_hist,
    read_hist, queue, loop, in_flight_mean, interrupted (the signal number or 0)}.
    `queue` forces one of io_uring, libaio (the compiled ring), python-aio or threads (benchmarks,
    tests); by default the best this kernel allows (queue_kind()).
    """
    from iobench.engines.native import O_DIRECT

    fd = os.open(path, os.O_RDONLY | O_DIRECT | NOFOLLOW)  # a planted symlink: ELOOP
    try:
        if os.fstat(fd).st_size // block_size == 0:
            raise RunFailed(f"{path}: smaller than one read of {block_size} bytes")
        kind = queue or queue_kind()
        if kind in ("io_uring", "libaio"):
            return _run_ring(kind, fd, path, block_size=block_size, rounds=rounds,
                             batch=batch, streams=streams, runtime_s=runtime_s, seed=seed,
                             should_stop=should_stop, max_streams=max_streams)
        if kind == "threads":
            return _run_threads(fd, path, sector=block_size, hops=rounds, beam_width=batch,
                                concurrency=streams, runtime_s=runtime_s, seed=seed,
                                should_stop=should_stop, max_queries=max_streams)
        return _run_python(fd, path, sector=block_size, hops=rounds, beam_width=batch,
                           concurrency=streams, runtime_s=runtime_s, seed=seed,
                           should_stop=should_stop, max_queries=max_streams)
    finally:
        os.close(fd)


class _Signals:
    """Ctrl-C / SIGTERM only set a flag while the loop runs (main thread): an exception
    between a completion and its bookkeeping would lose count of the reads still in the
    kernel. New streams stop; the ones in flight finish, so the counts stay exact."""

    def __init__(self) -> None:
        self.got: list[int] = []
        self.old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, lambda signum, frame: self.got.append(signum))
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.old.items():
            signal.signal(signum, handler)


def _run_ring(kind: str, fd: int, path: Path, *, block_size: int, rounds: int, batch: int,
              streams: int, runtime_s: float, seed: int,
              should_stop: Callable[[], bool] | None, max_streams: int) -> dict[str, Any]:
    from iobench.engines import aio

    mod = aio.fastio()
    depth = streams * batch
    ring = mod.Ring(kind, depth, block_size)
    state = np.zeros(8 + 5 * streams, dtype=np.int64)
    state[0] = np.int64(np.random.default_rng([seed, time.monotonic_ns()]).integers(
        -(2**62), 2**62))
    state[3] = os.fstat(fd).st_size // block_size
    rlat = np.zeros(STEP_READS + depth, dtype=np.int64)
    slat = np.zeros(max(STEP_READS // max(1, rounds * batch), 64) + streams, dtype=np.int64)
    read_hist, stream_hist = Histogram(), Histogram()
    mono = time.monotonic_ns
    delay = ROUND_DELAY_NS
    reads = 0
    ok = False
    t0 = mono()
    w0 = time.time_ns()
    deadline = t0 + int(runtime_s * 1e9) if runtime_s > 0 else 0
    with _Signals() as sigs:
        try:
            stop = False
            while True:
                until = mono() + STEP_NS
                n, nr, ns, now, inflight, active = ring.rounds(
                    fd, batch, rounds, state, max_streams, deadline, until, stop, delay,
                    rlat, slat)
                reads += n
                read_hist.record_many(rlat[:nr])
                stream_hist.record_many(slat[:ns])
                if not active:
                    break
                stop = stop or bool(sigs.got) or (should_stop is not None and should_stop())
            ok = True
        except EOFError:
            raise RunFailed(f"{path}: a read returned fewer bytes than asked (the file "
                            "shrank while it was read?)") from None
        except OSError as e:
            raise RunFailed(f"{path}: a read failed: {os.strerror(e.errno or 0)}") from None
        finally:
            t1 = mono()
            if not ok:  # an error: the streams in flight finish here, in the ring's thread
                try:
                    while ring.rounds(fd, batch, rounds, state, max_streams, 0,
                                      mono() + STEP_NS, True, 0, rlat, slat)[5]:
                        pass
                except OSError:
                    pass  # the destructor keeps the buffers of anything still in flight
            area, first, last = ring.in_flight_area()
            try:
                ring.close()
            except RuntimeError:
                pass
    return {"streams": stream_hist.count, "reads": reads, "bytes": reads * block_size,
            "seconds": (t1 - t0) / 1e9, "start_wall_ns": w0, "end_wall_ns": w0 + (t1 - t0),
            "stream_hist": stream_hist, "read_hist": read_hist,
            "queue": "linux-aio" if kind == "libaio" else kind, "loop": "compiled",
            "in_flight_mean": area / (last - first) if last > first else 0.0,
            "interrupted": sigs.got[0] if sigs.got else 0}


# Test hook (the throttled rig): hold each query this long after every round before the
# next round is issued, so a run's structure is computable from hop and beam counts.
ROUND_DELAY_NS = 0


def _run_python(fd: int, path: Path, *, sector: int, hops: int, beam_width: int,
                concurrency: int, runtime_s: float, seed: int,
                should_stop: Callable[[], bool] | None, max_queries: int) -> dict[str, Any]:
    """The same loop in Python over ctypes Linux AIO (where the compiled helper is not
    built): one io_submit per batch of ready rounds, one io_getevents per wake-up."""
    from iobench.engines import aio
    from iobench.engines.native import aligned_buffer

    depth = concurrency * beam_width
    nsect = os.fstat(fd).st_size // sector
    ctx = aio.AioContext(depth)
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
        t1 = mono()

    read_hist.record_many(read_lat)
    query_hist.record_many(query_lat)
    return {"streams": query_hist.count, "reads": reads, "bytes": reads * sector,
            "seconds": (t1 - t0) / 1e9,
            "start_wall_ns": w0, "end_wall_ns": w0 + (t1 - t0),
            "stream_hist": query_hist, "read_hist": read_hist, "queue": "linux-aio",
            "loop": "python", "interrupted": signals[0] if signals else 0}


def _run_threads(fd: int, path: Path, *, sector: int, hops: int, beam_width: int,
                 concurrency: int, runtime_s: float, seed: int,
                 should_stop: Callable[[], bool] | None, max_queries: int) -> dict[str, Any]:
    """The fallback where neither io_uring nor Linux AIO is allowed: `beam_width` threads
    per stream, each issuing one os.preadv per round (the GIL released), a round ending
    when all of them returned (a barrier), so a round's reads are in flight together and
    the next round waits for all of them. Read latency is the preadv call's duration."""
    from iobench.engines.native import aligned_buffer

    nsect = os.fstat(fd).st_size // sector
    mono = time.monotonic_ns
    lock = threading.Lock()
    read_hist, query_hist = Histogram(), Histogram()
    errors: list[BaseException] = []
    state = {"started": 0, "stopping": False}
    deadline = mono() + int(runtime_s * 1e9) if runtime_s > 0 else 0
    delay = ROUND_DELAY_NS

    def may_start() -> bool:  # under `lock`
        if state["stopping"] or (max_queries and state["started"] >= max_queries):
            return False
        if (deadline and mono() >= deadline) or errors or \
                (should_stop is not None and should_stop()):
            state["stopping"] = True
            return False
        state["started"] += 1
        return True

    def stream(q: int) -> None:
        s = {"round": 0, "start": 0, "go": False}
        with lock:
            s["go"] = may_start()
        s["start"] = mono()
        qlat: list[int] = []

        def round_done() -> None:  # one thread runs this when the round's reads all returned
            if delay:
                time.sleep(delay / 1e9)  # the throttled rig's hold, as in the other loops
            s["round"] += 1
            if s["round"] < hops:
                return
            now = mono()
            qlat.append(now - s["start"])
            s["round"] = 0
            with lock:
                s["go"] = may_start()
            s["start"] = mono()

        bar = threading.Barrier(beam_width, action=round_done)

        def reader(j: int) -> None:
            buf = aligned_buffer(sector)
            rng = np.random.default_rng([seed, q, j, time.monotonic_ns()])
            lat: list[int] = []
            try:
                while s["go"] and not errors:
                    off = int(rng.integers(0, nsect)) * sector
                    a = mono()
                    got = os.preadv(fd, [buf], off)
                    lat.append(mono() - a)
                    if got != sector:
                        raise RunFailed(f"{path}: a read returned {got} of {sector} bytes")
                    bar.wait()
            except threading.BrokenBarrierError:
                pass
            except BaseException as e:  # noqa: BLE001 (re-raised by the caller)
                errors.append(e)
                bar.abort()
            with lock:
                read_hist.record_many(lat)

        ts = [threading.Thread(target=reader, args=(j,), name=f"vector-read-{q}-{j}")
              for j in range(beam_width)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        with lock:
            query_hist.record_many(qlat)

    t0 = mono()
    w0 = time.time_ns()
    with _Signals() as sigs:
        streams = [threading.Thread(target=stream, args=(q,), name=f"vector-query-{q}")
                   for q in range(concurrency)]
        for t in streams:
            t.start()
        for t in streams:
            while t.is_alive():
                t.join(0.1)
                if sigs.got:
                    with lock:
                        state["stopping"] = True
        t1 = mono()
    if errors:
        raise RunFailed(f"{path}: a read failed: {errors[0]}")
    return {"streams": query_hist.count, "reads": read_hist.count,
            "bytes": read_hist.count * sector, "seconds": (t1 - t0) / 1e9,
            "start_wall_ns": w0, "end_wall_ns": w0 + (t1 - t0),
            "stream_hist": query_hist, "read_hist": read_hist, "queue": "threads",
            "loop": "threads", "interrupted": sigs.got[0] if sigs.got else 0}
