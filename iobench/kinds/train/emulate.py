"""The emulation engine: reader threads fill a bounded prefetch of batches per emulated
accelerator; each accelerator takes its batch, sleeps its compute time, and waits at a
barrier that stands in for the all-reduce.

Every read is one os.preadv into a page-aligned buffer (O_DIRECT-capable: widened to
4 KiB when direct), timed on its own; the bytes counted are the bytes the reads
returned. Reader threads are `read_threads` per accelerator and share one ordered work
list (step-major), so no accelerator runs ahead of the others; a reader starting a new
batch takes one of its accelerator's `prefetch` permits, which the accelerator gives
back when it takes the batch. Memory is one buffer per reader thread (`block_size`, or
the largest sample when decoding), whatever the prefetch depth.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from iobench import interrupt
from iobench.engines.native import aligned_buffer, open_file, widen
from iobench.errors import RunFailed
from iobench.kinds.train.plan import EpochPlan, SampleTable, plan_epoch
from iobench.stats import Histogram, LatencyRecorder, Timeline

MAX_OPEN_FILES = 4096  # above this many shards, each sample read opens and closes its file

# decode(file_index, data) parses one sample as a framework would; raises on corrupt data
Decoder = Callable[[int, memoryview], None]


class SampleStream(Protocol):
    """A sample decoded as its pieces arrive (iobench.kinds.train.decode)."""

    def feed(self, piece: memoryview) -> None: ...

    def finish(self) -> None: ...


# stream_decode(file_index, offset, length) starts decoding one sample piece by piece
StreamDecoder = Callable[[int, int, int], SampleStream]


@dataclass(frozen=True)
class ReplayConfig:
    """How one replay runs (one run = `epochs` epochs)."""

    accelerators: int
    batch_size: int
    compute_s: float  # per step per accelerator; 0 = read as fast as possible
    read_threads: int = 4  # per accelerator
    prefetch: int = 2  # batches per accelerator read ahead of the one being computed
    block_size: int = 4 << 20  # largest single read; a bigger sample takes several
    direct: bool = False
    shuffle: str = "sample"
    seed: int = 0
    max_steps: int = 0  # > 0: cut each epoch short (find-max probes)
    read_rate_limit: float = 0.0  # bytes/s for all readers together; 0 = unthrottled
    checkpoint_every: int = 0  # steps; 0 = no checkpoints
    checkpoint_mode: str = "blocking"  # blocking | async


@dataclass
class Dataset:
    """What the replay reads: the shard files and every sample's place in them."""

    files: list[Path]
    table: SampleTable
    decode: Decoder | None = None
    name: str = ""
    file_bytes: tuple[int, ...] = ()  # each file's size (from the manifest), when known
    # when set (npz), --decode streams each sample through the block buffer instead of
    # holding it whole: memory per reader is one block, as without decoding
    stream_decode: StreamDecoder | None = None

    @property
    def max_sample_bytes(self) -> int:
        return int(self.table.length.max()) if self.table.count else 0


@dataclass
class CheckpointRecord:
    number: int
    step: int  # global step after which it was taken
    start_ns: int  # write window
    end_ns: int
    stall_ns: int  # how long the accelerators were held
    nbytes: int


@dataclass
class EpochStats:
    """What one epoch measured (absolute monotonic ns times)."""

    epoch: int
    start_ns: int
    end_ns: int
    steps: int
    accelerators: int
    samples: int
    payload_bytes: int  # sample bytes the epoch asked for
    nbytes: int  # bytes the reads returned (incl. O_DIRECT widening)
    reads: int
    latency: Histogram
    timeline: Timeline
    step_end_ns: np.ndarray  # (steps,)
    compute_ns: np.ndarray  # (accelerators, steps)
    wait_ns: np.ndarray  # (accelerators, steps): data wait per step
    cpu_s: float
    in_window_bytes: int = 0
    in_window_latency: Histogram = field(default_factory=Histogram)
    out_window_latency: Histogram = field(default_factory=Histogram)
    host: dict[str, float] = field(default_factory=dict)  # host CPU over the epoch
    # the data set's page-cache residency when the epoch began reading (cache.residency)
    resident: dict[str, Any] | None = None

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class RateLimiter:
    """All readers share one pipe of `bytes_per_s`: a read of n bytes occupies it for
    n / rate seconds after the previous one (a throttled storage for tests and rehearsals)."""

    def __init__(self, bytes_per_s: float) -> None:
        self.rate = bytes_per_s
        self._lock = threading.Lock()
        self._free_ns = 0

    def take(self, nbytes: int) -> None:
        with self._lock:
            now = time.monotonic_ns()
            start = max(now, self._free_ns)
            self._free_ns = start + int(nbytes / self.rate * 1e9)
            done = self._free_ns
        delay = (done - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)


