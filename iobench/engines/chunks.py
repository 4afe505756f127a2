"""Whole-chunk I/O for the KV-cache tiers (iobench.kinds.kvcache): queue-depth chunk
buffers shared by a pool of worker threads and one AIO lane, and the timed random
chunk-read loop that runs beside fio.

- Pool: queue-depth threads running tasks (chunk writes and their fsync, RAM-tier
  copies, reads where Linux AIO is missing), each holding one chunk buffer while it runs;
  a task's timed I/O goes through its Worker (read, write, copy: the latency into the
  worker's histogram of that kind, bytes and ops counted), so a caller only says what to
  read or write;
- ChunkReads: "restore these chunks with up to queue depth in flight": storage chunk
  reads through Linux AIO (iobench.engines.aio.AioContext), as fio's libaio. A read
  starts as soon as a buffer is free; the thread that frees a buffer (the reaper, right
  after a completion) starts the next waiting read itself, so the device is refilled
  without a hand-off to another Python thread (a GIL switch costs up to 5 ms);
- restore: pool tasks and AIO reads as one batch, waited for and timed (a request);
- timed: one timed call (a per-turn fsync) into a latency recorder;
- read_random: random whole-chunk reads of a chunk set for a time with `depth` in
  flight, through the compiled io_uring/AIO ring (aio.run_ring), the Python AIO loop
  (aio.run_depth) or, without AIO, threads: the loops `iobench io` uses.

Memory: queue depth x chunk bytes, whatever runs (chunks of 2 MiB or more: rounded up
to 2 MiB each, on transparent huge pages, see chunk_buffer). Every I/O is one O_DIRECT
transfer of the whole chunk into a page-aligned buffer: nothing is serialized or copied
on the way.
"""

from __future__ import annotations

import mmap
import os
import queue
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from iobench.engines import aio
from iobench.engines.native import aligned_buffer, pread_full, run_threads
from iobench.stats import Histogram, LatencyRecorder


class Batch:
    """A group of tasks (or reads) the submitter waits for; the first error is kept."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.cv = threading.Condition()
        self.error: BaseException | None = None

    def add(self) -> None:
        with self.cv:
            self.left += 1

    def done(self, error: BaseException | None = None) -> None:
        with self.cv:
            if error is not None and self.error is None:
                self.error = error
            self.left -= 1
            if self.left <= 0:
                self.cv.notify_all()

    def wait(self) -> None:
        with self.cv:
            while self.left > 0:
                self.cv.wait()
        if self.error is not None:
            raise self.error


Waiting = tuple[Callable[[], tuple[int, int, bool]], Callable[..., None], Batch, str]

HUGE = 2 << 20  # a transparent huge page on x86-64 (and arm64 with 4 KiB base pages)
HUGE_PAGES = True  # chunk buffers of a huge page or more on transparent huge pages


def chunk_buffer(nbytes: int, huge: bool = True) -> tuple[mmap.mmap, int]:
    """(mapping, offset): a zero-filled, page-aligned buffer of `nbytes` at `offset`.

    With `huge` and nbytes >= 2 MiB: the buffer starts on a 2 MiB boundary of a mapping
    advised MADV_HUGEPAGE, so that once touched it is physically contiguous 2 MiB at a
    time. Why: an O_DIRECT read reaches the device as one segment per physically
    contiguous run of its buffer, a block request carries at most the queue's
    max_segments of them (254 on a virtio disk), and on 4 KiB pages the runs are whatever
    the page allocator handed out: a 2 MiB chunk buffer measured 16 to 512 runs (1 to 3
    requests per read), differing between buffers and between runs, and the chunk reads
    moved 0.6x to 2x of fio's bytes by that lottery alone (fio's own buffers draw it per
    run; docs/kvcache.md, "Measured figures"). On huge pages: one run per 2 MiB, every
    time. Costs at most 2 MiB more memory per buffer; where the kernel has no
    transparent huge pages (or "never") the buffer stays on base pages.
    """
    if not huge or nbytes < HUGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return aligned_buffer(nbytes), 0
    span = -(-nbytes // HUGE) * HUGE
    m = aligned_buffer(span + HUGE)
    off = -aio.buffer_address(m) % HUGE
    try:
        m.madvise(mmap.MADV_HUGEPAGE, off, span)
    except OSError:  # no transparent huge pages in this kernel: base pages
        pass
    return m, off


def on_huge_pages(nbytes: int) -> bool:
    """Whether chunk buffers of `nbytes` go on transparent huge pages (chunk_buffer): what
    fio's side of a comparison is given too (engines.fio.jobfile_for_chunks huge_buffers)."""
    return HUGE_PAGES and nbytes >= HUGE and hasattr(mmap, "MADV_HUGEPAGE")


