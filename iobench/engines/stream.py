"""Streaming whole files in fixed-size chunks through a bounded set of buffers: one I/O
thread pwrite()s (and fsyncs each file) or pread()s, timing every call, while the caller
fills or checks the buffers in its own thread. Memory is the buffers, whatever the size.

The write lane takes items from a queue: ("w", fd, path, offset, nbytes, buffer index)
and ("close", fd, size, path) (fsync, timed apart, then close); None ends it. The read
lane walks a list of files and hands ("r", file index, offset, got, nbytes, buffer index)
(or ("missing", file index)) to the caller, then None. Both return their measurements in
a StreamStats: bytes, ops, latency histogram, fsync histogram, timeline, end time. With
`direct` (O_DIRECT) the last partial block is transferred whole (the caller truncates).
"""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iobench.engines.native import open_file, pread_full, pwrite_full
from iobench.stats import LatencyRecorder, Timeline

ALIGN = 4096
POLL_S = 0.1  # how often a waiting lane checks whether the other side stopped


@dataclass
class StreamStats:
    """What one lane measured (and the stop flag both sides of a stream watch)."""

    start_ns: int = field(default_factory=time.monotonic_ns)
    bytes: int = 0
    ops: int = 0
    end_ns: int = 0  # when the last transfer or fsync finished (0: none yet)
    fsync_ns: int = 0  # total time in fsync
    fsyncs: int = 0
    recorder: LatencyRecorder = field(default_factory=LatencyRecorder)
    fsync_recorder: LatencyRecorder = field(default_factory=LatencyRecorder)
    timeline: Timeline | None = None
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.timeline is None:
            self.timeline = Timeline(self.start_ns)

    def fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        self.stop.set()


class Stopped(Exception):
    """The other side of the stream failed: this side gives up."""


class DiskFull(Exception):
    """ENOSPC while writing: which file, and how far it got."""

    def __init__(self, path: str, written: int, size: int) -> None:
        super().__init__(path, written, size)
        self.path = path
        self.written = written
        self.size = size


def get(q: queue.Queue, stats: StreamStats) -> Any:
    """Queue.get that gives up when either side failed (no deadlock on errors)."""
    while True:
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            if stats.stop.is_set():
                raise Stopped() from None


def _whole(n: int, direct: bool) -> int:
    return n if not direct else (n + ALIGN - 1) // ALIGN * ALIGN


def write_lane(full: queue.Queue, free: queue.Queue, bufs: Sequence[Any], *, direct: bool,
               stats: StreamStats, progress: Any = None) -> None:
    """The timed write loop (run it in its own thread): pwrite each chunk, fsync and close
    each file; the buffer of a written chunk goes back to `free`. Errors land in
    stats.error (ENOSPC as DiskFull) and stop both sides."""
    mono = time.monotonic_ns
    tl = stats.timeline
    assert tl is not None
    try:
        while True:
            item = get(full, stats)
            if item is None:
                return
            if item[0] == "close":
                _, fd, size, _path = item
                t1 = mono()
                if direct and size % ALIGN:
                    os.ftruncate(fd, size)  # the last block was written whole
                os.fsync(fd)
                t2 = mono()
                os.close(fd)
                stats.fsync_recorder.add(t2 - t1)
                stats.fsync_ns += t2 - t1
                stats.fsyncs += 1
                stats.end_ns = t2
                continue
            _, fd, path, off, n, bi = item
            t1 = mono()
            try:
                pwrite_full(fd, memoryview(bufs[bi])[:_whole(n, direct)], off)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise DiskFull(path, os.fstat(fd).st_size, 0) from None
                raise
            t2 = mono()
            stats.recorder.add(t2 - t1)
            stats.bytes += n
            stats.ops += 1
            stats.end_ns = t2
            tl.add(t2, n)
            if progress is not None:
                with progress.get_lock():
                    progress.value += n
            free.put(bi)
    except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
        stats.fail(e)


def read_lane(files: Sequence[tuple[str, int]], full: queue.Queue, free: queue.Queue,
              bufs: Sequence[Any], *, chunk: int, direct: bool, stats: StreamStats,
              progress: Any = None) -> None:
    """The timed read loop (run it in its own thread): pread every (path, size) in chunks
    into free buffers and hand each to `full`; a short file ends early. Errors land in
    stats.error and stop both sides."""
    mono = time.monotonic_ns
    tl = stats.timeline
    assert tl is not None
    try:
        for fi, (path, size) in enumerate(files):
            try:
                fd = open_file(Path(path), direct=direct)
            except FileNotFoundError:
                full.put(("missing", fi))
                continue
            try:
                off = 0
                while off < size:
                    n = min(chunk, size - off)
                    bi = get(free, stats)
                    t1 = mono()
                    got = pread_full(fd, memoryview(bufs[bi])[:_whole(n, direct)], off)
                    t2 = mono()
                    stats.recorder.add(t2 - t1)
                    got = min(got, n)
                    stats.bytes += got
                    stats.ops += 1
                    stats.end_ns = t2
                    tl.add(t2, got)
                    if progress is not None:
                        with progress.get_lock():
                            progress.value += got
                    full.put(("r", fi, off, got, n, bi))
                    if got < n:
                        break
                    off += n
            finally:
                os.close(fd)
        full.put(None)
    except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
        stats.fail(e)


def start(target: Any, *args: Any, **kw: Any) -> threading.Thread:
    """Run a lane in a daemon thread."""
    t = threading.Thread(target=target, args=args, kwargs=kw, daemon=True,
                         name="iobench-stream")
    t.start()
    return t