class Checkpointer:
    """Takes a checkpoint every N steps: blocking (the accelerators wait for the write) or
    async (written by a background thread; the accelerators wait only when the previous
    checkpoint is still being written when the next is due)."""

    def __init__(self, write: Callable[[int], int], mode: str, every: int) -> None:
        self.write = write  # write(number) -> bytes written (durable on return)
        self.mode = mode
        self.every = every
        self.active = threading.Event()  # set while a checkpoint is being written
        self.records: list[CheckpointRecord] = []
        self.error: BaseException | None = None
        self._thread: interrupt.Worker | None = None
        self._number = 0

    def after_step(self, global_step: int) -> None:
        if self.every <= 0 or global_step % self.every:
            return
        self._number += 1
        t0 = time.monotonic_ns()
        if self.mode == "blocking":
            self.active.set()
            try:
                nbytes = self.write(self._number)
            finally:
                self.active.clear()
            t1 = time.monotonic_ns()
            self.records.append(CheckpointRecord(self._number, global_step, t0, t1, t1 - t0,
                                                 nbytes))
            return
        self.drain()  # one checkpoint in flight at most: waiting here is the stall
        if self.error is not None:
            raise self.error
        t1 = time.monotonic_ns()
        rec = CheckpointRecord(self._number, global_step, t1, t1, t1 - t0, 0)
        self.records.append(rec)
        self.active.set()
        self._thread = interrupt.Worker(target=self._background, args=(rec,))
        self._thread.start()

    def _background(self, rec: CheckpointRecord) -> None:
        try:
            rec.nbytes = self.write(rec.number)
        except BaseException as e:  # noqa: BLE001 - raised in the training threads
            self.error = e
        finally:
            rec.end_ns = time.monotonic_ns()
            self.active.clear()

    def drain(self) -> None:
        """Wait until the checkpoint being written is done (a signal cannot cut it short:
        it is acted on once the writer has returned)."""
        if self._thread is not None:
            with interrupt.shield():
                interrupt.wait_workers([self._thread])
                self._thread = None


@dataclass
class _Reader:
    rec: LatencyRecorder  # reads outside checkpoint windows
    in_rec: LatencyRecorder  # reads that completed while a checkpoint was being written
    timeline: Timeline
    nbytes: int = 0
    in_bytes: int = 0
    reads: int = 0
    error: BaseException | None = None


class _Stopped(Exception):
    pass


class StepSync(Protocol):
    """The per-step barrier across processes (MPI ranks): every process calls it once per
    step with whether it can go on; it returns False when any process cannot (then all
    stop at the same step, so nobody waits on a process that left)."""

    steps: int | None  # steps of the epoch under way (None: not planned yet)
    calls: int  # calls made in this epoch
    agreed_stop: bool  # a call returned False: every process stops at this step

    def reset(self) -> None: ...

    def __call__(self, ok: bool) -> bool: ...

    def abandon(self) -> None: ...


class PeerStopped(RunFailed):
    """This process was fine, but another one failed and every process stopped."""


def _drain(sync: StepSync) -> None:
    """This process is leaving the epoch early: tell the others at their next step, which
    is the call they are waiting in (nobody passes a call this process has not made)."""
    if not sync.agreed_stop and (sync.steps is None or sync.calls < sync.steps):
        sync(False)


def run_epoch(ds: Dataset, cfg: ReplayConfig, epoch: int, *,
              timeline_start_ns: int | None = None,
              step_offset: int = 0, checkpointer: Checkpointer | None = None,
              limiter: RateLimiter | None = None, stop: threading.Event | None = None,
              progress: Callable[[int], None] | None = None,
              accels: range | None = None, sync: StepSync | None = None) -> EpochStats:
    """Replay one epoch with `cfg.accelerators` accelerators; returns what it measured.

    `step_offset` is the number of steps already run (checkpoints count global steps);
    the timeline starts at `timeline_start_ns`, or at the epoch's start. Under MPI this
    process emulates the accelerators `accels` (global indices) of the global plan, and
    `sync` makes every step's barrier span all processes.
    """
    if sync is None:
        return _run_epoch(ds, cfg, epoch, timeline_start_ns, step_offset, checkpointer,
                          limiter, stop, progress, accels, None)
    sync.reset()
    try:
        return _run_epoch(ds, cfg, epoch, timeline_start_ns, step_offset, checkpointer,
                          limiter, stop, progress, accels, sync)
    except KeyboardInterrupt:
        sync.abandon()  # mpirun interrupts every rank: nobody waits for this one
        raise
    except BaseException:
        _drain(sync)
        raise


