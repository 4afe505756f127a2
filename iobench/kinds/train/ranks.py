"""The training replay under mpirun: each rank emulates its share of the accelerators, every
step's barrier spans all ranks, and every rank merges all ranks' epochs into one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from iobench import dist, interrupt
from iobench.errors import RunFailed
from iobench.kinds.train.emulate import CheckpointRecord, EpochStats, PeerStopped, run_epoch
from iobench.stats import Histogram, Timeline

# The step barrier polls its request: yielding (sleep 0) for the first SPIN_S, as most
# ranks arrive within that of each other, then sleeping POLL_SLEEP_S between polls so a
# rank far ahead does not burn a core its readers need. Measured on 2 cores: ~0.3-1 ms
# per step over no barrier at all.
SPIN_S = 0.002
POLL_SLEEP_S = 0.0001


class MPIStepSync:
    """The per-step barrier across ranks: a non-blocking all-reduce (MIN) of an `ok` flag,
    polled so a Ctrl-C can abandon it. A rank that fails makes one last call with
    ok=False; every rank learns it at the same step and stops."""

    def __init__(self, w: dist.World) -> None:
        from mpi4py import MPI

        self._comm = w.comm  # type: ignore[attr-defined]
        self._world = w
        self._min = MPI.MIN
        self._abandon = threading.Event()
        self.steps: int | None = None
        self.calls = 0
        self.agreed_stop = False

    def reset(self) -> None:
        self.steps, self.calls, self.agreed_stop = None, 0, False

    def abandon(self) -> None:
        interrupt.set_event(self._abandon)  # from the signal handler too

    def __call__(self, ok: bool) -> bool:
        send = np.array([1 if ok else 0], dtype=np.int32)
        recv = np.zeros(1, dtype=np.int32)
        req = self._comm.Iallreduce(send, recv, op=self._min)
        spin_until = time.monotonic() + SPIN_S
        deadline = spin_until + dist.collective_timeout_s()
        while not req.Test():
            if self._abandon.is_set() or self._world.fault() is not None:
                self.agreed_stop = True
                return False
            if time.monotonic() > deadline:
                raise RunFailed(f"rank {self._world.rank}: waited "
                                f"{dist.collective_timeout_s():.0f} s for the other ranks at "
                                "a training step; a rank is stuck (see IOBENCH_MPI_TIMEOUT)")
            time.sleep(0 if time.monotonic() < spin_until else POLL_SLEEP_S)
        self.calls += 1
        if not recv[0]:
            self.agreed_stop = True
        return not self.agreed_stop


def wall_offset_ns() -> int:
    """Add to this process's monotonic ns to get wall-clock ns (comparable across hosts)."""
    return time.time_ns() - time.monotonic_ns()


def shift_epoch(e: EpochStats, offset_ns: int) -> EpochStats:
    """The epoch with every timestamp moved onto another clock."""
    tl = Timeline(e.timeline.start_ns + offset_ns, e.timeline.interval_ns, list(e.timeline.bins))
    return replace(e, start_ns=e.start_ns + offset_ns, end_ns=e.end_ns + offset_ns,
                   step_end_ns=e.step_end_ns + offset_ns, timeline=tl)


def shift_records(records: Sequence[CheckpointRecord], offset_ns: int) -> list[CheckpointRecord]:
    return [replace(r, start_ns=r.start_ns + offset_ns, end_ns=r.end_ns + offset_ns)
            for r in records]


