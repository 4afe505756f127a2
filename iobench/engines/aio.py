"""Linux native AIO (io_setup/io_submit/io_getevents) through ctypes: queue depth without
threads.

Python threads give queue depth too (os.preadv releases the GIL), but at 32 requests in
flight on a small client the threads fight over the interpreter lock and reach about
half of fio's libaio IOPS. One thread that keeps `depth` requests in the kernel's queue
and reaps completions in batches does what fio's libaio engine does. As with fio's
libaio, requests are asynchronous only with O_DIRECT; buffered AIO reads complete inside
io_submit.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_SYSCALLS = {  # (io_setup, io_destroy, io_getevents, io_submit)
    "x86_64": (206, 207, 208, 209),
    "aarch64": (0, 1, 4, 2),
}
IOCB_CMD_PREAD = 0
IOCB_CMD_PWRITE = 1


class IOCB(ctypes.Structure):
    # struct iocb from linux/aio_abi.h, little-endian field order
    _fields_ = [
        ("aio_data", ctypes.c_uint64),
        ("aio_key", ctypes.c_uint32),
        ("aio_rw_flags", ctypes.c_int32),
        ("aio_lio_opcode", ctypes.c_uint16),
        ("aio_reqprio", ctypes.c_int16),
        ("aio_fildes", ctypes.c_uint32),
        ("aio_buf", ctypes.c_uint64),
        ("aio_nbytes", ctypes.c_uint64),
        ("aio_offset", ctypes.c_int64),
        ("aio_reserved2", ctypes.c_uint64),
        ("aio_flags", ctypes.c_uint32),
        ("aio_resfd", ctypes.c_uint32),
    ]


class IOEvent(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_uint64),
        ("obj", ctypes.c_uint64),
        ("res", ctypes.c_int64),
        ("res2", ctypes.c_int64),
    ]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc: Any = None


def _sys() -> tuple[Any, tuple[int, int, int, int]]:
    global _libc
    nums = _SYSCALLS.get(platform.machine())
    if nums is None or not platform.system() == "Linux":
        raise OSError(f"Linux AIO is not wired for {platform.system()} {platform.machine()}")
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc, nums


def buffer_address(buf: Any) -> int:
    """The address of a writable buffer (an mmap from native.aligned_buffer) for an iocb."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def available() -> bool:
    try:
        ctx = AioContext(1)
    except OSError:
        return False
    ctx.close()
    return True


_EVENT = struct.Struct("<QQqq")  # struct io_event
_OFF_OFFSET = 40  # byte offset of aio_offset in struct iocb
_OFF_FILDES = 20  # byte offset of aio_fildes
assert ctypes.sizeof(IOCB) == 64
assert ctypes.sizeof(IOEvent) == _EVENT.size == 32
assert IOCB.aio_offset.offset == _OFF_OFFSET
assert IOCB.aio_fildes.offset == _OFF_FILDES


class AioContext:
    """An AIO context with `depth` slots; slot i owns iocb i.

    The per-request work (reading a completion, re-aiming an iocb) is struct.pack_into /
    unpack_from on the kernel-shared buffers: a fraction of a microsecond each, where a
    ctypes field access or a numpy call on a small batch costs several.
    """

    def __init__(self, depth: int) -> None:
        self.libc, (self._setup, self._destroy, self._getevents, self._submit) = _sys()
        self.depth = depth
        self.ctx = ctypes.c_ulong(0)
        if self.libc.syscall(self._setup, ctypes.c_long(depth), ctypes.byref(self.ctx)) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"io_setup({depth}): {os.strerror(err)}")
        self.iocbs = (IOCB * depth)()
        for i in range(depth):
            self.iocbs[i].aio_data = i
        self.cb_view = memoryview(self.iocbs).cast("B")
        self.cb_base = ctypes.addressof(self.iocbs)
        self.ptrs = (ctypes.c_uint64 * depth)()
        self.ptr_view = memoryview(self.ptrs).cast("B")
        self.ptr_base = ctypes.addressof(self.ptrs)
        self.events = (IOEvent * depth)()
        self.ev_view = memoryview(self.events).cast("B")
        self._ev_ptr = ctypes.c_void_p(ctypes.addressof(self.events))

    def close(self) -> None:
        if self.ctx.value:
            self.libc.syscall(self._destroy, self.ctx)
            self.ctx = ctypes.c_ulong(0)

    def submit(self, n: int) -> None:
        """Submit the first n iocb pointers of `ptrs`."""
        done = 0
        while done < n:
            r = self.libc.syscall(self._submit, self.ctx, ctypes.c_long(n - done),
                                  ctypes.c_void_p(self.ptr_base + 8 * done))
            if r < 0:
                err = ctypes.get_errno()
                if err == 4:  # EINTR
                    continue
                raise OSError(err, f"io_submit: {os.strerror(err)}")
            done += r

    def submit_slot(self, i: int) -> None:
        """Submit iocb i alone (thread-safe: its own pointer array, not `ptrs`)."""
        ptr = (ctypes.c_uint64 * 1)(self.cb_base + 64 * i)
        while True:
            r = self.libc.syscall(self._submit, self.ctx, ctypes.c_long(1), ptr)
            if r == 1:
                return
            err = ctypes.get_errno()
            if r < 0 and err == 4:  # EINTR
                continue
            raise OSError(err, f"io_submit: {os.strerror(err)}")

    def getevents(self, min_nr: int, timeout_ns: int | None = None) -> int:
        """Wait for at least `min_nr` completions (at most `timeout_ns` when given: then
        possibly fewer); their io_events fill `events[:n]`."""
        ts = None if timeout_ns is None else ctypes.byref(
            _Timespec(timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000))
        while True:
            n = self.libc.syscall(self._getevents, self.ctx, ctypes.c_long(min_nr),
                                  ctypes.c_long(self.depth), self._ev_ptr, ts)
            if n >= 0:
                return int(n)
            err = ctypes.get_errno()
            if err != 4:  # EINTR: retry
                raise OSError(err, f"io_getevents: {os.strerror(err)}")


