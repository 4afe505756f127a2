"""The emulation engine: reader threads fill a bounded prefetch of batches per emulated
accelerator; each accelerator takes its batch, sleeps its compute time, and waits at a
barrier that stands in for the all-reduce.

The reads themselves are the sample-read lane of the one I/O layer
(iobench.engines.samples.read_samples): one os.preadv per block into a page-aligned
buffer, each timed on its own; this module decides when a reader may start a batch and
what a finished sample means. Reader threads are `read_threads` per accelerator and
share one ordered work list (step-major), so no accelerator runs ahead of the others; a
reader starting a new batch takes one of its accelerator's `prefetch` permits, which the
accelerator gives back when it takes the batch. Memory is one buffer per reader thread
(`block_size`, or the largest sample when decoding), whatever the prefetch depth.
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
from iobench.engines import samples
from iobench.errors import RunFailed
from iobench.kinds.train.plan import EpochPlan, SampleTable, plan_epoch
from iobench.stats import Histogram, Timeline

# decode(file_index, data) parses one sample as a framework would; raises on corrupt data
Decoder = samples.Decoder
SampleStream = samples.SampleStream  # a sample decoded as its pieces arrive
StreamDecoder = samples.StreamDecoder  # stream_decode(file_index, offset, length)


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

    remaining = [bsz] * (steps * acc)
    ready = [False] * (steps * acc)
    cond = threading.Condition()
    permits = [threading.Semaphore(cfg.prefetch) for _ in range(acc)]
    active = checkpointer.active if checkpointer is not None else None

    def take(i: int) -> bool:
        """A reader starting a new batch takes a permit of its accelerator's queue."""
        if i % bsz == 0:
            a = (i // bsz) % acc
            while not permits[a].acquire(timeout=0.1):
                if stop.is_set():
                    return False
        return True

    def done(i: int) -> None:
        b = i // bsz
        with cond:
            remaining[b] -= 1
            if remaining[b] == 0:
                ready[b] = True
                cond.notify_all()

    def wake() -> None:
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
        return _finish(epoch, ds, start_ns, cpu0, None, errors, step_end, steps, acc,
                       n_items, s_len, np.zeros((0, steps), dtype=np.int64),
                       np.zeros((0, steps), dtype=np.int64), sync, timeline_start_ns)

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
    accelerators = [interrupt.Worker(target=accelerator, args=(a,)) for a in range(acc)]

    def on_signal() -> None:  # in the signal handler: only set flags
        interrupt.set_event(stop)
        if sync is not None:
            sync.abandon()  # the other ranks are stopped by theirs (or the fault notice)

    def on_poll() -> None:
        if stop.is_set():
            barrier.abort()
            with cond:
                cond.notify_all()

    reads = samples.read_samples(
        ds.files, s_file, s_off, s_len, threads=acc * cfg.read_threads,
        block_size=cfg.block_size, direct=cfg.direct, stop=stop, take=take, done=done,
        decode=ds.decode, stream=ds.stream_decode, window=active, limiter=limiter,
        progress=progress, timeline_start_ns=timeline_start_ns, alongside=accelerators,
        on_signal=on_signal, on_poll=on_poll, on_error=wake)
    return _finish(epoch, ds, reads.start_ns, cpu0, reads, errors, step_end, steps, acc,
                   n_items, s_len, compute, wait, sync, timeline_start_ns)


def _finish(epoch: int, ds: Dataset, start_ns: int, cpu0: os.times_result,
            reads: samples.SampleReads | None, errors: list[BaseException],
            step_end: list[int], steps: int, acc: int, n_items: int, s_len: list[int],
            compute: np.ndarray, wait: np.ndarray, sync: StepSync | None,
            tl_start: int | None) -> EpochStats:
    end_ns = step_end[-1] if len(step_end) == steps else time.monotonic_ns()
    cpu1 = os.times()
    if errors:
        raise errors[0]
    if len(step_end) != steps:
        if sync is not None and sync.agreed_stop:
            raise PeerStopped(f"epoch {epoch + 1} stopped after {len(step_end)} of {steps} "
                              "steps: another rank failed")
        raise RunFailed(f"epoch {epoch + 1} stopped after {len(step_end)} of {steps} steps")
    if reads is None:  # this process emulated no accelerator
        hist, in_hist, out_hist = Histogram(), Histogram(), Histogram()
        tl = Timeline(start_ns if tl_start is None else tl_start)
        nbytes = ops = in_bytes = 0
    else:  # each read went into exactly one of the two; their merge is the whole epoch
        hist, tl = reads.latency, reads.timeline
        in_hist, out_hist = reads.in_window, reads.out_window
        nbytes, ops, in_bytes = reads.bytes, reads.ops, reads.in_window_bytes
    return EpochStats(
        epoch=epoch, start_ns=start_ns, end_ns=end_ns, steps=steps, accelerators=acc,
        samples=n_items, payload_bytes=int(sum(s_len)), nbytes=nbytes, reads=ops,
        latency=hist, timeline=tl, step_end_ns=np.array(step_end, dtype=np.int64),
        compute_ns=compute, wait_ns=wait,
        cpu_s=(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        in_window_bytes=in_bytes, in_window_latency=in_hist, out_window_latency=out_hist,
    )


def total_bytes(epochs: Sequence[EpochStats]) -> int:
    return sum(e.nbytes for e in epochs)
