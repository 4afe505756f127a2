"""Run one training replay: open the data set, emulate the accelerators, measure.

`run(spec, options, ctx)` is the whole `iobench train` without the command line: the
Python API and suites call it; `iobench train` is options -> Spec -> run -> render.
Imports neither click nor rich: progress goes to `ctx.progress`, the MPI world is
`ctx.world`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import cache as cache_mod
from iobench import dist, runner
from iobench import target as target_mod
from iobench.errors import SpecError, UsageError
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.train import figures as m
from iobench.kinds.train import findmax, replay
from iobench.kinds.train.emulate import Dataset, ReplayConfig
from iobench.kinds.train.spec import Spec
from iobench.results import Recorder, Result
from iobench.spec import to_dict
from iobench.units import format_bytes
from iobench.workload import TrainingSpec, accelerator, compute_seconds

FIND_MAX_LIMIT = 256  # accelerators emulated in one process at most (threads: A x (T + 1))
RAM_MULTIPLE = 5  # MLPerf Storage: data set >= 5 x client RAM


@dataclass(frozen=True)
class TrainOptions:
    """Everything the command line decides beyond the workload spec."""

    accelerator: str
    accelerators: int
    compute_s: float
    compute_source: str
    epochs: int
    engine: str
    cache: str
    read_threads: int
    prefetch: int
    decode: bool
    runs: int | None  # None: one run, no warm-up; R: warm-up + R measured runs
    seed: int
    block_size: int
    max_steps: int
    find_max: bool
    probe_steps: int
    checkpoint_every: int
    checkpoint_size: int
    checkpoint_mode: str
    read_rate_limit: float
    # --dlio-config: the verdict is MLPerf's AU, which ends each block before the
    # checkpoint (DLIO's statscounter end_block), so the checkpoint stalls are excluded
    au_excludes_stalls: bool = False


def _positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise UsageError(f"--{name}: {value} must be >= 1")


def _compute(spec: TrainingSpec, accel: str, override: float | None) -> tuple[float, str]:
    accelerator(accel)  # unknown name: one line with a did-you-mean
    if override is not None:
        return override, "--compute-time"
    try:
        return compute_seconds(spec, accel), "the workload's compute_seconds_per_step"
    except SpecError as e:
        raise SpecError(f"{e.format_message()}; or give --compute-time SECONDS") from None


def ram_verdict(verdict: dict[str, Any], data_bytes: int, policy: str) -> str | None:
    """Mark a data set under 5 x RAM read through the page cache; the warning, if any."""
    ram = int(verdict.get("ram_bytes") or cache_mod.ram_bytes())
    small = data_bytes < RAM_MULTIPLE * ram
    verdict["dataset_below_5x_ram"] = small
    if not small or policy == "direct":
        return None
    verdict["may_be_cached"] = verdict.get("may_be_cached") or policy == "allow"
    verdict["note"] = (verdict.get("note", "") + f"; the data set ({format_bytes(data_bytes)})"
                       f" is under {RAM_MULTIPLE} x RAM ({format_bytes(ram)}), so the page "
                       "cache can hold much of it")
    return (f"data set is {data_bytes / ram:.2f} x RAM, under the {RAM_MULTIPLE} x RAM MLPerf "
            f"asks: with --cache {policy} reads may come from the page cache, not storage; "
            "generate a larger data set (iobench datagen --auto-size) or use --cache direct")


def _config(spec: TrainingSpec, o: TrainOptions, accelerators: int,
            max_steps: int | None = None) -> ReplayConfig:
    return ReplayConfig(
        accelerators=accelerators, batch_size=spec.batch_size, compute_s=o.compute_s,
        read_threads=o.read_threads, prefetch=o.prefetch, block_size=o.block_size,
        direct=o.cache == "direct", shuffle=spec.shuffle, seed=o.seed,
        max_steps=o.max_steps if max_steps is None else max_steps,
        read_rate_limit=o.read_rate_limit, checkpoint_every=o.checkpoint_every,
        checkpoint_mode=o.checkpoint_mode)


def _summary(result: Recorder, spec: TrainingSpec, o: TrainOptions, accelerators: int,
             runs: list[replay.RunStats], train_phase: dict[str, Any]) -> None:
    pm = train_phase["metrics"]
    au = pm["au_pct"]
    au_pass = pm["au_pass"]
    bare = pm.get("au_without_checkpoint_stalls_pct")
    if o.au_excludes_stalls and bare is not None:
        # MLPerf Storage / DLIO: AU over the training blocks, checkpoints excluded
        au, au_pass = bare, bare >= spec.au_threshold_pct
        result.metrics.update({"au_with_checkpoint_stalls_pct": pm["au_pct"],
                               "au_pass_with_checkpoint_stalls": pm["au_pass"]})
    result.metrics["au_basis"] = (
        "MLPerf Storage (checkpoint stalls excluded, as DLIO)" if o.au_excludes_stalls
        else "all steps (checkpoint stalls included)")
    lat = train_phase["latency_ns"]
    wait = pm.get("data_wait_ns") or {}
    result.metrics.update({
        "accelerator": o.accelerator, "accelerators": accelerators,
        "compute_s": o.compute_s, "au_threshold_pct": spec.au_threshold_pct,
        "au_pct": au, "au_pass": au_pass,
        "au_per_epoch_pct": [e["metrics"]["au_pct"] for e in result.phases
                             if e["name"].startswith(("epoch", "run ")) and
                             e["direction"] == "read"],
        "samples_per_s": pm["samples_per_s"], "gb_per_s": train_phase["gb_per_s"],
        "gib_per_s": train_phase["gib_per_s"], "bytes": train_phase["bytes"],
        "payload_bytes": pm["payload_bytes"], "samples": pm["samples"],
        "read_p50_us": (lat.get("p50") or 0) / 1e3, "read_p99_us": (lat.get("p99") or 0) / 1e3,
        "data_wait_p50_us": (wait.get("p50") or 0) / 1e3,
        "data_wait_p99_us": (wait.get("p99") or 0) / 1e3,
        "cpu_util_pct": pm["cpu_util_pct"], "client_limited": pm["client_limited"],
        "client_limited_why": pm.get("client_limited_why", ""),
        "decode": o.decode,
    })
    if o.runs is not None:
        s = m.runs_summary([r.samples_per_s for r in runs])
        result.metrics.update({
            "runs": [{"run": i + 1, "samples_per_s": r.samples_per_s,
                      "gb_per_s": r.bytes_per_s / 1e9, "au_pct": r.au_pct}
                     for i, r in enumerate(runs)],
            "runs_mean_samples_per_s": s.mean, "runs_stdev_samples_per_s": s.stdev,
            "runs_cv_pct": s.cv_pct, "runs_spread_pct": s.spread_pct, "runs_agree": s.agree,
        })
        if not s.agree:
            result.warnings.append(
                f"the {len(runs)} measured runs differ by up to {s.spread_pct:.1f}% "
                f"(MLPerf asks them to agree within {m.RUNS_AGREE_PCT:.0f}%): "
                "something else is using this storage or client; rerun on a quiet system")
    if pm["client_limited"]:
        result.warnings.append(
            f"client-limited: {pm.get('client_limited_why') or 'the client CPU was busy'} "
            f"({os.cpu_count()} cores), so the client, not storage, may be what limits "
            "these figures; use more client hosts (mpirun), a quieter host or --no-decode")
    if au is not None and not au_pass:
        if bare is not None and bare >= spec.au_threshold_pct:
            result.warnings.append(
                f"AU {au:.1f}% is under the {spec.au_threshold_pct:g}% threshold because of "
                f"the checkpoint stalls: without them it is {bare:.1f}%; try "
                "--checkpoint-mode async or checkpoint less often")
        else:
            result.warnings.append(
                f"AU {au:.1f}% is under the {spec.au_threshold_pct:g}% threshold: storage "
                f"(or the client) cannot feed {accelerators} x {o.accelerator} on "
                f"{spec.name}")


def run_training(result: Recorder, spec: TrainingSpec, o: TrainOptions, ds: Dataset,
                 tgt: target_mod.Target, data_bytes: int, ctx: Ctx) -> None:
    """The body run under `runner.run`: runs (or the find-max search), phases, metrics."""
    stop = threading.Event()
    w = ctx.world
    write_ckpt: Callable[[int], int] | None = None
    if o.checkpoint_every:
        write_ckpt = replay.checkpoint_writer(dist.root_first(lambda: tgt.subdir("train"), w),
                                              o.checkpoint_size, o.cache == "direct",
                                              spec.seed)
    thr = spec.au_threshold_pct
    per_run = ds.table.total_bytes * o.epochs
    n_runs = (o.runs + 1) if o.runs is not None else 1
    with ctx.progress("train", None if o.find_max else per_run * n_runs) as prog:

        def one_run(cfg: ReplayConfig, label: str, epochs: int, on_phase: bool,
                    run_no: int | None) -> replay.RunStats:
            advance: Callable[[int], None] = prog.advance
            mine = len(dist.split(cfg.accelerators, w))
            if w.size > 1 and mine:
                # only rank 0 draws; the ranks move in step (the per-step barrier), so its
                # share scaled up is the aggregate
                scale = cfg.accelerators / mine

                def advance_scaled(n: int) -> None:
                    prog.advance(int(n * scale))

                advance = advance_scaled
            try:
                run = replay.run_replay(ds, cfg, epochs=epochs, policy=o.cache, label=label,
                                        write_checkpoint=write_ckpt, stop=stop,
                                        progress=advance)
            except KeyboardInterrupt as intr:  # keep the epochs that finished
                done = getattr(intr, "run", None)
                if on_phase and done is not None:
                    for ep in done.epochs:
                        name = f"epoch {ep.epoch + 1}" if run_no is None else \
                            f"run {run_no} epoch {ep.epoch + 1}"
                        result.add_phase(replay.epoch_phase(
                            name, ep, compute_s=o.compute_s, threshold_pct=thr,
                            records=done.checkpoints))
                raise
            if not result.cache:
                # measured, not assumed: the data set's residency when the first epoch
                # began reading (after the cache policy was applied)
                res0 = run.epochs[0].resident if run.epochs else None
                result.cache = cache_mod.verdict(
                    o.cache, run.cache_methods[0] if run.cache_methods else "none",
                    data_bytes, reads=True,
                    rereads=o.cache == "allow" and (epochs > 1 or o.runs is not None),
                    resident=res0)
                if res0 is not None and o.cache in cache_mod.DROP_POLICIES and \
                        res0["resident_pct"] > cache_mod.RESIDENT_WARN_PCT:
                    result.warnings.append(
                        f"{res0['resident_pct']:.1f}% of the data set is still in the page "
                        "cache after the eviction: reads may come from RAM")
                warn = ram_verdict(result.cache, data_bytes, o.cache)
                if warn:
                    result.warnings.append(warn)
            if on_phase:
                for e in run.epochs:
                    name = f"epoch {e.epoch + 1}" if run_no is None else \
                        f"run {run_no} epoch {e.epoch + 1}"
                    result.add_phase(replay.epoch_phase(
                        name, e, compute_s=o.compute_s, threshold_pct=thr,
                        records=run.checkpoints))
            return run

        accelerators = o.accelerators
        measured: list[replay.RunStats] = []
        if o.find_max:
            accelerators, confirmed = _find_max(result, spec, o, ds, one_run)
            if confirmed is None:
                return
            measured = [confirmed]  # the confirming run, its epochs already in the phases
        else:
            cfg = _config(spec, o, accelerators)
            if o.runs is not None:
                warm = one_run(cfg, "warm-up", o.epochs, False, None)
                result.add_phase(replay.aggregate_phase(
                    "warm-up", [warm], compute_s=o.compute_s, threshold_pct=thr, warmup=True))
            for i in range(o.runs or 1):
                measured.append(one_run(cfg, f"run {i + 1}", o.epochs, True,
                                        i + 1 if o.runs is not None else None))
    train = replay.aggregate_phase("train", measured, compute_s=o.compute_s,
                                   threshold_pct=thr)
    result.phases.insert(0, train)
    records = [c for r in measured for c in r.checkpoints]
    if o.checkpoint_every and records:  # none fired (a short run): no empty phase
        result.add_phase(replay.checkpoint_phase(records, mode=o.checkpoint_mode,
                                                 size_bytes=o.checkpoint_size,
                                                 every=o.checkpoint_every))
    _summary(result, spec, o, accelerators, measured, train)
    if records:
        ck = result.phases[-1]["metrics"]
        win = train["metrics"]
        result.metrics.update({
            "checkpoints": len(records), "checkpoint_mode": o.checkpoint_mode,
            "checkpoint_stall_mean_s": ck["stall_mean_s"],
            "checkpoint_stall_max_s": ck["stall_max_s"],
            "checkpoint_write_gb_per_s": result.phases[-1]["gb_per_s"],
            "au_without_checkpoint_stalls_pct": win["au_without_checkpoint_stalls_pct"],
            "in_window_gb_per_s": win["in_window"]["gb_per_s"],
            "out_of_window_gb_per_s": win["out_of_window"]["gb_per_s"],
            "in_window_read_p99_us": win["in_window"]["p99_us"],
            "out_of_window_read_p99_us": win["out_of_window"]["p99_us"],
        })
    if o.engine == "fio":
        _raw_fio(result, ds, o, accelerators, tgt, w)


def _find_max(result: Recorder, spec: TrainingSpec, o: TrainOptions, ds: Dataset,
              one_run: Callable[..., replay.RunStats]) -> tuple[int, replay.RunStats | None]:
    """(accelerators fed, the confirming full run); its epochs are added as phases."""
    thr = spec.au_threshold_pct
    confirmed_runs: list[replay.RunStats] = []
    limit = min(FIND_MAX_LIMIT, ds.table.count // (spec.batch_size * 2))

    def probe(n: int) -> findmax.Probe:
        run = one_run(_config(spec, o, n, max_steps=o.probe_steps), f"probe {n}", 1, False,
                      None)
        au = run.au_pct
        return findmax.Probe(n, au, au is not None and au >= thr, run.samples_per_s,
                             run.bytes_per_s)

    def full(n: int) -> findmax.Probe:
        before = len(result.phases)
        run = one_run(_config(spec, o, n), f"confirm {n}", o.epochs, True, None)
        au = run.au_pct
        ok = au is not None and au >= thr
        if ok:
            confirmed_runs.append(run)
        else:  # a failed confirmation's epochs are not the answer's: keep them aside
            del result.phases[before:]
        return findmax.Probe(n, au, ok, run.samples_per_s, run.bytes_per_s, kind="confirm")

    s = findmax.search(probe, limit=limit, start=o.accelerators)
    fed = findmax.confirm(full, s.best, s) if s.best else 0
    result.metrics["find_max_probes"] = [dataclasses.asdict(p) for p in s.probes]
    result.metrics["accelerators_fed"] = fed
    result.metrics["find_max_limit"] = limit
    confirmed = next((p for p in reversed(s.probes) if p.kind == "confirm" and p.passed), None)
    result.metrics["find_max_statement"] = (
        f"this storage feeds {fed} x {o.accelerator.upper()} on {spec.name} at AU >= "
        f"{thr:g}%" + (f" ({confirmed.bytes_per_s / 1e9:.2f} GB/s, "
                       f"{confirmed.samples_per_s:.1f} samples/s)" if confirmed else ""))
    if fed and fed == limit:
        result.warnings.append(
            f"find-max stopped at its limit of {limit} accelerators (the data set's samples "
            f"/ (2 x batch), or {FIND_MAX_LIMIT}): the storage may feed more; generate a "
            "larger data set to search further")
    if not fed:
        result.metrics.update({"accelerator": o.accelerator, "accelerators": 0,
                               "au_threshold_pct": thr, "au_pct": None, "au_pass": False})
        result.warnings.append(
            f"even 1 x {o.accelerator} misses AU {thr:g}% on {spec.name}: the storage (or "
            "this client) cannot feed a single accelerator")
    return fed, (confirmed_runs[-1] if fed and confirmed_runs else None)


def _raw_fio(result: Recorder, ds: Dataset, o: TrainOptions, accelerators: int,
             tgt: target_mod.Target, w: dist.World) -> None:
    """The same files read by fio, each whole and sequentially: the storage's raw
    capability, beside what the training replay got out of it. Under MPI each rank reads
    its share of the files with its accelerators' threads; the ranks' phases are merged."""
    from iobench.engines import fio
    from iobench.results import make_phase

    mine = [ds.files[i] for i in dist.split(len(ds.files), w)]
    threads = max(1, len(dist.split(accelerators, w)) * o.read_threads)
    dist.collective(lambda: cache_mod.prepare(o.cache, mine) if mine else None, w,
                    f"raw (fio) cache {o.cache}")
    # fio reads whole blocks only (a file's tail under one block is left unread) and
    # refuses a block larger than a file, so shards under 8 blocks get a smaller
    # power-of-two block: the tail left is then under 1/8 of the smallest shard
    sizes = list(ds.file_bytes) or [f.stat().st_size for f in ds.files]
    bs = o.block_size
    while bs > 4096 and bs * 8 > min(sizes):
        bs //= 2
    bs = max(4096, bs - bs % 4096)
    workdir = dist.root_first(lambda: tgt.subdir("train"), w)

    def part() -> list[dict[str, Any]]:
        start = dist.wall_from_mono(time.monotonic_ns())
        if not mine:  # more ranks than files: this rank reads nothing
            phases = [make_phase("raw (fio)", nbytes=0, seconds=0.0, ops=0, engine="fio",
                                 direction="read")]
        else:
            phases = fio.run_files(mine, rw="read", block_size=bs, jobs=threads,
                                   direct=o.cache == "direct", name="raw (fio)",
                                   workdir=workdir)
        end = dist.wall_from_mono(time.monotonic_ns())
        if w.size > 1:  # merged on one clock: aggregate = all bytes / (last end - first start)
            for p in phases:
                dist.stamp(p, start, end)
        return phases

    phases = dist.combine(part, w, "raw (fio)") if w.size > 1 else part()
    tail = sum(size % bs for size in sizes)
    for p in phases:
        p["metrics"]["block_size_bytes"] = bs
        p["metrics"]["files_read_pct"] = 100.0 * p["bytes"] / sum(sizes) if sum(sizes) else 0
        if w.size > 1:  # the merged phase keeps rank 0's metrics: the totals are all ranks'
            p["metrics"]["jobs"] = accelerators * o.read_threads
            if tail:
                p["metrics"]["unread_tail_bytes"] = tail
        result.add_phase(p)
    raw = phases[0]
    result.metrics["raw_gb_per_s"] = raw["gb_per_s"]
    train_gbps = result.metrics.get("gb_per_s")
    if raw["gb_per_s"] and train_gbps is not None:
        result.metrics["train_to_raw"] = train_gbps / raw["gb_per_s"]


def _check_steps(ds: Dataset, spec: TrainingSpec, accelerators: int) -> None:
    need = accelerators * spec.batch_size
    if ds.table.count < need:
        raise UsageError(
            f"the {spec.name} data set has {ds.table.count} samples but {accelerators} "
            f"accelerator(s) x batch {spec.batch_size} need {need} per step; generate a "
            f"larger data set (iobench datagen {spec.name} --files N) or use fewer "
            "--accelerators")


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    """Run the replay; the Outcome says how it ended (the exit code a command gives)."""
    ctx = ctx or default_ctx()
    spec.validate()
    workload = spec.training
    assert workload is not None  # validate() refuses a Spec without one
    imp = spec.dlio
    compute_s, source = _compute(workload, spec.accelerator, spec.compute_time)
    if spec.dlio_compute:
        source = "DLIO train.computation_time"
    if spec.find_max and compute_s <= 0:
        raise UsageError("--find-max needs compute time per step > 0 (AU is compute / wall); "
                         "drop --compute-time 0")
    if spec.engine == "fio":
        from iobench.engines import fio

        fio.fio_binary()  # not installed: one line with the install hint, before any run
    w = ctx.world
    target = options.target
    with target_mod.locked():
        # what needs no other rank and not the target; the rest is prepare()'s, after the
        # provisional result exists (a rank killed there still leaves one)
        rec = Recorder(kind="train", name=workload.name, spec=to_dict(workload),
                       engine=spec.engine)
        if imp is not None:
            rec.spec["dlio"] = imp.record()
            warning = imp.warning()
            if warning is not None:
                rec.warnings.append(warning)
        ready: dict[str, Any] = {}  # what prepare() made, for the body

        def prepare(r: Recorder) -> Path:
            def prepare_target() -> target_mod.Target:
                if not target.exists():
                    raise UsageError(f"--target {target}: does not exist; generate the data set "
                                     f"first: iobench datagen {workload.name} --target {target}")
                return target_mod.prepare(target, force=options.force, wait=options.wait > 0)

            tgt = dist.root_first(prepare_target, w)
            from iobench.kinds.train import dataset as ds_mod

            def open_dataset() -> tuple[Any, Dataset]:
                if spec.data_folder is not None:
                    assert imp is not None
                    assert imp.dlio_format is not None
                    dg, ds = ds_mod.open_dlio_folder(spec.data_folder, workload, imp.dlio_format)
                else:
                    dg, ds = ds_mod.open_for_training(tgt.root, workload)
                if w.size > 1:  # the sample table travels in `ds`: the shard indexes need not
                    dg = dataclasses.replace(dg, _index={})
                return dg, ds

            # rank 0 checks the manifest and indexes every shard once; the other ranks receive
            # the sample table instead of reading every shard's index again (and every rank
            # derives the same per-epoch shuffle from the seed)
            dg, ds = dist.root_first_value(open_dataset, w)
            if spec.decode:
                ds.decode = ds_mod.decoder(dg)
                ds.stream_decode = ds_mod.stream_decoder(dg)
            n_acc = spec.accelerators or 1
            _check_steps(ds, workload, n_acc if not spec.find_max else 1)
            checkpoint_every = spec.checkpoint_every
            checkpoint_size = spec.checkpoint_size
            if spec.dlio_checkpoint_epochs:  # a DLIO checkpoint every N epochs: in steps
                from iobench.kinds.train.plan import steps_per_epoch

                per_epoch = steps_per_epoch(ds.table.count, n_acc, workload.batch_size)
                checkpoint_every = spec.dlio_checkpoint_epochs * (
                    min(per_epoch, spec.max_steps) if spec.max_steps else per_epoch)
            if spec.dlio_checkpoint_sizing and checkpoint_size is not None:
                # DLIO 2.0.0 sizing: under type all_ranks every accelerator (DLIO rank) writes
                checkpoint_size = imp.checkpoint_sizing.total_bytes(n_acc)
            if checkpoint_size is not None:
                tgt.check_space(2 * checkpoint_size, f"checkpoints of "
                                f"{format_bytes(checkpoint_size)} during training (two kept)")
            o = TrainOptions(
                accelerator=spec.accelerator.lower(), accelerators=n_acc, compute_s=compute_s,
                compute_source=source, epochs=spec.epochs or workload.epochs, engine=spec.engine,
                cache=spec.cache, read_threads=spec.read_threads or workload.read_threads,
                prefetch=spec.prefetch, decode=spec.decode, runs=spec.runs,
                seed=workload.seed if spec.seed is None else spec.seed,
                block_size=spec.block_size, max_steps=spec.max_steps, find_max=spec.find_max,
                probe_steps=spec.probe_steps, checkpoint_every=checkpoint_every or 0,
                checkpoint_size=checkpoint_size or 0, checkpoint_mode=spec.checkpoint_mode,
                read_rate_limit=float(spec.read_rate_limit or 0),
                au_excludes_stalls=imp is not None)
            spec_d = {**to_dict(workload), "options": dataclasses.asdict(o),
                      "dataset": {"directory": str(dg.root), "files": len(ds.files),
                                  "samples": ds.table.count, "bytes": dg.total_bytes,
                                  "sample_bytes": ds.table.total_bytes}}
            if imp is not None:
                spec_d["dlio"] = imp.record()  # where the workload came from, key by key
                if imp.checkpoint_sizing is not None and o.checkpoint_every:
                    spec_d["dlio"]["checkpoint_sizing"] = imp.checkpoint_sizing.record(n_acc)
            r.spec.clear()
            r.spec.update(spec_d)
            ready.update(o=o, ds=ds, tgt=tgt, total=dg.total_bytes)
            return tgt.root

        def body(r: Recorder) -> None:
            run_training(r, workload, ready["o"], ready["ds"], ready["tgt"], ready["total"],
                         ctx)

        return runner.run(rec, body, options, ctx, prepare=prepare)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Run the replay and return its (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result