def run_depth(depth: int, block_size: int,
              next_ios: Callable[[int], tuple[Any, list[int]] | None],
              *, write: bool = False, fill: Callable[[Any, int], None] | None = None,
              deadline_ns: int = 0, should_stop: Callable[[], bool] | None = None,
              on_batch: Callable[[list[int], int, int], None]) -> dict[str, float]:
    """Keep `depth` requests of `block_size` in flight until `next_ios` runs dry or the
    deadline passes; `on_batch(latencies_ns, nbytes, completion_ns)` per reaped batch.
    Returns {'in_flight_mean': the measured mean of requests in the kernel}.

    `next_ios(k)` gives up to k next requests as (one fd or a list of fds, list of
    offsets), or None when there are no more; `fill(buffer, offset)` fills a write buffer
    first. Latency is submission to reaping, as fio's libaio reports it.
    """
    from iobench.engines.native import aligned_buffer

    ctx = AioContext(depth)
    bufs = [aligned_buffer(block_size) for _ in range(depth)]
    arrs = [np.frombuffer(b, dtype=np.uint8)[:block_size] for b in bufs]
    for i, b in enumerate(bufs):
        cb = ctx.iocbs[i]
        cb.aio_lio_opcode = IOCB_CMD_PWRITE if write else IOCB_CMD_PREAD
        cb.aio_nbytes = block_size
        cb.aio_buf = ctypes.addressof(ctypes.c_char.from_buffer(b))
    pack_q = struct.Struct("<q").pack_into
    pack_u32 = struct.Struct("<I").pack_into
    pack_u64 = struct.Struct("<Q").pack_into
    unpack_ev = _EVENT.unpack_from
    cbv, ptrv, evv = ctx.cb_view, ctx.ptr_view, ctx.ev_view
    cb_base = ctx.cb_base
    sent = [0] * depth
    inflight = 0
    mono = time.monotonic_ns

    def aim(slots: list[int], one_by_one: bool) -> int:
        """Point the given slots at the next requests and submit them; returns how many
        were submitted (fewer when the requests run out).

        Refills go in one io_submit each, as fio's libaio does by default
        (iodepth_batch_submit=1): the device gets the first new request as soon as
        possible instead of idling while a whole batch is prepared (measured: ~20% more
        IOPS at depth 32 on the development VM).
        """
        got = next_ios(len(slots))
        if got is None:
            return 0
        fds, offs = got
        m = len(offs)
        one_fd = isinstance(fds, int)
        for j in range(m):
            s = slots[j]
            pack_q(cbv, 64 * s + _OFF_OFFSET, offs[j])
            pack_u32(cbv, 64 * s + _OFF_FILDES, fds if one_fd else fds[j])
            if write and fill is not None:
                fill(arrs[s], offs[j])
            if one_by_one:
                pack_u64(ptrv, 0, cb_base + 64 * s)
                sent[s] = mono()
                ctx.submit(1)
            else:
                pack_u64(ptrv, 8 * j, cb_base + 64 * s)
        if not one_by_one and m:
            t = mono()
            for j in range(m):
                sent[slots[j]] = t
            ctx.submit(m)
        return m

    try:
        m = aim(list(range(depth)), one_by_one=False)
        inflight = m
        stopping = m < depth
        reaped = 0
        first = last = mono()
        area = 0
        while inflight:
            n = ctx.getevents(1)
            now = mono()
            area += inflight * (now - last)  # in flight since the last reap and refill
            last = now
            inflight -= n
            slots = []
            lats = []
            nbytes = 0
            for i in range(n):
                slot, _obj, res, _res2 = unpack_ev(evv, 32 * i)
                if res < 0:
                    raise OSError(-res, f"AIO {'write' if write else 'read'}: "
                                  f"{os.strerror(-res)}")
                nbytes += res
                lats.append(now - sent[slot])
                slots.append(slot)
            if deadline_ns and now >= deadline_ns:
                stopping = True
            reaped += n
            if should_stop is not None and reaped >= 256:
                reaped = 0
                stopping = stopping or should_stop()
            if not stopping:  # refill first, account after: the device waits for nobody
                m = aim(slots, one_by_one=True)
                if m < n:
                    stopping = True
                inflight += m
            on_batch(lats, nbytes, now)
        return {"in_flight_mean": area / (last - first) if last > first else 0.0}
    finally:
        if inflight:  # drain what is still in the kernel before the buffers go away
            try:
                while inflight > 0:
                    inflight -= ctx.getevents(1)
            except OSError:
                pass
        ctx.close()