def merge_epochs(parts: Sequence[tuple[str, EpochStats]]) -> EpochStats:
    """One epoch from every rank's (host, epoch), in rank order (= accelerator order).

    Sums for counts and bytes, merged histograms (never averaged percentiles), one timeline
    on the common clock; a step ends when the last rank ends it; compute and data-wait
    arrays are stacked so AU is averaged over all accelerators as in one process. CPU time
    is the busiest host's (the client-limited verdict is about one client).
    """
    eps = [e for _, e in parts]
    if len(eps) == 1:
        return eps[0]
    first = eps[0]
    if len({e.steps for e in eps}) != 1:
        raise RunFailed(f"epoch {first.epoch + 1}: ranks ran different step counts "
                        f"{sorted({e.steps for e in eps})}")
    steps = first.steps
    ends = [e.step_end_ns for e in eps if e.step_end_ns.size == steps]
    step_end = np.max(np.vstack(ends), axis=0) if ends else first.step_end_ns
    tl = Timeline(min(e.timeline.start_ns for e in eps), first.timeline.interval_ns)
    for e in eps:
        tl.merge(e.timeline)
    cpu_by_host: dict[str, float] = {}
    for host, e in parts:
        cpu_by_host[host] = cpu_by_host.get(host, 0.0) + e.cpu_s
    return EpochStats(
        epoch=first.epoch, start_ns=min(e.start_ns for e in eps),
        end_ns=max(e.end_ns for e in eps), steps=steps,
        accelerators=sum(e.accelerators for e in eps),
        samples=sum(e.samples for e in eps), payload_bytes=sum(e.payload_bytes for e in eps),
        nbytes=sum(e.nbytes for e in eps), reads=sum(e.reads for e in eps),
        latency=Histogram.merged(e.latency for e in eps), timeline=tl,
        step_end_ns=step_end,
        compute_ns=np.vstack([e.compute_ns for e in eps]),
        wait_ns=np.vstack([e.wait_ns for e in eps]),
        cpu_s=max(cpu_by_host.values()),
        in_window_bytes=sum(e.in_window_bytes for e in eps),
        in_window_latency=Histogram.merged(e.in_window_latency for e in eps),
        out_window_latency=Histogram.merged(e.out_window_latency for e in eps),
    )


def merge_records(per_rank: Sequence[Sequence[CheckpointRecord]]) -> list[CheckpointRecord]:
    """Checkpoint n of every rank (each wrote its share) as one: the window from the first
    rank's start to the last rank's end, the longest stall, all bytes."""
    if len(per_rank) == 1:
        return list(per_rank[0])
    by_number: dict[int, list[CheckpointRecord]] = {}
    for recs in per_rank:
        for r in recs:
            by_number.setdefault(r.number, []).append(r)
    return [CheckpointRecord(number=n, step=rs[0].step, start_ns=min(r.start_ns for r in rs),
                             end_ns=max(r.end_ns for r in rs),
                             stall_ns=max(r.stall_ns for r in rs),
                             nbytes=sum(r.nbytes for r in rs))
            for n, rs in sorted(by_number.items())]


def run_epoch_ranks(w: dist.World, sync: MPIStepSync, offset_ns: int,
                    **kwargs: Any) -> EpochStats:
    """This rank's part of the epoch (its accelerators), then every rank's merged.

    An error on any rank is raised on every rank naming it (dist.collective); the ranks
    that were only stopped because of it report nothing of their own.
    """
    ds, cfg, epoch = kwargs.pop("ds"), kwargs.pop("cfg"), kwargs.pop("epoch")
    host = socket.gethostname()

    def part() -> tuple[str, EpochStats] | None:
        try:
            st = run_epoch(ds, cfg, epoch, accels=dist.split(cfg.accelerators, w), sync=sync,
                           **kwargs)
        except PeerStopped:
            return None  # the failing rank's error is the one to report
        return host, shift_epoch(st, offset_ns)

    parts = dist.collective(part, w, f"epoch {epoch + 1}")
    done = [p for p in parts if p is not None]
    if len(done) != len(parts):  # a peer stopped us without an error of its own: say so
        raise RunFailed(f"epoch {epoch + 1}: ranks stopped early without an error")
    return merge_epochs(done)


def gather_records(w: dist.World, local: Callable[[], list[CheckpointRecord]],
                   offset_ns: int) -> list[CheckpointRecord]:
    """Every rank's checkpoint records (its share of each checkpoint), merged."""
    per_rank = dist.collective(lambda: shift_records(local(), offset_ns), w, "checkpoints")
    return merge_records(per_rank)
