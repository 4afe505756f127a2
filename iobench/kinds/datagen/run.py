"""Write a training workload's synthetic data set with parallel worker processes,
resumably (atomic manifest), and verify it against its checksums.

`run(spec, options, ctx)` is the whole `iobench datagen` command without the command
line: the Python API and suites call it; `what_if(spec, options)` is --what-if (the plan,
no data written). Imports neither click nor rich: progress goes to `ctx.progress`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from iobench import dist, interrupt, procpool, runner, safepath
from iobench import target as target_mod
from iobench.content import Content
from iobench.errors import RunFailed, SpecError, TargetError, UsageError
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.datagen import plan as plan_mod
from iobench.kinds.datagen import writer
from iobench.kinds.datagen.reader import DATAGEN_DIR, list_datasets
from iobench.kinds.datagen.spec import Spec
from iobench.results import Recorder, Result, make_phase, utc_now
from iobench.spec import to_dict
from iobench.units import format_bytes
from iobench.workload import TrainingSpec, accelerator, load_workload, validate

PROBE_BYTES = 64 << 20
MIN_SPEED_BYTES = 256 << 20  # smallest past run whose speed --what-if will reuse
_SAVE_EVERY_S = 1.0  # manifest rewrite interval: bounded cost for 500k-file data sets


def host_ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# --- sizing ----------------------------------------------------------------------------
def sized_spec(
    spec: TrainingSpec, files: int | None, dataset_size: int | None, auto: bool,
    host_ram: int, accelerators: int,
) -> tuple[TrainingSpec, tuple[str, ...]]:
    given = [n for n, v in (("--files", files), ("--dataset-size", dataset_size),
                            ("--auto-size", auto or None)) if v is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)}: give only one way to size the data set")
    reasons: tuple[str, ...] = ()
    if files is not None:
        if files <= 0:
            raise UsageError(f"--files: {files} must be >= 1")
        n = files
    elif dataset_size is not None:
        n = plan_mod.files_for_size(spec, dataset_size)
        got, _ = plan_mod.payload_bytes(spec, n)
        reasons = (f"--dataset-size {format_bytes(dataset_size)}: the fewest files whose "
                   f"samples hold it -> {n} files, {format_bytes(got)} of samples",)
    elif auto:
        n, reasons = plan_mod.auto_size(spec, host_ram, accelerators)
    else:
        n = spec.files
        reasons = (f"{n} files from the workload spec",)
    return dataclasses.replace(spec, files=n), reasons


# --- write speed for --what-if ---------------------------------------------------------
def last_write_speed(target: Path) -> tuple[float, str] | None:
    """The most recent datagen speed recorded in this target's manifests."""
    best: tuple[str, float, str] | None = None
    for name in list_datasets(target):
        m = writer.load_manifest(target / DATAGEN_DIR / name)
        run = (m or {}).get("last_run") or {}
        # a small run measures start-up, not the storage: only trust >= MIN_SPEED_BYTES
        if (run.get("bytes_per_s") and run.get("bytes", 0) >= MIN_SPEED_BYTES
                and (best is None or run["utc"] > best[0])):
            best = (run["utc"], float(run["bytes_per_s"]),
                    f"last datagen on this target ({name}, {run['utc'][:19]}Z)")
    return (best[1], best[2]) if best else None


