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


def available() -> bool:
    try:
        ctx = AioContext(1)
    except OSError:
        return False
    ctx.close()
    return True


# The same layouts as numpy dtypes: a batch of completions is read, and a batch of
# requests re-aimed, with a few vector operations instead of a ctypes call per field.
IOCB_DTYPE = np.dtype([
    ("aio_data", "<u8"), ("aio_key", "<u4"), ("aio_rw_flags", "<i4"),
    ("aio_lio_opcode", "<u2"), ("aio_reqprio", "<i2"), ("aio_fildes", "<u4"),
    ("aio_buf", "<u8"), ("aio_nbytes", "<u8"), ("aio_offset", "<i8"),
    ("aio_reserved2", "<u8"), ("aio_flags", "<u4"), ("aio_resfd", "<u4"),
])
EVENT_DTYPE = np.dtype([("data", "<u8"), ("obj", "<u8"), ("res", "<i8"), ("res2", "<i8")])
assert IOCB_DTYPE.itemsize == ctypes.sizeof(IOCB) == 64
assert EVENT_DTYPE.itemsize == ctypes.sizeof(IOEvent) == 32


class AioContext:
    """An AIO context with `depth` slots; slot i owns iocb i (a row of `iocbs`)."""

    def __init__(self, depth: int) -> None:
        self.libc, (self._setup, self._destroy, self._getevents, self._submit) = _sys()
        self.depth = depth
        self.ctx = ctypes.c_ulong(0)
        if self.libc.syscall(self._setup, ctypes.c_long(depth), ctypes.byref(self.ctx)) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"io_setup({depth}): {os.strerror(err)}")
        self.iocbs = np.zeros(depth, dtype=IOCB_DTYPE)
        self.iocbs["aio_data"] = np.arange(depth, dtype=np.uint64)
        self._cb_addr = self.iocbs.ctypes.data + 64 * np.arange(depth, dtype=np.uint64)
        self.ptrs = np.zeros(depth, dtype=np.uint64)
        self.events = np.zeros(depth, dtype=EVENT_DTYPE)
        self._ev_ptr = ctypes.c_void_p(self.events.ctypes.data)

    def close(self) -> None:
        if self.ctx.value:
            self.libc.syscall(self._destroy, self.ctx)
            self.ctx = ctypes.c_ulong(0)

    def submit(self, slots: np.ndarray) -> None:
        n = len(slots)
        if not n:
            return
        self.ptrs[:n] = self._cb_addr[slots]
        base = self.ptrs.ctypes.data
        done = 0
        while done < n:
            r = self.libc.syscall(self._submit, self.ctx, ctypes.c_long(n - done),
                                  ctypes.c_void_p(base + 8 * done))
            if r < 0:
                err = ctypes.get_errno()
                if err == 4:  # EINTR
                    continue
                raise OSError(err, f"io_submit: {os.strerror(err)}")
            done += r

    def getevents(self, min_nr: int) -> tuple[np.ndarray, np.ndarray]:
        """Wait for at least `min_nr` completions: (slots, results), results < 0 are -errno."""
        while True:
            n = self.libc.syscall(self._getevents, self.ctx, ctypes.c_long(min_nr),
                                  ctypes.c_long(self.depth), self._ev_ptr, None)
            if n >= 0:
                break
            err = ctypes.get_errno()
            if err != 4:  # EINTR: retry
                raise OSError(err, f"io_getevents: {os.strerror(err)}")
        ev = self.events[:n]
        return ev["data"].astype(np.int64), ev["res"].copy()


def run_depth(depth: int, block_size: int,
              next_ios: Callable[[int], tuple[Any, np.ndarray] | None],
              *, write: bool = False, fill: Callable[[Any, int], None] | None = None,
              deadline_ns: int = 0, should_stop: Callable[[], bool] | None = None,
              on_batch: Callable[[np.ndarray, int, int], None]) -> None:
    """Keep `depth` requests of `block_size` in flight until `next_ios` runs dry or the
    deadline passes; `on_batch(latencies_ns, nbytes, completion_ns)` per reaped batch.

    `next_ios(k)` gives up to k next requests as (fd or array of fds, array of offsets),
    or None when there are no more; `fill(buffer, offset)` fills a write buffer first.
    Latency is submission to reaping, as fio's libaio reports it.
    """
    from iobench.engines.native import aligned_buffer

    ctx = AioContext(depth)
    bufs = [aligned_buffer(block_size) for _ in range(depth)]
    arrs = [np.frombuffer(b, dtype=np.uint8)[:block_size] for b in bufs]
    cbs = ctx.iocbs
    cbs["aio_lio_opcode"] = IOCB_CMD_PWRITE if write else IOCB_CMD_PREAD
    cbs["aio_nbytes"] = block_size
    cbs["aio_buf"] = [ctypes.addressof(ctypes.c_char.from_buffer(b)) for b in bufs]
    sent = np.zeros(depth, dtype=np.int64)
    inflight = 0
    mono = time.monotonic_ns

    def aim(slots: np.ndarray) -> np.ndarray:
        got = next_ios(len(slots))
        if got is None or len(got[1]) == 0:
            return slots[:0]
        fds, offs = got
        slots = slots[: len(offs)]
        cbs["aio_fildes"][slots] = fds
        cbs["aio_offset"][slots] = offs
        if write and fill is not None:
            for s, off in zip(slots.tolist(), offs.tolist(), strict=True):
                fill(arrs[s], off)
        return slots

    try:
        ready = aim(np.arange(depth, dtype=np.int64))
        sent[ready] = mono()
        ctx.submit(ready)
        inflight = len(ready)
        stopping = len(ready) < depth
        reaped = 0
        while inflight:
            slots, res = ctx.getevents(1)
            now = mono()
            inflight -= len(slots)
            if (res < 0).any():
                err = int(-res[res < 0][0])
                raise OSError(err, f"AIO {'write' if write else 'read'}: {os.strerror(err)}")
            on_batch(now - sent[slots], int(res.sum()), now)
            if deadline_ns and now >= deadline_ns:
                stopping = True
            reaped += len(slots)
            if should_stop is not None and reaped >= 256:
                reaped = 0
                stopping = stopping or should_stop()
            if stopping:
                continue
            again = aim(slots)
            if len(again) < len(slots):
                stopping = True
            if len(again):
                sent[again] = mono()
                ctx.submit(again)
                inflight += len(again)
    finally:
        if inflight:  # drain what is still in the kernel before the buffers go away
            try:
                while inflight > 0:
                    inflight -= len(ctx.getevents(1)[0])
            except OSError:
                pass
        ctx.close()