def _run_epoch(ds: Dataset, cfg: ReplayConfig, epoch: int, timeline_start_ns: int | None,
               step_offset: int, checkpointer: Checkpointer | None,
               limiter: RateLimiter | None, stop: threading.Event | None,
               progress: Callable[[int], None] | None, accels: range | None,
               sync: StepSync | None) -> EpochStats:
    plan: EpochPlan = plan_epoch(ds.table, accelerators=cfg.accelerators,
                                 batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch,
                                 shuffle=cfg.shuffle, max_steps=cfg.max_steps)
    mine = accels if accels is not None else range(cfg.accelerators)
    acc, bsz, steps = len(mine), cfg.batch_size, plan.steps
    order = plan.order
    if acc != cfg.accelerators:  # this process's accelerators' batches, still step-major
        order = order.reshape(steps, cfg.accelerators, bsz)[:, mine.start:mine.stop, :]
        order = order.reshape(-1)
    if sync is not None:
        sync.steps = steps
    s_file: list[int] = ds.table.file_index[order].tolist()
    s_off: list[int] = ds.table.offset[order].tolist()
    s_len: list[int] = ds.table.length[order].tolist()
    n_items = len(s_file)
    stop = stop or threading.Event()
    if limiter is None and cfg.read_rate_limit > 0:
        limiter = RateLimiter(cfg.read_rate_limit)

    fds: dict[int, int] = {}
    keep_open = len(ds.files) <= MAX_OPEN_FILES
    if keep_open:
        for f in sorted(set(s_file)):
            fds[f] = open_file(ds.files[f], direct=cfg.direct)

    remaining = [bsz] * (steps * acc)
    ready = [False] * (steps * acc)
    cond = threading.Condition()
    permits = [threading.Semaphore(cfg.prefetch) for _ in range(acc)]
    dispense = threading.Lock()
    next_item = [0]
    stream = ds.stream_decode
    decode = ds.decode if stream is None else None
    block = cfg.block_size
    direct = cfg.direct
    active = checkpointer.active if checkpointer is not None else None

    # buffer: whole-sample decoding needs the whole (widened) sample; plain reads and
    # stream decoding reuse one block
    biggest = ds.max_sample_bytes + (8192 if direct else 0)
    buf_bytes = biggest if decode is not None else min(block, max(biggest, 4096))

    def reader(st: _Reader) -> None:
        buf = aligned_buffer(buf_bytes)
        mv = memoryview(buf)
        rec, in_rec, tl = st.rec, st.in_rec, st.timeline
        mono = time.monotonic_ns
        preadv = os.preadv
        try:
            while True:
                with dispense:
                    i = next_item[0]
                    if i >= n_items:
                        return
                    if i % bsz == 0:  # a new batch: wait for room in its accelerator's queue
                        a = (i // bsz) % acc
                        while not permits[a].acquire(timeout=0.1):
                            if stop.is_set():
                                return
                    next_item[0] = i + 1
                if stop.is_set():
                    return
                f, off, ln = s_file[i], s_off[i], s_len[i]
                if direct:
                    aoff, alen, skip = widen(off, ln)
                else:
                    aoff, alen, skip = off, ln, 0
                fd = fds[f] if keep_open else open_file(ds.files[f], direct=direct)
                feeder = stream(f, off, ln) if stream is not None else None
                try:
                    pos = 0
                    while pos < alen:
                        n = min(block, alen - pos)
                        if limiter is not None:
                            limiter.take(n)
                        view = mv[pos:pos + n] if decode is not None else mv[:n]
                        t1 = mono()
                        got = preadv(fd, [view], aoff + pos)
                        t2 = mono()
                        st.nbytes += got
                        st.reads += 1
                        tl.add(t2, got)
                        if active is not None and active.is_set():
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
                        f"{ds.files[f]}: sample at offset {off} ({ln} bytes) runs past the "
                        f"end of the file; the shard is truncated or corrupt: regenerate "
                        f"the data set with iobench datagen")
                if decode is not None:
                    decode(f, mv[skip:skip + ln])
                if feeder is not None:
                    feeder.finish()
                b = i // bsz
                with cond:
                    remaining[b] -= 1
                    if remaining[b] == 0:
                        ready[b] = True
                        cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            st.error = e
            stop.set()
            with cond:
                cond.notify_all()

    step_end: list[int] = []
    compute = np.zeros((acc, steps), dtype=np.int64)
    wait = np.zeros((acc, steps), dtype=np.int64)
    errors: list[BaseException] = []

    def on_barrier() -> None:
        # Runs in one accelerator thread while all the others are held at the barrier,
        # which is exactly what a blocking checkpoint does to a training job: the step
        # ends when the checkpoint stall does, so AU counts the stall as lost compute.
        if checkpointer is not None:
            try:
                checkpointer.after_step(step_offset + len(step_end) + 1)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                stop.set()
        # the all-reduce spans every process: the step ends when the last one gets here
        if sync is not None and not sync(not stop.is_set()):
            stop.set()
            return
        step_end.append(time.monotonic_ns())

    if acc == 0:  # more processes than accelerators: this one only keeps step
        cpu0 = os.times()
        start_ns = time.monotonic_ns()
        for _ in range(steps):
            on_barrier()
            if stop.is_set():
                break
        return _finish(epoch, ds, start_ns, cpu0, [], errors, step_end, steps, acc, n_items,
                       s_len, np.zeros((0, steps), dtype=np.int64),
                       np.zeros((0, steps), dtype=np.int64), timeline_start_ns, sync)

    barrier = threading.Barrier(acc, action=on_barrier)
    compute_s = cfg.compute_s

    def accelerator(a: int) -> None:
        mono = time.monotonic_ns
        try:
            for s in range(steps):
                b = s * acc + a
                t0 = mono()
                with cond:
                    while not ready[b]:
                        if stop.is_set():
                            raise _Stopped
                        cond.wait(0.1)
                t1 = mono()
                permits[a].release()
                wait[a, s] = t1 - t0
                if compute_s > 0:
                    time.sleep(compute_s)
                    compute[a, s] = mono() - t1
                if stop.is_set():
                    raise _Stopped
                barrier.wait()
        except (_Stopped, threading.BrokenBarrierError):
            barrier.abort()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()
            barrier.abort()

    cpu0 = os.times()
    start_ns = time.monotonic_ns()
    tl_start = start_ns if timeline_start_ns is None else timeline_start_ns
    readers = [_Reader(LatencyRecorder(), LatencyRecorder(), Timeline(tl_start))
               for _ in range(acc * cfg.read_threads)]
    threads = [interrupt.Worker(target=reader, args=(r,)) for r in readers]
    threads += [interrupt.Worker(target=accelerator, args=(a,)) for a in range(acc)]

    def on_signal() -> None:  # in the signal handler: only set flags
        stop.set()
        if sync is not None:
            sync.abandon()  # the other ranks are stopped by theirs (or the fault notice)

    def on_poll() -> None:
        if stop.is_set():
            barrier.abort()
            with cond:
                cond.notify_all()

    try:
        # every thread has returned before the descriptors are closed, whatever signals
        # arrive; a signal is raised after that
        sig = interrupt.start_and_wait(threads, stop, on_signal=on_signal, on_poll=on_poll)
    finally:
        for fd in fds.values():
            os.close(fd)
    if sig is not None:
        raise sig
    return _finish(epoch, ds, start_ns, cpu0, readers, errors, step_end, steps, acc, n_items,
                   s_len, compute, wait, tl_start, sync)