def probe_write_speed(directory: Path, nbytes: int = PROBE_BYTES) -> float:
    """Write `nbytes` of random content + fsync into the target and time it."""
    path = directory / f".probe{writer.TMP_MARK}"
    buf_c = Content("random", 0, os.getpid())
    import numpy as np

    buf = np.empty(writer.CHUNK_BYTES, dtype=np.uint8)
    t0 = time.perf_counter()
    fd = safepath.open_write(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done = 0
        while done < nbytes:
            n = min(buf.size, nbytes - done)
            buf_c.fill(buf[:n], done)
            done += os.write(fd, memoryview(buf[:n]))  # type: ignore[arg-type]
        os.fsync(fd)
    finally:
        os.close(fd)
        safepath.remove(path)
    return nbytes / (time.perf_counter() - t0)


def plan_info(spec: TrainingSpec, p: plan_mod.Plan, tgt: target_mod.Target, directory: Path,
              accelerators: int, accel: str, host_ram: int) -> dict[str, Any]:
    """--what-if: the plan, and the time it takes at the measured write speed."""
    speed = last_write_speed(tgt.root)
    if speed is None:
        speed = (probe_write_speed(directory),
                 f"a {format_bytes(PROBE_BYTES)} write + fsync probe just now")
    bps, source = speed
    free = tgt.free_bytes()
    return {
        "workload": spec.name, "format": spec.format, "directory": str(directory),
        "files": p.files, "samples": p.samples,
        "record_bytes_mean": spec.mean_record_bytes,
        "record_bytes_stdev": spec.record_size_stdev, "batch_size": spec.batch_size,
        "payload_bytes": p.payload_bytes, "bytes": p.est_bytes, "bytes_exact": p.exact,
        "steps_per_epoch": p.steps_per_epoch(accelerators), "accelerators": accelerators,
        "accelerator": accel, "host_ram_bytes": host_ram,
        "dataset_to_ram": p.est_bytes / host_ram if host_ram else None,
        "write_bytes_per_s": bps, "write_speed_source": source,
        "seconds_estimate": p.est_bytes / bps if bps else None,
        "free_bytes": free, "fits": p.est_bytes <= free, "sizing": list(p.reasons),
    }


# --- generation ------------------------------------------------------------------------
def _init_worker(slot: int, counter: Any, parent_pid: int | None = None) -> None:
    # Ctrl-C and SIGTERM go to the whole process group: only the parent handles them and
    # stops the workers (procpool ignores both in its workers and kills them by PID).
    interrupt.die_with_parent(parent_pid)  # a SIGKILLed parent leaves no worker behind
    writer.set_progress_counter(counter, slot, defer_sync=True)


def _init_verify_worker(slot: int, parent_pid: int | None = None) -> None:
    interrupt.die_with_parent(parent_pid)


def _clean_temps(directory: Path) -> int:
    n = 0
    for p in [*directory.glob(f".*{writer.TMP_MARK}"),
              *directory.glob(f"train/.*{writer.TMP_MARK}")]:  # the dlio layout's folder
        safepath.remove(p)
        n += 1
    return n


def _remove_entries(directory: Path, names: list[str]) -> None:
    for name in names:  # manifest names: checked plain names (writer.check_entries)
        safepath.remove(directory / safepath.check_name(name, f"{directory} manifest entry"))


RANK_MANIFEST = ".manifest-rank{rank}.json"


def _rank_manifest(directory: Path, rank: int) -> Path:
    """Under MPI, ranks other than 0 record the shards they completed here (atomically);
    rank 0 folds them into the one manifest at the end, or on the next run after a kill."""
    return directory / RANK_MANIFEST.format(rank=rank)


def _fold_rank_manifests(directory: Path, m: dict[str, Any]) -> int:
    n = 0
    for p in sorted(directory.glob(RANK_MANIFEST.format(rank="*"))):
        try:
            entries = json.loads(p.read_text())
        except (OSError, ValueError):
            entries = {}  # a torn file cannot be: it was written atomically; be safe anyway
        writer.check_entries(p, entries)
        for name, e in entries.items():
            if e.get("complete"):
                m["entries"][name] = e
                n += 1
        safepath.remove(p)
    return n


def prepare_manifest(spec: TrainingSpec, content: str, directory: Path,
                     force: bool) -> tuple[dict[str, Any], list[int], list[str]]:
    """Load or start the manifest; return it, the shards still to write, and notes."""
    notes: list[str] = []
    m = writer.load_manifest(directory)
    if m is not None:
        _fold_rank_manifests(directory, m)
    # a manifest from before the layout field holds iobench's layout
    old_id = {"layout": "iobench", **(m.get("identity") or {})} if m is not None else None
    if m is not None and (old_id != spec.identity() or m.get("content") != content):
        if not force:
            raise TargetError(
                f"{directory}: holds a {m.get('workload')} data set generated with other "
                f"parameters (format/record sizes/seed/content differ: {m.get('identity')}, "
                f"content {m.get('content')}); pass --force to replace it, or use another "
                "--target")
        _remove_entries(directory, list(m.get("entries", {})))
        notes.append(f"replaced a data set with other parameters ({len(m['entries'])} files)")
        m = None
    if m is None:
        m = writer.new_manifest(spec, content)
    if _clean_temps(directory):
        notes.append("removed temp files of an interrupted run")
    entries: dict[str, Any] = m["entries"]
    # shards beyond the requested count (a smaller --files than last time) go away, and
    # so do files of another name (the dlio layout's names hold the file count)
    planned = {n for s in range(spec.files) for n in plan_mod.shard_outputs(spec, s)}
    extra = [n for n, e in entries.items() if e.get("shard", 0) >= spec.files
             or n not in planned]
    if extra:
        beyond = sum(1 for n in extra if entries[n].get("shard", 0) >= spec.files)
        _remove_entries(directory, extra)
        for n in extra:
            del entries[n]
        notes.append(f"removed {beyond} files beyond --files {spec.files}" if beyond == len(extra)
                     else f"removed {len(extra)} files no longer in the plan (--files "
                          f"{spec.files}; the dlio layout's names hold the file count)")
    todo: list[int] = []
    for shard in range(spec.files):
        names = plan_mod.shard_outputs(spec, shard)
        done = True
        for n in names:
            e = entries.get(n)
            p = directory / n
            if not (e and e.get("complete") and p.is_file() and p.stat().st_size == e["size"]):
                done = False
        if not done:
            todo.append(shard)
            for n in names:
                entries[n] = {"name": n, "shard": shard, "complete": False}
    m["files_planned"] = spec.files
    m["spec"] = to_dict(spec)
    return m, todo, notes


LPT_MAX_SHARDS = 50_000  # beyond this, sizing every shard costs more than the tail saves


def largest_first(spec: TrainingSpec, shards: list[int]) -> list[int]:
    """The shards biggest first (longest-processing-time order). The pool hands them out
    one at a time, so with variable-size files in plan order the last big file runs alone
    on one worker while the others idle: 14% of the time of a 7-file npz data set on 2
    workers (5% at 24 files), which costs throughput wherever the workers, not the
    device, set the pace (a busy host). Biggest first leaves only small files for the
    end (within 0.3% of an even split for those two)."""
    if spec.record_size_stdev == 0 or not 2 < len(shards) <= LPT_MAX_SHARDS:
        return shards
    size = {s: int(writer.record_sizes(spec, s).sum()) for s in shards}
    return sorted(shards, key=lambda s: (-size[s], s))


def generate(result: Recorder, spec: TrainingSpec, content: str, directory: Path,
             tgt: target_mod.Target, jobs: int, force: bool, ctx: Ctx) -> None:
    """Write the shards still to do. Under MPI, rank 0 owns the manifest and the plan; each
    rank writes its share of the shards (iobench.dist.split) with its own worker pool."""
    w = ctx.world

    def plan_on_root() -> tuple[dict[str, Any], list[int], list[str]]:
        m, todo, notes = prepare_manifest(spec, content, directory, force)
        p = plan_mod.make_plan(spec)
        need = p.est_bytes * len(todo) // max(1, spec.files)
        tgt.check_space(need, f"datagen {spec.name} ({len(todo)} files)")
        writer.save_manifest(directory, m)
        return m, todo, notes

    m, all_todo, notes = dist.root_first_value(plan_on_root, w)
    for n in notes:
        result.warnings.append(n)
    todo = largest_first(spec, [all_todo[i] for i in dist.split(len(all_todo), w)])
    if not w.is_root:  # this rank's completed entries, folded into rank 0's manifest later
        m = {"entries": {}}
    p = plan_mod.make_plan(spec)
    need = p.est_bytes * len(todo) // max(1, spec.files)
    skipped = spec.files - len(all_todo)
    failure: str | None = None
    nproc = max(1, min(jobs, len(todo) or 1))
    counter = procpool.counter(nproc)
    written = 0
    worker_rss = 0
    pool = (procpool.ProcPool(nproc, plan_mod.generate_shard,
                              [writer.ShardJob(spec, s, directory, content) for s in todo],
                              _init_worker, (counter, os.getpid()))
            if todo else None)
    # the clock starts once the workers exist (as fio's runtime starts after its jobs
    # forked) and stops when the last file's fsync returned
    wall0 = time.time_ns()
    t0 = time.perf_counter()
    last_save = time.monotonic()
    # fsyncs run here, in threads, so workers keep generating while the device flushes;
    # a file is marked complete only once its fsync (and its directory's) returned
    syncer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="datagen-fsync")
    pending: list[tuple[Future[None], int, list[writer.FileRecord]]] = []

    def save(man: dict[str, Any]) -> None:
        if w.is_root:
            writer.save_manifest(directory, man)
        else:
            safepath.write_file(_rank_manifest(directory, w.rank),
                         json.dumps({k: e for k, e in man["entries"].items()
                                     if e.get("complete")}))

    def settle(wait: bool) -> None:
        nonlocal written
        keep = []
        for fut, shard, recs in pending:
            if not (wait or fut.done()):
                keep.append((fut, shard, recs))
                continue
            fut.result()  # an fsync error (EIO, ENOSPC) surfaces here
            for r in recs:
                m["entries"][r.name] = writer.entry(r, shard)
            written += 1
        pending[:] = keep

    try:
        with ctx.progress(f"datagen {spec.name}", need) as bar:
            if pool is not None:
                seen = 0
                for got in pool.results(timeout=0.2):
                    if got is not None:
                        shard, recs, rss = got
                        worker_rss = max(worker_rss, rss)
                        names = [r.name for r in recs]
                        pending.append((syncer.submit(writer.sync_files, directory, names),
                                        shard, recs))
                    settle(wait=False)
                    bar.set_label(f"datagen {spec.name} {written + skipped}/{spec.files} files")
                    if time.monotonic() - last_save >= _SAVE_EVERY_S:
                        save(m)
                        last_save = time.monotonic()
                    now = sum(counter)
                    bar.advance(now - seen)
                    seen = now
                settle(wait=True)
    except OSError as e:
        failure = f"datagen {spec.name}: writing in {directory} failed: {e}"
        raise RunFailed(failure) from None
    finally:
        with interrupt.shield():  # a second Ctrl-C cannot cut the workers' shutdown short
            if pool is not None:
                pool.stop()  # bounded: kills and reaps by PID, no shared lock to wait on
            syncer.shutdown(wait=True, cancel_futures=True)
            interrupt.take()  # already stopping: the first signal is the one reported
        with contextlib.suppress(BaseException):
            pending[:] = [x for x in pending if x[0].done() and not x[0].cancelled()
                          and x[0].exception() is None]
            settle(wait=True)  # files whose fsync finished count; the rest are redone
        seconds = time.perf_counter() - t0
        nbytes = int(sum(counter))
        save(m)
        if w.size > 1:  # one manifest and one phase for the whole world
            def part() -> tuple[int, int, int, int, int]:
                if failure:  # the other ranks must learn of it, not wait for this rank
                    raise RunFailed(failure)
                return nbytes, written, worker_rss, wall0, time.time_ns()

            parts = dist.collective(part, w, "datagen")
            if w.is_root:
                _fold_rank_manifests(directory, m)
            nbytes = sum(x[0] for x in parts)
            written = sum(x[1] for x in parts)
            worker_rss = max(x[2] for x in parts)
            seconds = (max(x[4] for x in parts) - min(x[3] for x in parts)) / 1e9
            m = dist.root_first_value(lambda: m, w)
        bps = nbytes / seconds if seconds > 0 else 0.0
        complete = all(e.get("complete") for e in m["entries"].values())
        if all_todo and complete:
            m["last_run"] = {"utc": utc_now(), "bytes": nbytes, "seconds": seconds,
                             "bytes_per_s": bps, "jobs": jobs, "ranks": w.size}
        if w.is_root:
            writer.save_manifest(directory, m)
        total_bytes = sum(int(e.get("size", 0)) for e in m["entries"].values()
                          if e.get("complete"))
        data_bytes = sum(int(e.get("size", 0)) for e in m["entries"].values()
                         if e.get("complete") and e.get("role", "data") == "data")
        metrics = {
            "files": written, "bytes": nbytes, "gb_per_s": bps / 1e9,
            "files_skipped": skipped, "files_total": spec.files,
            "samples_total": spec.files * spec.samples_per_file,
            "dataset_bytes": total_bytes, "dataset_data_bytes": data_bytes,
            "complete": complete, "jobs": jobs,
            "worker_max_rss_bytes": worker_rss, "ranks": w.size,
        }
        result.add_phase(make_phase("datagen", nbytes=nbytes, seconds=seconds, ops=written,
                                    direction="write", metrics=metrics))
        result.metrics.update({k: metrics[k] for k in ("files", "bytes", "gb_per_s")})
        result.metrics.update(files_total=spec.files, dataset_bytes=total_bytes,
                              dataset_data_bytes=data_bytes, complete=complete,
                              worker_max_rss_bytes=worker_rss,
                              files_skipped=skipped, directory=str(directory))