# --- the compiled helper (iobench._fastio): io_uring or Linux AIO in C ---------------------
_RING_KINDS = ("io_uring", "libaio")
_ring_kind: list[str | None] = []  # probed once per process


def fastio() -> Any:
    """The compiled helper module, or None where it was not built (no C compiler at
    install time): the callers then use their Python loops."""
    if os.environ.get("IOBENCH_FASTIO", "1") == "0":
        return None
    try:
        from iobench import _fastio
    except ImportError:
        return None
    return _fastio


def ring_kind() -> str | None:
    """The in-kernel queue the compiled helper uses at depth: io_uring where the kernel
    allows it (io_uring_disabled, container seccomp profiles can refuse it), else Linux
    AIO, else None. IOBENCH_RING=io_uring|libaio|python forces one (benchmarks, tests)."""
    if _ring_kind:
        return _ring_kind[0]
    mod = fastio()
    want = os.environ.get("IOBENCH_RING", "")
    kinds = [k for k in _RING_KINDS if not want or want == k]
    found = None
    if mod is not None and want != "python":
        for k in kinds:
            try:
                mod.Ring(k, 1, 4096).close()
            except OSError:
                continue
            found = k
            break
    _ring_kind.append(found)
    return found


def ring_can(kind: str) -> bool:
    """Whether the compiled helper can run a `kind` ring (io_uring or libaio) here."""
    mod = fastio()
    if mod is None or os.environ.get("IOBENCH_RING", "") not in ("", kind):
        return False
    try:
        mod.Ring(kind, 1, 4096).close()
    except OSError:
        return False
    return True


STEP_NS = 100_000_000  # the helper hands back control at least every 0.1 s
STEP_OPS = 8192


def run_ring(kind: str, depth: int, block_size: int, fd: Any, offsets: np.ndarray, *,
             wrap: bool, deadline_ns: int = 0, should_stop: Callable[[], bool] | None = None,
             on_batch: Callable[[np.ndarray, int, int], None],
             timeline_origin: int = 0, timeline_interval: int = 1_000_000_000,
             ) -> dict[str, float]:
    """Keep `depth` reads of `block_size` truly in flight (compiled io_uring / Linux AIO
    loop: each completion refilled at once) over `offsets` (int64; `fd` an int or an
    int32 array parallel to them), one pass or, with `wrap`, until `deadline_ns`.

    `on_batch(latencies_ns, nbytes, now_ns)` after each step (at most 0.1 s, and never
    across a second of the timeline that starts at `timeline_origin`). Returns the
    measured mean number of requests in the kernel (the time integral of in-flight
    requests over the time they were in flight) as {'in_flight_mean': ...}.
    """
    mod = fastio()
    offs = np.ascontiguousarray(offsets, dtype=np.int64)
    fds = fd if isinstance(fd, int) else np.ascontiguousarray(fd, dtype=np.int32)
    ring = mod.Ring(kind, depth, block_size)
    lat = np.zeros(STEP_OPS + depth, dtype=np.int64)
    mono = time.monotonic_ns
    pos = 0
    stopping = False
    ok = False
    try:
        while True:
            now = mono()
            until = now + STEP_NS
            if timeline_origin:  # never across a timeline second
                nxt = timeline_origin + ((now - timeline_origin) // timeline_interval + 1) \
                    * timeline_interval
                until = min(until, nxt)
            if deadline_ns:
                until = min(until, deadline_ns)
            done, nlat, nbytes, pos, now, inflight, exhausted = ring.pump(
                fds, offs, pos, wrap, not stopping, STEP_OPS, until, lat)
            if done:  # the step's completions belong before `until` (its last may pass it)
                on_batch(lat[:nlat], nbytes, min(now, until) if not stopping else now)
            if not inflight and (stopping or exhausted):
                break
            if (deadline_ns and now >= deadline_ns) or \
                    (should_stop is not None and should_stop()):
                stopping = True  # reap what is in flight, submit nothing more
        area, first, last = ring.in_flight_area()
        ok = True
        return {"in_flight_mean": area / (last - first) if last > first else 0.0}
    finally:
        if not ok:  # an error: reap what is in flight here, in the ring's own thread
            try:
                while ring.pump(fds, offs, pos, wrap, False, STEP_OPS, 0, lat)[5]:
                    pass
            except OSError:
                pass  # the destructor keeps the buffers of anything still in flight
        try:
            ring.close()
        except RuntimeError:
            pass