def buffer_bytes(nbytes: int) -> int:
    """The memory one chunk buffer of `nbytes` holds once touched (chunk_buffer: a chunk
    of 2 MiB or more is rounded up to whole huge pages)."""
    if on_huge_pages(nbytes):
        return -(-nbytes // HUGE) * HUGE
    return -(-nbytes // 4096) * 4096


class Buffers:
    """The queue-depth chunk buffers (chunk_buffer: on huge pages unless `huge` or
    HUGE_PAGES says no). A pool task or a read in flight holds one. A freed buffer goes
    to a waiting read first (started by the freeing thread), else back to the free list
    the pool threads take from."""

    def __init__(self, n: int, chunk_bytes: int, huge: bool | None = None) -> None:
        huge = HUGE_PAGES if huge is None else huge
        got = [chunk_buffer(chunk_bytes, huge) for _ in range(n)]
        self.bufs = [b for b, _ in got]
        self.addrs = [aio.buffer_address(b) + off for b, off in got]  # for the iocbs
        self.mvs = [memoryview(b)[off:off + chunk_bytes] for b, off in got]
        self.arrs = [np.frombuffer(b, dtype=np.uint8, count=chunk_bytes, offset=off)
                     for b, off in got]
        for a in self.arrs:
            a[:] = 0  # touch every page once, outside any timed path
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(n):
            self.free.put(i)
        self.lock = threading.Lock()
        self.waiting: deque[Waiting] = deque()
        self.starter: Callable[[int, Waiting], bool] | None = None

    def get(self) -> int:
        """A free buffer (blocks): for pool threads."""
        return self.free.get()

    def take(self, item: Waiting) -> int | None:
        """A free buffer for a read, or None: then `item` waits for the next release."""
        with self.lock:
            try:
                return self.free.get_nowait()
            except queue.Empty:
                self.waiting.append(item)
                return None

    def release(self, i: int) -> None:
        """Give buffer i back: to the first waiting read (started here), or the free list."""
        while True:
            with self.lock:
                if not self.waiting or self.starter is None:
                    self.free.put(i)
                    return
                item = self.waiting.popleft()
            if self.starter(i, item):
                return  # else the read failed to start: the buffer goes on


T = TypeVar("T")


class Worker:
    """Latency recorders, bytes and ops per kind of I/O (`recorders`: "read", "write",
    ...) and the caller's own counters of one pool thread (or of the AIO reaper), and the
    buffer it holds for the task at hand. read/write/copy are the timed I/Os."""

    def __init__(self, bufs: Buffers, recorders: Sequence[str], counters: Sequence[str]
                 ) -> None:
        self.bufs = bufs
        self.mv = bufs.mvs[0]
        self.arr = bufs.arrs[0]
        self.rec = {k: LatencyRecorder() for k in recorders}
        self.bytes = dict.fromkeys(recorders, 0)
        self.ops = dict.fromkeys(recorders, 0)
        self.n = dict.fromkeys(counters, 0)
        self.first_error: str | None = None

    def hold(self, i: int) -> None:
        self.mv, self.arr = self.bufs.mvs[i], self.bufs.arrs[i]

    def read(self, kind: str, read: Callable[[memoryview], int], expected: int,
             min_ns_per_byte: float = 0.0) -> int:
        """One timed chunk read into the held buffer (`read(buffer)` returns the bytes
        read): its latency goes into rec[kind]; bytes and ops count when it read
        `expected` bytes (a short read is the caller's error to raise). min_ns_per_byte
        (the tests' throttled reader) sleeps out what the read took less than that."""
        mono = time.monotonic_ns
        a = mono()
        n = read(self.mv)
        if min_ns_per_byte:
            wait = a + int(n * min_ns_per_byte) - mono()
            if wait > 0:
                time.sleep(wait / 1e9)
        self.rec[kind].add(mono() - a)
        if n == expected:
            self.bytes[kind] += n
            self.ops[kind] += 1
        return n

    def write(self, kind: str, write: Callable[[memoryview], object], nbytes: int) -> None:
        """One timed chunk write of the held buffer (`write(buffer)`, with its fsync if
        the caller's write does one): latency into rec[kind], nbytes and one op counted
        when it returns."""
        mono = time.monotonic_ns
        a = mono()
        write(self.mv)
        self.rec[kind].add(mono() - a)
        self.bytes[kind] += nbytes
        self.ops[kind] += 1

    def copy(self, kind: str, dst: np.ndarray, src: np.ndarray) -> None:
        """One timed memory copy (a RAM-tier chunk): latency into rec[kind], counted."""
        mono = time.monotonic_ns
        a = mono()
        np.copyto(dst, src)
        self.rec[kind].add(mono() - a)
        self.bytes[kind] += src.nbytes
        self.ops[kind] += 1


class Pool:
    """`n` threads running submitted tasks, each with one of the `n` chunk buffers."""

    def __init__(self, n: int, chunk_bytes: int, recorders: Sequence[str],
                 counters: Sequence[str]) -> None:
        self.q: queue.SimpleQueue[tuple[Callable[[Worker], None], Batch] | None] = \
            queue.SimpleQueue()
        self.recorders, self.counters = tuple(recorders), tuple(counters)
        self.buffers = Buffers(n, chunk_bytes)
        self.workers = [self.new_worker() for _ in range(n)]
        self.threads = [threading.Thread(target=self._loop, args=(w,), daemon=True)
                        for w in self.workers]
        for t in self.threads:
            t.start()

    def new_worker(self) -> Worker:
        return Worker(self.buffers, self.recorders, self.counters)

    def _loop(self, w: Worker) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            fn, batch = item
            i = self.buffers.get()
            w.hold(i)
            try:
                fn(w)
            except BaseException as e:  # noqa: BLE001 - handed to the submitter
                batch.done(e)
            else:
                batch.done()
            finally:
                self.buffers.release(i)

    def submit(self, fns: Sequence[Callable[[Worker], None]], b: Batch) -> None:
        for fn in fns:
            self.q.put((fn, b))

    def run(self, fns: Sequence[Callable[[Worker], None]]) -> None:
        """Run the tasks (up to n at once, FIFO with everybody else's) and wait."""
        if not fns:
            return
        b = Batch(len(fns))
        self.submit(fns, b)
        b.wait()

    def close(self) -> None:
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join(30)

    def hist(self, kind: str, extra: Sequence[Worker] = ()) -> Histogram:
        return Histogram.merged(w.rec[kind].flush() for w in [*self.workers, *extra])

    def total(self, key: str, extra: Sequence[Worker] = ()) -> int:
        return sum(w.n[key] for w in [*self.workers, *extra])

    def bytes(self, kind: str, extra: Sequence[Worker] = ()) -> int:
        return sum(w.bytes[kind] for w in [*self.workers, *extra])

    def ops(self, kind: str, extra: Sequence[Worker] = ()) -> int:
        return sum(w.ops[kind] for w in [*self.workers, *extra])


_EVENT = struct.Struct("<QQqq")  # struct io_event


# The reaper hands each completion's next read to the kernel; while another thread of
# this process runs Python it waits for the GIL, and CPython hands the GIL over only
# every sys.getswitchinterval() (5 ms by default). At 2 MiB on a 3.5 GB/s device a read
# takes about 10 ms at QD 16, so one such wait was the restores' p99: 14-17 ms against
# fio's 12 ms replaying the same requests, every round (docs/kvcache.md, 2026-12-03);
# at 0.2 ms it was 11.1 against 10.5. Set while any AIO lane is open, put back after.
GIL_SWITCH_S = 0.0002
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


def _short_gil_switch(on: bool) -> None:
    global _switch_users, _switch_saved
    with _switch_lock:
        if on:
            if _switch_users == 0:
                _switch_saved = sys.getswitchinterval()
                sys.setswitchinterval(min(_switch_saved, GIL_SWITCH_S))
            _switch_users += 1
        elif _switch_users > 0:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


class ChunkReads:
    """Whole-chunk reads through Linux AIO into the pool's buffers, at most one per
    buffer in flight. `submit(opener, done, batch, kind)`: when a buffer is free,
    `opener()` gives (fd, offset, the lane closes fd) and the read starts; on completion
    its latency goes into the reaper's rec[kind] (result >= 0) and its bytes and op are
    counted (a whole chunk), then `done(worker, result, latency_ns)` runs on the reaper
    thread with the worker holding the chunk's buffer (result < 0: -errno; worker None
    when the read never started), then `batch` hears of it (with what `done` raised).
    Latency is submission to reaping, as fio's libaio reports it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        bufs = pool.buffers
        self.ctx = aio.AioContext(len(bufs.bufs))
        for i in range(len(bufs.bufs)):
            cb = self.ctx.iocbs[i]
            cb.aio_lio_opcode = aio.IOCB_CMD_PREAD
            cb.aio_nbytes = len(bufs.mvs[i])
            cb.aio_buf = bufs.addrs[i]
        self.w = pool.new_worker()  # the reaper's recorders and counters
        self.inflight: dict[int, tuple[int, int, bool, Callable[..., None], Batch, str]] = {}
        self.lock = threading.Lock()
        self.closing = False
        bufs.starter = self._start
        self.reaper = threading.Thread(target=self._reap, daemon=True)
        self.reaper.start()
        _short_gil_switch(True)  # close() puts it back

    def submit(self, opener: Callable[[], tuple[int, int, bool]], done: Callable[..., None],
               batch: Batch, kind: str = "read") -> None:
        item = (opener, done, batch, kind)
        i = self.pool.buffers.take(item)
        if i is not None and not self._start(i, item):
            self.pool.buffers.release(i)

    def _start(self, i: int, item: Waiting) -> bool:
        opener, done, batch, kind = item
        try:
            fd, off, own = opener()
        except BaseException as e:  # noqa: BLE001 - handed to the submitter
            self._failed(done, batch, e)
            return False
        cb = self.ctx.iocbs[i]
        cb.aio_fildes = fd
        cb.aio_offset = off
        with self.lock:
            self.inflight[i] = (time.monotonic_ns(), fd, own, done, batch, kind)
        try:
            self.ctx.submit_slot(i)
        except OSError as e:
            with self.lock:
                self.inflight.pop(i, None)
            if own:
                os.close(fd)
            self._failed(done, batch, e)
            return False
        return True

    @staticmethod
    def _failed(done: Callable[..., None], batch: Batch, e: BaseException) -> None:
        try:
            done(None, -(getattr(e, "errno", None) or 5), 0)
        except BaseException:  # noqa: BLE001, S110 - the first error is the one to report
            pass
        batch.done(e)

    def _reap(self) -> None:
        ev = self.ctx.ev_view
        unpack = _EVENT.unpack_from
        release = self.pool.buffers.release
        w = self.w
        sizes = [len(mv) for mv in self.pool.buffers.mvs]
        while True:
            with self.lock:
                if self.closing and not self.inflight:
                    return
            try:
                n = self.ctx.getevents(1, 200_000_000)
            except OSError as e:  # the context is broken: fail what is in flight
                with self.lock:
                    items = list(self.inflight.items())
                    self.inflight.clear()
                for i, (_t, fd, own, done, batch, _k) in items:
                    if own:
                        os.close(fd)
                    release(i)
                    self._failed(done, batch, e)
                if self.closing:
                    return
                time.sleep(0.01)
                continue
            now = time.monotonic_ns()
            for k in range(n):
                i, _obj, res, _res2 = unpack(ev, 32 * k)
                with self.lock:
                    t0, fd, own, done, batch, kind = self.inflight.pop(i)
                w.hold(i)
                lat = now - t0
                if res >= 0:
                    w.rec[kind].add(lat)
                    if res == sizes[i]:
                        w.bytes[kind] += res
                        w.ops[kind] += 1
                err: BaseException | None = None
                try:
                    done(w, res, lat)
                except BaseException as e:  # noqa: BLE001 - handed to the submitter
                    err = e
                finally:
                    release(i)  # starts the next waiting read from this thread
                    if own:  # closed after the refill: off the path to the next read
                        os.close(fd)
                batch.done(err)

    def close(self) -> None:
        with self.lock:
            if self.closing:
                return
            self.closing = True
        try:
            self.reaper.join(60)
            self.pool.buffers.starter = None
            self.ctx.close()
        finally:
            _short_gil_switch(False)


Opener = Callable[[], tuple[int, int, bool]]



def restore(pool: Pool, reads: ChunkReads | None, tasks: Sequence[Callable[[Worker], None]],
            storage: Sequence[tuple[Opener, Callable[..., None]]], kind: str = "read") -> int:
    """Restore one request's chunks: `tasks` on the pool (RAM copies; reads where there is
    no AIO lane), `storage` (opener, done) through the AIO lane `reads`, all at once (up to
    queue depth in flight), waited for; returns ns from the first submission to the last
    completion. The first error of any raises here."""
    n = len(tasks) + len(storage)
    if not n:
        return 0
    b = Batch(n)
    t0 = time.monotonic_ns()
    pool.submit(tasks, b)
    if storage:
        assert reads is not None, "storage reads need the AIO lane"
        for opener, done in storage:
            reads.submit(opener, done, b, kind)
    b.wait()
    return time.monotonic_ns() - t0


def timed(rec: LatencyRecorder, fn: Callable[[], T]) -> T:
    """Run fn once (a per-turn fsync), its latency into rec; returns what fn returned."""
    a = time.monotonic_ns()
    out = fn()
    rec.add(time.monotonic_ns() - a)
    return out


def read_random(fds: Sequence[int], offsets: Sequence[int], block_size: int, depth: int,
                runtime_s: float, *, seed: int = 0, prefer: str | None = "libaio",
                should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Random whole-chunk reads of the set (chunk j: fds[j] at offsets[j]) for
    `runtime_s`, `depth` in flight (fio: randread, bs = chunk, iodepth = depth).

    `prefer`: the compiled ring's kind when it works here (libaio: the queue fio's libaio
    job and the replay's reads use), else aio.ring_kind(). Returns bytes, ops, seconds,
    latency (a Histogram), queue (io_uring, libaio, linux-aio or threads), loop (compiled
    or python) and in_flight_mean (measured)."""
    rng = np.random.default_rng([seed, 0xC0])
    idx = rng.integers(0, len(offsets), size=max(4096, 64 * depth))
    offs = np.asarray(offsets, dtype=np.int64)[idx]
    fd_arr = np.asarray(fds, dtype=np.int32)[idx]
    one_fd = len(set(fds)) == 1
    hist = Histogram()
    tot = [0, 0]

    def on_batch(lats: Any, nbytes: int, now: int) -> None:
        hist.record_many(np.asarray(lats, dtype=np.int64))
        tot[0] += nbytes
        tot[1] += len(lats)

    t0 = time.monotonic_ns()
    deadline = t0 + int(runtime_s * 1e9)
    ring = prefer if prefer is not None and aio.ring_can(prefer) else aio.ring_kind()
    got: dict[str, float] = {}
    if ring is not None:
        got = aio.run_ring(ring, depth, block_size, int(fds[0]) if one_fd else fd_arr, offs,
                           wrap=True, deadline_ns=deadline, should_stop=should_stop,
                           on_batch=on_batch)
        queue_kind, loop = ring, "compiled"
    elif aio.available():
        pos = [0]
        offl, fdl = offs.tolist(), fd_arr.tolist()

        def next_ios(k: int) -> tuple[list[int], list[int]]:
            j = pos[0]
            pos[0] = (j + k) % len(offl)
            sel = [(j + m) % len(offl) for m in range(k)]
            return [fdl[s] for s in sel], [offl[s] for s in sel]

        got = aio.run_depth(depth, block_size, next_ios, deadline_ns=deadline,
                            should_stop=should_stop, on_batch=on_batch)
        queue_kind, loop = "linux-aio", "python"
    else:
        stop = threading.Event()

        def lane(i: int, st: Any) -> None:
            buf = aligned_buffer(block_size)
            mv = memoryview(buf)[:block_size]
            j = i
            while time.monotonic_ns() < deadline and not stop.is_set() and not (
                    should_stop is not None and should_stop()):
                k = j % len(offs)
                a = time.monotonic_ns()
                n = pread_full(int(fd_arr[k]), mv, int(offs[k]))
                st.recorder.add(time.monotonic_ns() - a)
                st.bytes += n
                st.ops += 1
                j += depth
            buf.close()

        stats, _a, _b = run_threads(depth, lane, stop)
        hist = Histogram.merged(s.recorder.flush() for s in stats)
        tot = [sum(s.bytes for s in stats), sum(s.ops for s in stats)]
        queue_kind, loop = "threads", "python"
    out: dict[str, Any] = {"bytes": tot[0], "ops": tot[1],
                           "seconds": (time.monotonic_ns() - t0) / 1e9, "latency": hist,
                           "queue": queue_kind, "loop": loop}
    if "in_flight_mean" in got:
        out["in_flight_mean"] = got["in_flight_mean"]
    return out