def check_size(result: Recorder, dataset_size: int | None, auto_ram: int | None) -> None:
    """Hold the sizing promise against the bytes the manifest says were written (data
    files only, not index sidecars): --dataset-size never under the request, --auto-size
    never under 5 x RAM. A shortfall (which the sizing should make impossible) is a
    warning in the result, with the figures."""
    got = int(result.metrics.get("dataset_data_bytes", 0))
    if not result.metrics.get("complete"):
        return
    if dataset_size is not None:
        result.metrics["dataset_requested_bytes"] = dataset_size
        if got < dataset_size:
            result.warnings.append(
                f"--dataset-size: the data files hold {format_bytes(got)}, under the "
                f"{format_bytes(dataset_size)} asked for")
    if auto_ram:
        result.metrics["dataset_to_ram"] = got / auto_ram
        if got < plan_mod.RAM_MULTIPLE * auto_ram:
            result.warnings.append(
                f"--auto-size: the data files hold {format_bytes(got)} = "
                f"{got / auto_ram:.2f} x RAM, under the {plan_mod.RAM_MULTIPLE} x RAM rule")


# --- verification ----------------------------------------------------------------------
def _check_file(args: tuple[Path, int, int]) -> tuple[str, str | None, int]:
    path, size, crc = args
    try:
        got_size, got_crc = writer.file_crc32c(path)
    except FileNotFoundError:
        return path.name, "missing", 0
    except OSError as e:
        return path.name, f"unreadable ({e.strerror})", 0
    if got_size != size:
        return path.name, f"size {got_size} bytes, manifest says {size}", got_size
    if got_crc != crc:
        return path.name, f"checksum mismatch (crc32c {got_crc:08x}, manifest {crc:08x})", got_size
    return path.name, None, got_size