def _finish(epoch: int, ds: Dataset, start_ns: int, cpu0: os.times_result,
            readers: list[_Reader], errors: list[BaseException], step_end: list[int],
            steps: int, acc: int, n_items: int, s_len: list[int], compute: np.ndarray,
            wait: np.ndarray, tl_start: int | None, sync: StepSync | None) -> EpochStats:
    end_ns = step_end[-1] if len(step_end) == steps else time.monotonic_ns()
    cpu1 = os.times()
    for r in readers:
        if r.error is not None:
            raise r.error
    if errors:
        raise errors[0]
    if len(step_end) != steps:
        if sync is not None and sync.agreed_stop:
            raise PeerStopped(f"epoch {epoch + 1} stopped after {len(step_end)} of {steps} "
                              "steps: another rank failed")
        raise RunFailed(f"epoch {epoch + 1} stopped after {len(step_end)} of {steps} steps")

    # each read went into exactly one of the two; their merge is the whole epoch
    out_hist = Histogram.merged(r.rec.flush() for r in readers)
    in_hist = Histogram.merged(r.in_rec.flush() for r in readers)
    hist = Histogram().merge(out_hist).merge(in_hist)
    tl = Timeline(start_ns if tl_start is None else tl_start)
    for r in readers:
        tl.merge(r.timeline)
    return EpochStats(
        epoch=epoch, start_ns=start_ns, end_ns=end_ns, steps=steps, accelerators=acc,
        samples=n_items, payload_bytes=int(sum(s_len)),
        nbytes=sum(r.nbytes for r in readers), reads=sum(r.reads for r in readers),
        latency=hist, timeline=tl, step_end_ns=np.array(step_end, dtype=np.int64),
        compute_ns=compute, wait_ns=wait,
        cpu_s=(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        in_window_bytes=sum(r.in_bytes for r in readers),
        in_window_latency=in_hist, out_window_latency=out_hist,
    )


def total_bytes(epochs: Sequence[EpochStats]) -> int:
    return sum(e.nbytes for e in epochs)
