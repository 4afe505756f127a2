"""`iobench train WORKLOAD`: replay a training workload's reads with emulated accelerators,
report AU, samples/s and measured bytes/s, find how many accelerators the storage feeds,
and measure checkpoints written during training."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from iobench import cache as cache_mod
from iobench import dist, dlio
from iobench import target as target_mod
from iobench.cli import (
    DURATION,
    MAX_COUNT,
    SEED,
    SIZE,
    cache_option,
    cli,
    common_run_options,
    engine_option,
)
from iobench.datagen.spec import TrainingSpec, accelerator, compute_seconds, load_workload
from iobench.errors import SpecError, UsageError
from iobench.report.progress import ByteProgress
from iobench.results import Recorder
from iobench.runner import execute
from iobench.spec import to_dict
from iobench.train import findmax, replay
from iobench.train import metrics as m
from iobench.train import report as _report  # noqa: F401 - registers the `train` tables
from iobench.train.emulate import Dataset, ReplayConfig
from iobench.units import format_bytes

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
        return compute_seconds(spec.name, accel), "workloads/accelerators.yaml"
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
    bare = pm.get("au_pct_without_checkpoint_stalls")
    if o.au_excludes_stalls and bare is not None:
        # MLPerf Storage / DLIO: AU over the training blocks, checkpoints excluded
        au, au_pass = bare, bare >= spec.au_threshold_pct
        result.metrics.update({"au_pct_with_checkpoint_stalls": pm["au_pct"],
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
        "au_pct_per_epoch": [e["metrics"]["au_pct"] for e in result.phases
                             if e["name"].startswith(("epoch", "run ")) and
                             e["direction"] == "read"],
        "samples_per_s": pm["samples_per_s"], "gb_per_s": train_phase["gb_per_s"],
        "gib_per_s": train_phase["gib_per_s"], "bytes": train_phase["bytes"],
        "payload_bytes": pm["payload_bytes"], "samples": pm["samples"],
        "read_p50_us": (lat.get("p50") or 0) / 1e3, "read_p99_us": (lat.get("p99") or 0) / 1e3,
        "data_wait_p50_ms": (wait.get("p50") or 0) / 1e6,
        "data_wait_p99_ms": (wait.get("p99") or 0) / 1e6,
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
                 tgt: target_mod.Target, data_bytes: int, json_out: bool) -> None:
    """The body run under `execute`: runs (or the find-max search), phases, metrics."""
    stop = threading.Event()
    w = dist.world()
    write_ckpt: Callable[[int], int] | None = None
    if o.checkpoint_every:
        write_ckpt = replay.checkpoint_writer(dist.root_first(lambda: tgt.subdir("train"), w),
                                              o.checkpoint_size, o.cache == "direct",
                                              spec.seed)
    thr = spec.au_threshold_pct
    per_run = ds.table.total_bytes * o.epochs
    n_runs = (o.runs + 1) if o.runs is not None else 1
    with ByteProgress("train", None if o.find_max else per_run * n_runs,
                      enabled=False if json_out else None) as prog:

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
                result.cache = cache_mod.verdict(
                    o.cache, run.cache_methods[0] if run.cache_methods else "none",
                    data_bytes, reads=True,
                    rereads=o.cache == "allow" and (epochs > 1 or o.runs is not None))
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
            "checkpoint_stall_s_mean": ck["stall_s_mean"],
            "checkpoint_stall_s_max": ck["stall_s_max"],
            "checkpoint_write_gb_per_s": result.phases[-1]["gb_per_s"],
            "au_pct_without_checkpoint_stalls": win["au_pct_without_checkpoint_stalls"],
            "in_window_gb_per_s": win["in_window"]["gb_per_s"],
            "out_of_window_gb_per_s": win["out_of_window"]["gb_per_s"],
            "in_window_read_p99_us": win["in_window"]["p99_us"],
            "out_of_window_read_p99_us": win["out_of_window"]["p99_us"],
        })
    if o.engine == "fio":
        _raw_fio(result, ds, o, accelerators, tgt)


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
             tgt: target_mod.Target) -> None:
    """The same files read by fio, each whole and sequentially: the storage's raw
    capability, beside what the training replay got out of it. Under MPI each rank reads
    its share of the files with its accelerators' threads; the ranks' phases are merged."""
    from iobench.engines import fio
    from iobench.results import make_phase

    w = dist.world()
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
        p["metrics"]["block_size"] = bs
        p["metrics"]["fraction_of_files_read"] = p["bytes"] / sum(sizes) if sum(sizes) else 0
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


@cli.command("train")
@click.argument("workload", required=False)
@common_run_options
@engine_option
@click.option("--accelerator", default="h100", show_default=True,
              help="Accelerator type from workloads/accelerators.yaml (a100, h100, b200).")
@click.option("--accelerators", type=click.IntRange(max=2**20), default=None,
              help="Emulated accelerators [default: 1]; with --find-max, where the search "
                   "starts.")
@click.option("--epochs", type=click.IntRange(max=MAX_COUNT), default=None,
              help="Epochs per run [default: the spec's].")
@cache_option("drop")
@click.option("--read-threads", type=click.IntRange(max=1024), default=None,
              help="Reader threads per accelerator [default: the spec's read_threads].")
@click.option("--prefetch", type=click.IntRange(max=1024), default=2, show_default=True,
              help="Batches read ahead per accelerator (bounded prefetch queue).")
@click.option("--decode/--no-decode", default=False, show_default=True,
              help="Also parse each sample as a framework would (np.load, TFRecord CRCs).")
@click.option("--runs", type=click.IntRange(max=1000), default=None,
              help="One warm-up run plus RUNS measured runs (MLPerf: 5) [default: one run].")
@click.option("--seed", type=SEED, default=None,
              help="Shuffle seed [default: the spec's seed].")
@click.option("--find-max", is_flag=True,
              help="Search for the most accelerators that still meet the AU threshold.")
@click.option("--probe-steps", type=click.IntRange(max=MAX_COUNT), default=50, show_default=True,
              help="Steps per --find-max probe run (the confirming run is full length).")
@click.option("--compute-time", type=DURATION, default=None,
              help="Compute per step, overriding accelerators.yaml (0 = data path alone).")
@click.option("--block-size", type=SIZE, default="4MiB", show_default=True,
              help="Largest single read; a bigger sample takes several reads.")
@click.option("--max-steps", type=click.IntRange(max=MAX_COUNT), default=0, show_default=True,
              help="Cut every epoch to this many steps (0 = whole epochs).")
@click.option("--checkpoint-every", type=click.IntRange(max=MAX_COUNT), default=None,
              help="Write a checkpoint every STEPS steps during training.")
@click.option("--checkpoint-size", type=SIZE, default=None,
              help="Size of each checkpoint written during training, e.g. 10GiB.")
@click.option("--checkpoint-mode", type=click.Choice(["blocking", "async"]),
              default="blocking", show_default=True,
              help="blocking: accelerators wait for the write; async: written in the "
                   "background while training goes on.")
@click.option("--read-rate-limit", type=SIZE, default=None, hidden=True,
              help="Throttle all reads together to this many bytes/s (rehearsals, tests).")
@click.option("--dlio-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run the workload of a DLIO / MLPerf Storage YAML (WORKLOAD, if given, "
                   "names it); options given here win over the config's values.")
@click.option("--data-folder", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="With --dlio-config: replay the data set in this DLIO data folder (the "
                   "config's dataset.data_folder, holding train/), as DLIO or iobench "
                   "--layout dlio wrote it; no iobench manifest needed.")
def train_cmd(workload: str | None, target: Path, json_out: bool, results_dir: Path, force: bool,
              engine: str, accelerator: str, accelerators: int | None, epochs: int | None,
              cache: str, read_threads: int | None, prefetch: int, decode: bool,
              runs: int | None, seed: int | None, find_max: bool, probe_steps: int,
              compute_time: float | None, block_size: int, max_steps: int,
              checkpoint_every: int | None, checkpoint_size: int | None,
              checkpoint_mode: str, read_rate_limit: int | None,
              dlio_config: Path | None, data_folder: Path | None) -> None:
    """Replay the reads of training WORKLOAD (preset or YAML) on its data set under
    TARGET/datagen/, with emulated accelerators: AU, samples/s, GB/s, latency."""
    workload = dlio.workload_or_config(workload, dlio_config, "WORKLOAD")
    if data_folder is not None and dlio_config is None:
        raise UsageError(f"--data-folder {data_folder}: only with --dlio-config (the config "
                         "says the format and file count DLIO wrote)")
    if data_folder is not None and not data_folder.is_dir():
        raise UsageError(f"--data-folder {data_folder}: not a directory; give the DLIO "
                         "data folder (the one holding train/)")
    imp = dlio.load(dlio_config, "train", workload or None, find_max=find_max) \
        if dlio_config else None
    ckpt_epochs = 0
    if imp is not None:  # the config's values where the command line left the default
        compute_time = imp.pick("compute_time", compute_time)
        max_steps = imp.pick("max_steps", max_steps)
        prefetch = imp.pick("prefetch", prefetch)
        cache = imp.pick("cache", cache)
        block_size = imp.pick("block_size", block_size)
        checkpoint_size = imp.pick("checkpoint_size", checkpoint_size)
        checkpoint_every = imp.pick("checkpoint_every", checkpoint_every)
        if checkpoint_every is None and checkpoint_size is not None:
            ckpt_epochs = imp.checkpoint_every_epochs  # in steps once the data set is open
            checkpoint_every = 1 if ckpt_epochs else None
        imp.announce()
    for name, v in (("accelerators", accelerators), ("epochs", epochs),
                    ("read-threads", read_threads), ("prefetch", prefetch), ("runs", runs),
                    ("probe-steps", probe_steps), ("checkpoint-every", checkpoint_every)):
        _positive(name, v)
    if max_steps < 0:
        raise UsageError(f"--max-steps: {max_steps} must be >= 0 (0 = whole epochs)")
    if (checkpoint_every is None) != (checkpoint_size is None):
        given = "--checkpoint-every" if checkpoint_every is not None else "--checkpoint-size"
        raise UsageError(f"{given} needs the other: give both --checkpoint-every STEPS and "
                         "--checkpoint-size SIZE")
    if find_max and runs is not None:
        raise UsageError("--find-max and --runs: find the count first, then rerun with "
                         "--accelerators N --runs R")
    if find_max and checkpoint_every is not None:
        raise UsageError("--find-max and --checkpoint-every: find the count first, then "
                         "rerun with --accelerators N and the checkpoint options")
    if cache == "direct" and block_size % 4096:
        raise UsageError(f"--block-size {block_size}: --cache direct (O_DIRECT) needs a "
                         "multiple of 4096 bytes, e.g. 4MiB")
    spec = imp.spec if imp is not None and imp.spec is not None else load_workload(workload)
    compute_s, source = _compute(spec, accelerator, compute_time)
    if imp is not None and "compute_time" in imp.options and not dlio.given("compute_time"):
        source = "DLIO train.computation_time"
    if find_max and compute_s <= 0:
        raise UsageError("--find-max needs compute time per step > 0 (AU is compute / wall); "
                         "drop --compute-time 0")
    if engine == "fio":
        from iobench.engines import fio

        fio.fio_binary()  # not installed: one line with the install hint, before any run
    w = dist.world()

    def prepare() -> target_mod.Target:
        if not target.exists():
            raise UsageError(f"--target {target}: does not exist; generate the data set "
                             f"first: iobench datagen {spec.name} --target {target}")
        return target_mod.prepare(target, force=force)

    tgt = dist.root_first(prepare, w)
    from iobench.train import dataset as ds_mod

    def open_dataset() -> tuple[Any, Dataset]:
        if data_folder is not None:
            assert imp is not None
            assert imp.dlio_format is not None
            dg, ds = ds_mod.open_dlio_folder(data_folder, spec, imp.dlio_format)
        else:
            dg, ds = ds_mod.open_for_training(tgt.root, spec)
        if w.size > 1:  # the sample table travels in `ds`: the shard indexes need not
            dg = dataclasses.replace(dg, _index={})
        return dg, ds

    # rank 0 checks the manifest and indexes every shard once; the other ranks receive the
    # sample table instead of reading every shard's index again (and every rank derives
    # the same per-epoch shuffle from the seed)
    dg, ds = dist.root_first_value(open_dataset, w)
    if decode:
        ds.decode = ds_mod.decoder(dg)
        ds.stream_decode = ds_mod.stream_decoder(dg)
    n_acc = accelerators or 1
    _check_steps(ds, spec, n_acc if not find_max else 1)
    if ckpt_epochs:  # a DLIO config's checkpoint every N epochs: N x this run's epoch steps
        from iobench.train.plan import steps_per_epoch

        per_epoch = steps_per_epoch(ds.table.count, n_acc, spec.batch_size)
        checkpoint_every = ckpt_epochs * (min(per_epoch, max_steps) if max_steps else per_epoch)
    if (imp is not None and imp.checkpoint_sizing is not None and checkpoint_size is not None
            and not dlio.given("checkpoint_size")):
        # DLIO 2.0.0 sizing: under type all_ranks every accelerator (DLIO rank) writes
        checkpoint_size = imp.checkpoint_sizing.total_bytes(n_acc)
    if checkpoint_size is not None:
        tgt.check_space(2 * checkpoint_size, f"checkpoints of {format_bytes(checkpoint_size)} "
                        "during training (two kept)")
    o = TrainOptions(
        accelerator=accelerator.lower(), accelerators=n_acc, compute_s=compute_s,
        compute_source=source, epochs=epochs or spec.epochs, engine=engine, cache=cache,
        read_threads=read_threads or spec.read_threads, prefetch=prefetch, decode=decode,
        runs=runs, seed=spec.seed if seed is None else seed, block_size=block_size,
        max_steps=max_steps, find_max=find_max, probe_steps=probe_steps,
        checkpoint_every=checkpoint_every or 0, checkpoint_size=checkpoint_size or 0,
        checkpoint_mode=checkpoint_mode, read_rate_limit=float(read_rate_limit or 0),
        au_excludes_stalls=imp is not None)
    spec_d = {**to_dict(spec), "options": dataclasses.asdict(o),
              "dataset": {"directory": str(dg.root), "files": len(ds.files),
                          "samples": ds.table.count, "bytes": dg.total_bytes,
                          "sample_bytes": ds.table.total_bytes}}
    if imp is not None:
        spec_d["dlio"] = imp.record()  # where the workload came from, key by key
        if imp.checkpoint_sizing is not None and o.checkpoint_every:
            spec_d["dlio"]["checkpoint_sizing"] = imp.checkpoint_sizing.record(n_acc)
    result = Recorder(kind="train", name=spec.name, spec=spec_d, engine=engine)
    if imp is not None:
        imp.announce(result.warnings)

    execute(result, lambda r: run_training(r, spec, o, ds, tgt, dg.total_bytes, json_out),
            results_dir=results_dir, json_out=json_out, target=tgt.root)
