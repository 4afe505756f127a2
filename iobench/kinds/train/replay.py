"""Runs of the replay (warm-up + measured, each of several epochs, the cache dropped before
every epoch) and their figures in the results schema: one phase per epoch, one `train`
phase over all measured epochs, checkpoint figures inside and outside write windows."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iobench import cache, dist, verify
from iobench.errors import RunFailed
from iobench.kinds.train import figures as m
from iobench.kinds.train.emulate import (
    Checkpointer,
    CheckpointRecord,
    Dataset,
    EpochStats,
    RateLimiter,
    ReplayConfig,
    run_epoch,
)
from iobench.results import make_phase
from iobench.stats import Histogram, Timeline


@dataclass
class RunStats:
    """One run: its epochs, the checkpoints taken during it, how the cache was handled."""

    label: str
    epochs: list[EpochStats] = field(default_factory=list)
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    cache_methods: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.epochs)

    @property
    def samples(self) -> int:
        return sum(e.samples for e in self.epochs)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.epochs)

    @property
    def au_pct(self) -> float | None:
        return m.au_overall([m.au_parts(e.step_end_ns, e.compute_ns) for e in self.epochs])

    @property
    def samples_per_s(self) -> float:
        s = self.seconds
        return self.samples / s if s > 0 else 0.0

    @property
    def bytes_per_s(self) -> float:
        s = self.seconds
        return self.nbytes / s if s > 0 else 0.0


def checkpoint_writer(directory: Path, size_bytes: int, direct: bool,
                      seed: int) -> Callable[[int], int]:
    """write(n) -> bytes: checkpoint n through the checkpoint workload's streaming rank
    writer (bounded memory, fsync'd), alternating two files as keep-last-one does.

    Under MPI every rank writes its share of the checkpoint (as data-parallel ranks save
    their shards) to its own file, so the checkpoint's bytes add up to `size_bytes`.
    """
    from iobench.kinds.checkpoint.rankio import FileJob, RankJob, write_rank

    w = dist.world()
    share = len(dist.split(size_bytes, w)) if w.size > 1 else size_bytes
    suffix = f"-rank{w.rank}" if w.size > 1 else ""

    def write(n: int) -> int:
        path = directory / f"train-ckpt-{n % 2}{suffix}.bin"
        out = write_rank(RankJob(rank=w.rank, files=(FileJob(str(path), share, stream=n),),
                                 seed=seed, direct=direct))
        err = out.get("error")
        if err:
            what = err.get("message") or (
                f"disk full writing {err.get('path')}" if err.get("kind") == "enospc" else err)
            raise RunFailed(f"checkpoint {n} during training failed: {what}")
        return int(out["bytes"])

    return write


def run_replay(ds: Dataset, cfg: ReplayConfig, *, epochs: int, policy: str, label: str,
               write_checkpoint: Callable[[int], int] | None = None,
               stop: threading.Event | None = None,
               progress: Callable[[int], None] | None = None) -> RunStats:
    """One run of `epochs` epochs; the cache policy is applied before every epoch.

    Under mpirun each rank emulates its share of the accelerators (iobench.dist.split) and
    every rank gets the epochs and checkpoints of all ranks merged (train.ranks).
    """
    w = dist.world()
    if w.size > 1:
        return _run_replay_ranks(w, ds, cfg, epochs=epochs, policy=policy, label=label,
                                 write_checkpoint=write_checkpoint, stop=stop,
                                 progress=progress)
    run = RunStats(label)
    ckpt = (Checkpointer(write_checkpoint, cfg.checkpoint_mode, cfg.checkpoint_every)
            if write_checkpoint is not None and cfg.checkpoint_every > 0 else None)
    limiter = RateLimiter(cfg.read_rate_limit) if cfg.read_rate_limit > 0 else None
    steps_done = 0
    try:
        for e in range(epochs):
            run.cache_methods.append(cache.prepare(policy, ds.files))
            resident = cache.residency(ds.files)  # measured after the policy, not assumed
            h0 = verify.host_cpu()
            st = run_epoch(ds, cfg, e, step_offset=steps_done, checkpointer=ckpt,
                           limiter=limiter, stop=stop, progress=progress)
            st.resident = resident
            _host(st, h0)
            steps_done += st.steps
            run.epochs.append(st)
    except KeyboardInterrupt as e:  # the finished epochs are kept (see one_run)
        e.run = run  # type: ignore[attr-defined]
        raise
    finally:
        if ckpt is not None:
            ckpt.drain()
            run.checkpoints = list(ckpt.records)
    if ckpt is not None and ckpt.error is not None:
        raise ckpt.error
    return run


def _run_replay_ranks(w: dist.World, ds: Dataset, cfg: ReplayConfig, *, epochs: int,
                      policy: str, label: str, write_checkpoint: Callable[[int], int] | None,
                      stop: threading.Event | None,
                      progress: Callable[[int], None] | None) -> RunStats:
    from iobench.kinds.train import ranks

    run = RunStats(label)
    ckpt = (Checkpointer(write_checkpoint, cfg.checkpoint_mode, cfg.checkpoint_every)
            if write_checkpoint is not None and cfg.checkpoint_every > 0 else None)
    # --read-rate-limit is for all readers together: each rank gets its accelerators' share
    mine = len(dist.split(cfg.accelerators, w))
    rate = cfg.read_rate_limit * mine / cfg.accelerators
    limiter = RateLimiter(rate) if rate > 0 else None
    sync = ranks.MPIStepSync(w)
    offset = ranks.wall_offset_ns()  # one clock per run: epochs and checkpoints agree
    steps_done = 0
    try:
        for e in range(epochs):
            # every rank drops its host's cache, and no rank starts reading before all
            # have (a late drop would evict what another rank just read): the collective
            # is the barrier, and a rank that cannot drop is named instead of hanging
            methods = dist.collective(lambda: cache.prepare(policy, ds.files), w,
                                      f"epoch {e + 1} cache {policy}")
            run.cache_methods.append(methods[0])
            resident = cache.residency(ds.files)  # this host's page cache
            h0 = verify.host_cpu()
            st = ranks.run_epoch_ranks(w, sync, offset, ds=ds, cfg=cfg, epoch=e,
                                       step_offset=steps_done, checkpointer=ckpt,
                                       limiter=limiter, stop=stop, progress=progress)
            st.resident = resident
            _host(st, h0)
            steps_done += st.steps
            run.epochs.append(st)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):  # the finished epochs are kept (one_run)
            e.run = run  # type: ignore[attr-defined]
        if ckpt is not None:  # an async checkpoint still being written: let it finish
            ckpt.drain()
        raise

    def local_records() -> list[CheckpointRecord]:
        if ckpt is None:
            return []
        ckpt.drain()
        if ckpt.error is not None:
            raise ckpt.error
        return list(ckpt.records)

    run.checkpoints = ranks.gather_records(w, local_records, offset)
    return run


# --- figures ------------------------------------------------------------------------------
def _wait_hist(epochs: Sequence[EpochStats]) -> Histogram:
    h = Histogram()
    for e in epochs:
        h.record_many(e.wait_ns[:, 1:].ravel())  # first step excluded, as for AU
    return h


def windows_in(start_ns: int, end_ns: int,
               records: Sequence[CheckpointRecord]) -> list[tuple[float, float]]:
    """Checkpoint write windows clipped to [start, end], in seconds from `start_ns`."""
    out = []
    for r in records:
        a, b = max(r.start_ns, start_ns), min(r.end_ns, end_ns)
        if b > a:
            out.append(((a - start_ns) / 1e9, (b - start_ns) / 1e9))
    return out


def window_figures(epochs: Sequence[EpochStats],
                   records: Sequence[CheckpointRecord]) -> dict[str, Any]:
    """Read throughput and latency while a checkpoint was being written versus not."""
    in_s = sum(sum(b - a for a, b in windows_in(e.start_ns, e.end_ns, records))
               for e in epochs)
    total_s = sum(e.seconds for e in epochs)
    out_s = max(total_s - in_s, 0.0)
    in_b = sum(e.in_window_bytes for e in epochs)
    out_b = sum(e.nbytes for e in epochs) - in_b
    in_h = Histogram.merged(e.in_window_latency for e in epochs)
    out_h = Histogram.merged(e.out_window_latency for e in epochs)

    def side(nbytes: int, secs: float, h: Histogram) -> dict[str, Any]:
        bps = nbytes / secs if secs > 0 else None
        return {"bytes": nbytes, "seconds": secs, "reads": h.count,
                "gb_per_s": bps / 1e9 if bps is not None else None,
                "p50_us": (h.percentile(50) or 0) / 1e3 if h.count else None,
                "p99_us": (h.percentile(99) or 0) / 1e3 if h.count else None}

    return {"in_window": side(in_b, in_s, in_h), "out_of_window": side(out_b, out_s, out_h)}


def au_without_stalls(epochs: Sequence[EpochStats],
                      records: Sequence[CheckpointRecord]) -> float | None:
    """AU with the checkpoint stalls taken out of the wall time: what the data path
    alone lets the accelerators reach (the stalls are the checkpoint's cost)."""
    parts = []
    for e in epochs:
        busy, wall = m.au_parts(e.step_end_ns, e.compute_ns)
        if e.steps:
            first = int(e.step_end_ns[0])
            wall -= sum(r.stall_ns for r in records if first < r.start_ns <= e.end_ns)
        parts.append((busy, wall))
    return m.au_overall(parts)


def _host(e: EpochStats, before: dict[str, int]) -> None:
    """The host's CPU over the epoch (this host's, under MPI too) onto its stats."""
    load1, runnable = verify.run_queue()
    e.host = m.host_window(before, verify.host_cpu(), e.cpu_s, e.seconds,
                           os.cpu_count() or 1, load1, runnable)


def _host_total(epochs: Sequence[EpochStats]) -> dict[str, float]:
    """Epochs' host figures, weighted by epoch time."""
    hs = [(e.host, e.seconds) for e in epochs if e.host]
    if not hs:
        return {}
    wall = sum(s for _, s in hs) or 1.0
    out = {k: round(sum(h.get(k, 0.0) * s for h, s in hs) / wall, 1)
           for k in ("host_busy_pct", "steal_pct", "others_pct", "load1")}
    out["runnable"] = max(h.get("runnable", 0.0) for h, _ in hs)
    out["ncpu"] = hs[0][0].get("ncpu", 1.0)
    return out


def epoch_phase(name: str, e: EpochStats, *, compute_s: float, threshold_pct: float,
                records: Sequence[CheckpointRecord] = (), warmup: bool = False,
                ncpu: int | None = None) -> dict[str, Any]:
    au = m.au_pct(e.step_end_ns, e.compute_ns)
    cpu = m.cpu_util_pct(e.cpu_s, e.seconds, ncpu or os.cpu_count() or 1)
    waits = _wait_hist([e])
    metrics: dict[str, Any] = {
        "epoch": e.epoch + 1, "steps": e.steps, "accelerators": e.accelerators,
        "samples": e.samples, "samples_per_s": e.samples / e.seconds if e.seconds else 0.0,
        "payload_bytes": e.payload_bytes,
        "au_pct": au, "au_pass": (au >= threshold_pct) if au is not None else None,
        "first_step_s": (int(e.step_end_ns[0]) - e.start_ns) / 1e9 if e.steps else None,
        "data_wait_ns": waits.summary() if waits.count else None,
        "cpu_util_pct": cpu,
        "client_limited": m.client_limited(cpu, au, threshold_pct, compute_s, e.host),
        "client_limited_why": m.client_limited_why(cpu, au, threshold_pct, compute_s,
                                                   e.host)[1],
        "host_cpu": e.host,
        "timeline_span_s": (e.end_ns - e.timeline.start_ns) / 1e9,
    }
    if e.resident is not None and e.resident.get("method") not in ("unavailable", "none"):
        metrics["resident_start_pct"] = e.resident["resident_pct"]
    if warmup:
        metrics["warmup"] = True
    if records:
        metrics["checkpoint_windows_s"] = windows_in(e.start_ns, e.end_ns, records)
        metrics["au_without_checkpoint_stalls_pct"] = au_without_stalls([e], records)
        metrics.update(window_figures([e], records))
    return make_phase(name, nbytes=e.nbytes, seconds=e.seconds, ops=e.reads,
                      latency=e.latency, timeline=e.timeline, engine="native",
                      direction="read", metrics=metrics)


def aggregate_phase(name: str, runs: Sequence[RunStats], *, compute_s: float,
                    threshold_pct: float, warmup: bool = False) -> dict[str, Any]:
    """All epochs of `runs` as one phase: merged latency, timeline on one clock."""
    epochs = [e for r in runs for e in r.epochs]
    records = [c for r in runs for c in r.checkpoints]
    hist = Histogram.merged(e.latency for e in epochs)
    tl = Timeline(epochs[0].timeline.start_ns)
    for e in epochs:
        tl.merge(e.timeline)
    seconds = sum(e.seconds for e in epochs)
    samples = sum(e.samples for e in epochs)
    au = m.au_overall([m.au_parts(e.step_end_ns, e.compute_ns) for e in epochs])
    cpu_s = sum(e.cpu_s for e in epochs)
    cpu = m.cpu_util_pct(cpu_s, seconds, os.cpu_count() or 1)
    host = _host_total(epochs)
    waits = _wait_hist(epochs)
    metrics: dict[str, Any] = {
        "runs": len(runs), "epochs": len(epochs), "steps": sum(e.steps for e in epochs),
        "samples": samples, "samples_per_s": samples / seconds if seconds else 0.0,
        "payload_bytes": sum(e.payload_bytes for e in epochs),
        "au_pct": au, "au_pass": (au >= threshold_pct) if au is not None else None,
        "data_wait_ns": waits.summary() if waits.count else None,
        "cpu_util_pct": cpu,
        "client_limited": m.client_limited(cpu, au, threshold_pct, compute_s, host),
        "client_limited_why": m.client_limited_why(cpu, au, threshold_pct, compute_s,
                                                   host)[1],
        "host_cpu": host,
        "timeline_span_s": (epochs[-1].end_ns - tl.start_ns) / 1e9,
    }
    if warmup:  # its epochs are not phases of their own: this phase is their only count
        metrics["warmup"] = True
    else:  # the measured runs' epochs are phases too: the byte audit counts those
        metrics["summary"] = True
    if records:
        metrics["checkpoint_windows_s"] = windows_in(tl.start_ns, epochs[-1].end_ns, records)
        metrics["au_without_checkpoint_stalls_pct"] = au_without_stalls(epochs, records)
        metrics.update(window_figures(epochs, records))
    return make_phase(name, nbytes=sum(e.nbytes for e in epochs), seconds=seconds,
                      ops=sum(e.reads for e in epochs), latency=hist, timeline=tl,
                      engine="native", direction="read", metrics=metrics)


def checkpoint_phase(records: Sequence[CheckpointRecord], *, mode: str, size_bytes: int,
                     every: int) -> dict[str, Any]:
    secs = [(r.end_ns - r.start_ns) / 1e9 for r in records]
    stalls = [r.stall_ns / 1e9 for r in records]
    lat = Histogram()
    lat.record_many(np.array([r.end_ns - r.start_ns for r in records], dtype=np.int64))
    return make_phase(
        "checkpoint", nbytes=sum(r.nbytes for r in records), seconds=sum(secs),
        ops=len(records), latency=lat, engine="native", direction="write",
        metrics={"mode": mode, "every_steps": every, "size_bytes": size_bytes,
                 "checkpoints": len(records), "stall_s": stalls,
                 "stall_mean_s": sum(stalls) / len(stalls) if stalls else 0.0,
                 "stall_max_s": max(stalls) if stalls else 0.0,
                 "write_s": secs,
                 "note": "latency = time to write one whole checkpoint (fsync'd)"})