def run_verify(result: Recorder, spec_name: str, directory: Path, jobs: int,
               ctx: Ctx) -> None:
    m = writer.load_manifest(directory)
    if m is None:
        raise UsageError(f"{directory}: no data set manifest to verify; run iobench datagen "
                         f"{spec_name} first")
    entries = m["entries"]
    bad: list[tuple[str, str]] = []
    checks = []
    for name, e in sorted(entries.items()):
        if not e.get("complete"):
            bad.append((name, "incomplete (generation did not finish)"))
        else:
            checks.append((directory / name, int(e["size"]), int(e["crc32c"])))
    t0 = time.perf_counter()
    nbytes = 0
    # procpool: workers ignore the signals the runner turns into a partial result, and a
    # stop kills them by PID (bounded, whatever they were doing)
    pool = procpool.ProcPool(jobs, _check_file, checks, _init_verify_worker, (os.getpid(),))
    try:
        for got in pool.results(timeout=0.5):
            if got is not None:
                name, problem, n = got
                nbytes += n
                if problem:
                    bad.append((name, problem))
    finally:
        pool.stop()
    seconds = time.perf_counter() - t0
    result.add_phase(make_phase("verify", nbytes=nbytes, seconds=seconds, ops=len(checks),
                                direction="read",
                                metrics={"files": len(entries), "bad": len(bad)}))
    result.metrics.update(files_checked=len(entries), files_bad=len(bad), bytes=nbytes)
    if bad:
        for name, _ in bad:
            entries[name]["complete"] = False  # so the next datagen run rewrites them
        writer.save_manifest(directory, m)
        for name, problem in sorted(bad):
            _say(ctx, f"bad: {directory / name}: {problem}")
        shown = ", ".join(f"{n} ({p})" for n, p in sorted(bad)[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise RunFailed(f"verify: {len(bad)} of {len(entries)} files bad: {shown}{more}; "
                        f"re-run `iobench datagen {spec_name}` on this target to rewrite them")


# --- the run -----------------------------------------------------------------------------
def _say(ctx: Ctx, text: str) -> None:
    """A line on stderr for the person at the command line (rank 0); a library call,
    which has no ctx.on_result, stays quiet: what matters is in the Result."""
    if ctx.on_result is not None and ctx.world.is_root:
        print(text, file=sys.stderr, flush=True)


def _accel(name: str) -> Any:
    try:
        return accelerator(name)
    except SpecError:
        raise
    except OSError as e:
        raise SpecError(f"accelerators.yaml: cannot read it ({e})") from None


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A Spec made concrete: the training workload sized, the worker count, the RAM."""

    training: TrainingSpec
    reasons: tuple[str, ...]
    jobs: int
    host_ram: int
    dlio: Any = None  # iobench.dlio.Import when the workload came from --dlio-config


def resolve(spec: Spec) -> Resolved:
    """Load the workload (a preset, a YAML file or a DLIO config) and size its data set."""
    spec.validate()
    imp = None
    if spec.dlio_config is not None:
        from iobench import dlio  # only then: it reads Click's parameter sources

        imp = dlio.load(spec.dlio_config, "datagen", spec.workload or None)
    ts = imp.spec if imp is not None and imp.spec is not None else load_workload(
        spec.workload or "")
    if spec.seed is not None:
        ts = validate(dataclasses.replace(ts, seed=spec.seed), "--seed")
    if spec.layout is not None:
        ts = validate(dataclasses.replace(ts, layout=spec.layout), "--layout")  # type: ignore[arg-type]
    _accel(spec.accelerator)
    ram = spec.host_ram or host_ram_bytes()
    ts, reasons = sized_spec(ts, spec.files, spec.dataset_size, spec.auto_size, ram,
                             spec.accelerators)
    return Resolved(ts, reasons, spec.jobs or os.cpu_count() or 1, ram, imp)


def _directory(r: Resolved, options: RunOptions, ctx: Ctx,
               verify: bool) -> tuple[target_mod.Target, Path]:
    name = r.training.name

    def prepare_target() -> target_mod.Target:
        tgt = target_mod.prepare(options.target, force=options.force, wait=options.wait > 0)
        have = list_datasets(tgt.root)
        others = [x for x in have if x != name]
        # a second workload's data beside the first is refused once, when it is added
        if others and name not in have and not (options.force or verify):
            raise TargetError(
                f"--target {tgt.root}: already holds the {', '.join(others)} data set(s); "
                f"pass --force to add {name} beside them, or use another --target")
        return tgt

    tgt = dist.root_first(prepare_target, ctx.world)
    return tgt, dist.root_first(lambda: tgt.subdir(f"{DATAGEN_DIR}/{name}"), ctx.world)


def what_if(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> dict[str, Any]:
    """--what-if: files, bytes and the time at the measured write speed; writes no data
    (the target is prepared and a short write probe runs when no past run's speed is
    recorded there)."""
    ctx = ctx or default_ctx()
    r = resolve(spec)
    if r.dlio is not None:
        w = r.dlio.warning()
        if w is not None:
            _say(ctx, f"warning: {w}")
    with target_mod.locked():
        tgt, directory = _directory(r, options, ctx, spec.verify)
        return plan_info(r.training, plan_mod.make_plan(r.training, r.reasons), tgt,
                         directory, spec.accelerators, spec.accelerator, r.host_ram)


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    """Write (or --verify) the data set; the Outcome says how it ended."""
    ctx = ctx or default_ctx()
    r = resolve(spec)
    ts = r.training
    if r.dlio is not None:
        w = r.dlio.warning()
        if w is not None:
            _say(ctx, f"warning: {w}")
    if spec.auto_size and not ctx.json_out:
        _say(ctx, f"--auto-size: {ts.files} files; " + "; ".join(r.reasons))
    with target_mod.locked():
        spec_d = {**to_dict(ts), "content": spec.content, "jobs": r.jobs,
                  "verify": spec.verify}
        if r.dlio is not None:
            spec_d["dlio"] = r.dlio.record()  # where the workload came from, key by key
        rec = Recorder("datagen", ts.name, spec_d)
        if r.dlio is not None:
            r.dlio.announce(rec.warnings)
        ready: dict[str, Any] = {}  # what prepare() made, for the body

        def prepare(res: Recorder) -> Path:
            # after the provisional result exists: a rank killed here still leaves one
            tgt, directory = _directory(r, options, ctx, spec.verify)
            ready.update(tgt=tgt, directory=directory)
            return tgt.root

        def body(res: Recorder) -> None:
            tgt, directory = ready["tgt"], ready["directory"]
            if spec.verify:  # reading every file once is enough: rank 0 does it under MPI
                if ctx.world.is_root:
                    run_verify(res, ts.name, directory, r.jobs, ctx)
            else:
                generate(res, ts, spec.content, directory, tgt, r.jobs, options.force, ctx)
                check_size(res, spec.dataset_size, r.host_ram if spec.auto_size else None)

        return runner.run(rec, body, options, ctx, prepare=prepare)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Write (or verify) the data set and return its (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result
