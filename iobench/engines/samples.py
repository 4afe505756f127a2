"""The sample-read lane: reader threads that read a list of samples (file, offset,
length) in order, each sample in reads of at most one block, every read timed on its own.

This is the timed read loop of the training replay (iobench.kinds.train.emulate), which
keeps the accelerator emulation and tells this lane when a reader may start a sample
(`take`, its prefetch permits) and what a finished sample means (`done`). Every read is
one os.preadv into a page-aligned buffer (widened to 4 KiB under O_DIRECT); the bytes
counted are the bytes the reads returned. Memory is one buffer per reader thread (one
block, or the largest sample when each sample is decoded whole).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from iobench import interrupt
from iobench.engines.native import WorkerStats, aligned_buffer, merge_workers, open_file, widen
from iobench.errors import RunFailed
from iobench.stats import Histogram, LatencyRecorder, Timeline

MAX_OPEN_FILES = 4096  # above this many files, each sample read opens and closes its file

# decode(file_index, data) parses one whole sample; raises on corrupt data
Decoder = Callable[[int, memoryview], None]


class SampleStream(Protocol):
    """A sample decoded as its pieces arrive (iobench.kinds.train.decode)."""

    def feed(self, piece: memoryview) -> None: ...

    def finish(self) -> None: ...


# stream(file_index, offset, length) starts decoding one sample piece by piece
StreamDecoder = Callable[[int, int, int], SampleStream]


class Limiter(Protocol):
    def take(self, nbytes: int) -> None: ...


@dataclass
class SampleWorker(WorkerStats):
    """One reader's figures; reads that completed while `window` was set are counted
    apart (in_recorder, in_bytes) as well as in `bytes` and `ops`."""

    in_recorder: LatencyRecorder = field(default_factory=LatencyRecorder)
    in_bytes: int = 0


@dataclass
class SampleReads:
    """What the lane measured: all reads merged, and split by the window."""

    start_ns: int
    end_ns: int
    bytes: int
    ops: int
    latency: Histogram  # every read
    timeline: Timeline
    in_window: Histogram  # reads that completed while `window` was set
    out_window: Histogram
    in_window_bytes: int


def read_samples(files: Sequence[Path], file_index: Sequence[int], offset: Sequence[int],
                 length: Sequence[int], *, threads: int, block_size: int,
                 direct: bool = False, stop: threading.Event,
                 take: Callable[[int], bool] | None = None,
                 done: Callable[[int], None] | None = None,
                 decode: Decoder | None = None, stream: StreamDecoder | None = None,
                 window: threading.Event | None = None, limiter: Limiter | None = None,
                 progress: Callable[[int], None] | None = None,
                 timeline_start_ns: int | None = None,
                 alongside: Sequence[interrupt.Worker] = (),
                 on_signal: Callable[[], None] | None = None,
                 on_poll: Callable[[], None] | None = None,
                 on_error: Callable[[], None] | None = None) -> SampleReads:
    """Read samples 0..n-1 with `threads` readers, in order of dispatch.

    take(i): called (under the dispatch lock) before sample i is handed out; it may block
      and returns False to stop (e.g. a prefetch permit that never came).
    done(i): called once sample i is read (and decoded).
    alongside: workers started and waited for with the readers (the accelerators).
    A reader's error stops the others (`stop`, then `on_error`) and is raised once every
    thread has returned; a signal is raised likewise (descriptors are closed first).
    """
    n_items = len(file_index)
    keep_open = len(files) <= MAX_OPEN_FILES
    fds: dict[int, int] = {}
    dispense = threading.Lock()
    next_item = [0]
    biggest = (max(length) if n_items else 0) + (8192 if direct else 0)
    whole = decode is not None and stream is None
    buf_bytes = biggest if whole else min(block_size, max(biggest, 4096))
    feed = stream if not whole else None

    def reader(st: SampleWorker) -> None:
        buf = aligned_buffer(buf_bytes)
        mv = memoryview(buf)
        rec, in_rec = st.recorder, st.in_recorder
        tl = st.timeline
        assert tl is not None
        mono = time.monotonic_ns
        preadv = os.preadv
        block = block_size
        while True:
            with dispense:
                i = next_item[0]
                if i >= n_items:
                    return
                if take is not None and not take(i):
                    return
                next_item[0] = i + 1
            if stop.is_set():
                return
            f, off, ln = file_index[i], offset[i], length[i]
            if direct:
                aoff, alen, skip = widen(off, ln)
            else:
                aoff, alen, skip = off, ln, 0
            fd = fds[f] if keep_open else open_file(files[f], direct=direct)
            feeder = feed(f, off, ln) if feed is not None else None
            try:
                pos = 0
                while pos < alen:
                    n = min(block, alen - pos)
                    if limiter is not None:
                        limiter.take(n)
                    view = mv[pos:pos + n] if whole else mv[:n]
                    t1 = mono()
                    got = preadv(fd, [view], aoff + pos)
                    t2 = mono()
                    st.bytes += got
                    st.ops += 1
                    tl.add(t2, got)
                    if window is not None and window.is_set():
                        in_rec.add(t2 - t1)
                        st.in_bytes += got
                    else:
                        rec.add(t2 - t1)
                    if progress is not None:
                        progress(got)
                    if got == 0:
                        break
                    if feeder is not None:  # the sample's part of this piece
                        lo, hi = max(pos, skip), min(pos + got, skip + ln)
                        if hi > lo:
                            feeder.feed(view[lo - pos : hi - pos])
                    pos += got
            finally:
                if not keep_open:
                    os.close(fd)
            if pos < skip + ln:
                raise RunFailed(
                    f"{files[f]}: sample at offset {off} ({ln} bytes) runs past the end of "
                    f"the file; the shard is truncated or corrupt: regenerate the data set "
                    f"with iobench datagen")
            if whole:
                assert decode is not None
                decode(f, mv[skip:skip + ln])
            if feeder is not None:
                feeder.finish()
            if done is not None:
                done(i)

    start_ns = time.monotonic_ns()
    tl_start = start_ns if timeline_start_ns is None else timeline_start_ns
    workers = [SampleWorker(timeline=Timeline(tl_start)) for _ in range(threads)]

    def body(st: SampleWorker) -> None:
        try:
            reader(st)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            st.error = e
            stop.set()
            if on_error is not None:
                on_error()

    try:
        if keep_open:
            for f in sorted(set(file_index)):
                fds[f] = open_file(files[f], direct=direct)
        lanes = [interrupt.Worker(target=body, args=(w,)) for w in workers]
        # every thread has returned before the descriptors are closed, whatever signals
        # arrive; a signal is raised after that
        sig = interrupt.start_and_wait([*lanes, *alongside], stop, on_signal=on_signal,
                                       on_poll=on_poll)
    finally:
        for fd in fds.values():
            os.close(fd)
    end_ns = time.monotonic_ns()
    if sig is not None:
        raise sig
    for w in workers:
        if w.error is not None:
            raise w.error
    nbytes, ops, out_hist, tl = merge_workers(workers, tl_start)
    in_hist = Histogram.merged(w.in_recorder.flush() for w in workers)
    return SampleReads(start_ns=start_ns, end_ns=end_ns, bytes=nbytes, ops=ops,
                       latency=Histogram().merge(out_hist).merge(in_hist), timeline=tl,
                       in_window=in_hist, out_window=out_hist,
                       in_window_bytes=sum(w.in_bytes for w in workers))


__all__ = ["MAX_OPEN_FILES", "Decoder", "SampleReads", "SampleStream", "SampleWorker",
           "StreamDecoder", "read_samples"]
