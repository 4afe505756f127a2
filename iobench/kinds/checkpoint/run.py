"""Write and restore sharded training checkpoints, one process per rank, and turn the
measured duration into an optimal checkpoint interval.

`run(spec, options, ctx)` is the whole command without the command line: the Python API
and suites call it; `iobench checkpoint` is options -> Spec -> run -> render.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iobench import cache as cache_mod
from iobench import dist, runner, safepath, verify
from iobench import spec as spec_mod
from iobench import target as target_mod
from iobench.errors import RunFailed, UsageError
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.checkpoint import economics, layout
from iobench.kinds.checkpoint import model as model_mod
from iobench.kinds.checkpoint.model import ModelSpec
from iobench.kinds.checkpoint.plan import Plan, make_plan, plan_dict
from iobench.kinds.checkpoint.rankio import CHUNK, FileJob, RankJob
from iobench.kinds.checkpoint.spec import Spec
from iobench.results import Recorder, Result, make_phase
from iobench.stats import Histogram


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A Spec with its files read: the model (preset or DLIO config) and the plan."""

    model: ModelSpec
    plan: Plan
    spec_dict: dict[str, Any]
    dlio: Any = None  # iobench.dlio.DlioImport when --dlio-config


def load_spec(model: str, tp: int | None, pp: int | None, dp: int | None, zero: int | None,
              layout_name: str | None) -> ModelSpec:
    spec = model_mod.load(model)
    par = spec_mod.override(spec.parallelism, tp=tp, pp=pp, dp=dp, zero=zero)
    spec = dataclasses.replace(spec, parallelism=par,
                               layout=layout_name or spec.layout)  # type: ignore[arg-type]
    return model_mod.validate(spec)


def resolve(spec: Spec) -> Resolved:
    """Read the preset (or DLIO config) and plan the files; bad input is a UsageError or
    SpecError before anything is written."""
    spec.validate()
    imp = None
    if spec.dlio_config is not None:
        from iobench import dlio  # imports click: only for a DLIO config

        imp = dlio.load(spec.dlio_config, "checkpoint", spec.model or None)
        ms = model_mod.validate(dataclasses.replace(
            imp.model, parallelism=spec_mod.override(
                imp.model.parallelism, tp=spec.tp, pp=spec.pp, dp=spec.dp, zero=spec.zero),
            layout=spec.layout or imp.model.layout))
    else:
        ms = load_spec(spec.model, spec.tp, spec.pp, spec.dp, spec.zero, spec.layout)
    plan = make_plan(ms, spec.mode, spec.ranks, spec.scale)
    if spec.rank_shift and spec.rank_shift % len(plan.ranks) == 0:
        raise UsageError(f"--rank-shift {spec.rank_shift}: a multiple of the "
                         f"{len(plan.ranks)} ranks reads each rank's own files; give "
                         "1 .. ranks-1")
    pd = plan_dict(plan, spec.count if spec.write else 0, spec.keep)
    spec_dict: dict[str, Any] = {"model": ms.to_dict(), "plan": pd,
                                 "options": spec.options_dict()}
    if imp is not None:
        spec_dict["dlio"] = imp.record()  # where the model came from, key by key
    return Resolved(ms, plan, spec_dict, imp)


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None,
            resolved: Resolved | None = None) -> runner.Outcome:
    """Run the checkpoints; the Outcome says how it ended (the exit code a command gives)."""
    ctx = ctx or default_ctx()
    r = resolved or resolve(spec)
    w = ctx.world
    ms, plan = r.model, r.plan
    with target_mod.locked():
        rec = Recorder(kind="checkpoint", name=ms.name, spec=r.spec_dict, engine=spec.engine)
        if r.dlio is not None:
            r.dlio.announce(rec.warnings)
        ready: dict[str, Path] = {}  # what prepare() made, for the body

        def prepare(res: Recorder) -> Path:
            # after the provisional result exists: a rank killed here still leaves one
            tgt = dist.root_first(lambda: target_mod.prepare(
                options.target, force=options.force, wait=options.wait > 0), w)
            dist.root_first(lambda: tgt.subdir("checkpoint"), w)
            root = tgt.claim(f"checkpoint/{ms.name}")  # a checked plain name, below our own dir
            if spec.write:
                def fresh() -> None:  # an earlier run's checkpoints of this model: ours
                    safepath.rmtree(root)
                    safepath.makedirs(root)
                    if spec.space_check:
                        tgt.check_space(r.spec_dict["plan"]["peak_disk_bytes"],
                                        f"checkpoint {ms.name} ({spec.count} x "
                                        f"{plan.checkpoint_bytes} bytes"
                                        + (f", keeping {spec.keep}" if spec.keep else "")
                                        + ")")

                dist.root_first_value(fresh, w)  # rank 0's; the others wait for its word
                if spec.cache == "direct":
                    _probe_direct(root)
            ready["root"] = root
            return tgt.root

        return runner.run(rec, lambda res: _body(res, plan, spec, ready["root"], ctx),
                          options, ctx, prepare=prepare)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Run the checkpoints and return the (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result


# --- measuring -----------------------------------------------------------------------------
def _rank_rows(results: list[dict[str, Any]], plan_ranks: tuple[int, ...],
               op: str) -> list[dict[str, Any]]:
    rows = []
    for i, r in enumerate(results):
        dur = (r["end_ns"] - r["start_ns"]) / 1e9
        row: dict[str, Any] = {
            "rank": plan_ranks[i], "bytes": r["bytes"], "files": r["files"], "seconds": dur,
            "bytes_per_s": r["bytes"] / dur if dur > 0 else 0.0,
            "peak_rss_bytes": r.get("peak_rss_bytes"), "base_rss_bytes": r.get("base_rss_bytes"),
            "buffer_bytes": r.get("buffer_bytes"),
        }
        if op == "write":
            row["fsync_s"] = r["fsync_ns"] / 1e9
            row["stall_s"] = (r["stall_end_ns"] - r["start_ns"]) / 1e9
        else:
            row["source_rank"] = plan_ranks[r["source_rank"]] if r.get("source_rank") is not None \
                else plan_ranks[i]
        rows.append(row)
    return rows


def summarise(name: str, results: list[dict[str, Any]], plan_ranks: tuple[int, ...], op: str,
              engine: str, extra: dict[str, Any]) -> dict[str, Any]:
    """One phase from the ranks' results: duration = max over ranks, rank throughput = min
    over ranks (MLPerf's rules), aggregate = all bytes / (last end - first start)."""
    rows = _rank_rows(results, plan_ranks, op)
    hist = Histogram.merged(Histogram.from_dict(r["hist"]) for r in results)
    nbytes = sum(r["bytes"] for r in results)
    ops = sum(r["ops"] for r in results)
    duration = max(row["seconds"] for row in rows)
    span = (max(r["end_ns"] for r in results) - min(r["start_ns"] for r in results)) / 1e9
    busy = [row["bytes_per_s"] for row in rows if row["bytes"] > 0]
    metrics: dict[str, Any] = {
        "duration_max_s": duration,
        "rank_min_bytes_per_s": min(busy) if busy else 0.0,
        "aggregate_bytes_per_s": nbytes / span if span > 0 else 0.0,
        "span_s": span, "ranks": rows, **extra,
    }
    if op == "write":
        fs = Histogram.merged(Histogram.from_dict(r["fsync_hist"]) for r in results)
        metrics["fsync_max_s"] = max(row["fsync_s"] for row in rows)
        metrics["fsync_latency_ns"] = fs.summary() if fs.count else None
        metrics["stall_max_s"] = max(row["stall_s"] for row in rows)
    peaks = [row["peak_rss_bytes"] - (row["base_rss_bytes"] or 0) for row in rows
             if row.get("peak_rss_bytes")]
    if peaks:
        metrics["rank_peak_rss_growth_max_bytes"] = max(peaks)
    return make_phase(name, nbytes=nbytes, seconds=duration, ops=ops, latency=hist,
                      engine=engine, direction=op, metrics=metrics)


class Runner:
    """Runs the checkpoints of one invocation: writes, keep/delete, cache, restores."""

    def __init__(self, plan: Plan, spec: Spec, root: Path, result: Recorder, ctx: Ctx) -> None:
        self.plan = plan
        self.spec = spec
        self.root = root  # <target>/checkpoint/<model>/
        self.result = result
        self.ctx = ctx
        self.written: list[tuple[int, Path]] = []  # (step, step dir) kept on disk
        self.pool: Any = None

    def _pool(self, n: int) -> Any:
        from iobench.kinds.checkpoint.pool import RankPool

        if self.pool is not None and self.pool.n != n:
            self.pool.close()
            self.pool = None
        if self.pool is None:
            self.pool = RankPool(n)
        return self.pool

    def close(self, now: bool = False) -> None:
        if self.pool is not None:
            self.pool.close(now=now)
            self.pool = None

    def _run_ranks(self, op: str, jobs: list[RankJob], prog: Any) -> list[dict[str, Any]]:
        """Run the checkpoint ranks' jobs; under MPI each MPI rank runs its share of them
        as local rank processes and every MPI rank gets all results, in plan order."""
        w = self.ctx.world
        if w.size == 1:
            return self._pool(len(jobs)).run(op, jobs, prog)
        mine = [jobs[i] for i in dist.split(len(jobs), w)]

        def part() -> list[dict[str, Any]]:
            res = self._pool(len(mine)).run(op, mine, prog) if mine else []
            # monotonic clocks differ between hosts: report wall-clock times
            offset = time.time_ns() - time.monotonic_ns()
            for r in res:
                for key in [k for k in r if k.endswith("_end_ns") or k in ("start_ns",
                                                                           "end_ns")]:
                    if isinstance(r[key], int) and r[key] > 0:
                        r[key] += offset
            return res

        w.barrier()
        parts = dist.collective(part, w, f"checkpoint {op}")
        return [r for p in parts for r in p]

    def _on_root(self, fn: Callable[..., Any], *args: Any) -> None:
        """Shared-namespace changes (directories, manifests, `latest`) are rank 0's."""
        w = self.ctx.world
        if w.is_root:
            fn(*args)
        w.barrier()

    def _direct(self) -> bool:
        return self.spec.direct

    def _write_jobs(self, step_path: Path, seed: int) -> list[RankJob]:
        staging = self.spec.staging // CHUNK if self.spec.async_mode else 2
        return [RankJob(rank=r, seed=seed, direct=self._direct(), staging_chunks=max(2, staging),
                        files=tuple(FileJob(str(step_path / f.relpath), f.bytes, f.stream)
                                    for f in self.plan.files[r]))
                for r in self.plan.ranks]

    def _fresh_dir(self, path: Path) -> None:
        safepath.rmtree(path)
        safepath.makedirs(path)

    def _remove_step(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            safepath.rmtree(path)

    def _disk_full(self, results: list[dict[str, Any]], step_path: Path) -> None:
        full = [r["error"] for r in results if r.get("error") and r["error"]["kind"] == "enospc"]
        if not full:
            return
        first = full[0]
        written = sum(r.get("bytes", 0) for r in results)
        self._remove_step(step_path)
        raise RunFailed(
            f"disk full: {first['path']}: no space left after {first['written']} of "
            f"{first['size']} bytes ({written} of the checkpoint's "
            f"{self.plan.checkpoint_bytes} bytes written by {len(results)} ranks); the "
            f"partial checkpoint {step_path.name} was removed; free space, or use --scale, "
            "--mode subset or --keep")

    @staticmethod
    def _errors(results: list[dict[str, Any]], op: str) -> None:
        for r in results:
            e = r.get("error")
            if not e:
                continue
            if e["kind"] == "usage":
                raise UsageError(e["message"])
            raise RunFailed(f"rank {r.get('rank')} failed during {op}: {e['message']}")

    # -- writing --
    def write_all(self) -> None:
        p = self.plan
        for i in range(1, self.spec.count + 1):
            step = i
            step_path = self.root / layout.step_dir(p.layout, step)

            self._on_root(self._fresh_dir, step_path)
            seed = self.spec.seed * 1_000_003 + step
            if self.spec.engine == "fio":
                from iobench.kinds.checkpoint import fio_engine

                phase = fio_engine.write(p, step_path, self._direct(), i, step)
                self.result.add_phase(phase)
            else:
                with self.ctx.progress(f"checkpoint {i}/{self.spec.count}",
                                       p.checkpoint_bytes) as prog:
                    results = self._run_ranks("write", self._write_jobs(step_path, seed), prog)
                self._disk_full(results, step_path)
                self._errors(results, "write")
                phase = summarise(f"write-{i}", results, p.ranks, "write", "native",
                                  {"checkpoint": i, "step": step, "path": str(step_path),
                                   "async": self.spec.async_mode})
                self.result.add_phase(phase)
                crcs: dict[str, list[int]] = {}
                for r in results:
                    for path, lst in r["crc32c"].items():
                        crcs[Path(path).name] = lst
                files = [f for r in p.ranks for f in p.files[r]]
                self._on_root(_untimed(layout.write_manifest), step_path, p.layout, {
                    "model": p.spec.name, "layout": p.layout, "step": step, "seed": seed,
                    "content": "random", "chunk_bytes": CHUNK, "ranks": list(p.ranks),
                    "mode": p.mode, "scale": p.scale,
                    "parallelism": dataclasses.asdict(p.spec.parallelism)}, files, crcs)
            if p.layout == "deepspeed":
                # DeepSpeed's tag file, written after every rank saved (as rank 0 does)
                self._on_root(_untimed(safepath.write_file), self.root / "latest",
                              f"global_step{step}")
            self.written.append((step, step_path))
            if self.spec.keep and len(self.written) > self.spec.keep:
                old_step, old = self.written.pop(0)
                self._on_root(self._remove_step, old)

    # -- reading --
    def discover(self) -> list[tuple[int, Path]]:
        """Existing complete checkpoints of this model (for --no-write), oldest first."""
        found = []
        for d in self.root.iterdir() if self.root.is_dir() else []:
            if d.is_dir() and (d / layout.manifest_name(self.plan.layout)).exists():
                with verify.untimed():  # bookkeeping, not a measured byte
                    doc = layout.read_manifest(d, self.plan.layout)
                found.append((int(doc["step"]), d))
        if not found:
            raise UsageError(
                f"{self.root}: no {self.plan.layout} checkpoint of {self.plan.spec.name} to "
                "read; write one first (drop --no-write) or give the same --layout")
        found.sort()
        return found[-self.spec.count:]

    def _read_jobs(self, step_path: Path) -> tuple[list[RankJob], list[Path], tuple[int, ...]]:
        with verify.untimed():  # bookkeeping, not a measured byte
            doc = layout.read_manifest(step_path, self.plan.layout)
        ranks = tuple(int(r) for r in doc["ranks"])
        by_rank: dict[int, list[FileJob]] = {r: [] for r in ranks}
        paths = []
        for f, crcs in layout.manifest_files(doc):
            by_rank.setdefault(f.rank, []).append(
                FileJob(str(step_path / f.relpath), f.bytes, f.stream, tuple(crcs)))
            paths.append(step_path / f.relpath)
        chunk = int(doc.get("chunk_bytes", CHUNK))
        n = len(ranks)
        jobs = []
        for i, r in enumerate(ranks):
            src = (i + self.spec.rank_shift) % n
            jobs.append(RankJob(rank=r, seed=int(doc["seed"]), content=doc.get("content", "random"),
                                direct=self._direct(), chunk=chunk, source_rank=src,
                                files=tuple(by_rank[ranks[src]])))
        return jobs, paths, ranks

    def read_all(self) -> None:
        targets = self.written if self.spec.write else self.discover()
        if self.spec.engine == "fio":
            from iobench.kinds.checkpoint import fio_engine

            files = [f for _, d in targets for f in sorted(d.glob("fio_rank*.dat"))]
            method = cache_mod.prepare(self.spec.cache, files)
            self.result.cache = cache_mod.verdict(self.spec.cache, method,
                                                  sum(f.stat().st_size for f in files))
            for i, (step, d) in enumerate(targets, 1):
                self.result.add_phase(fio_engine.read(self.plan, d, self._direct(), i, step,
                                                      self.spec.rank_shift))
            return
        prepared = [(step, d, *self._read_jobs(d)) for step, d in targets]
        all_paths = [p for *_, paths, _r in prepared for p in paths]
        data = sum(p.stat().st_size for p in all_paths if p.exists())
        method = cache_mod.prepare(self.spec.cache, all_paths)
        self.result.cache = cache_mod.verdict(self.spec.cache, method, data)
        bad: list[dict[str, Any]] = []
        for i, (step, d, jobs, _paths, ranks) in enumerate(prepared, 1):
            total = sum(f.bytes for j in jobs for f in j.files)
            with self.ctx.progress(f"restore {i}/{len(prepared)}", total) as prog:
                results = self._run_ranks("read", jobs, prog)
            self._errors(results, "read")
            mism = [m for r in results for m in r["mismatches"]]
            phase = summarise(f"read-{i}", results, ranks, "read", "native",
                              {"checkpoint": i, "step": step, "path": str(d),
                               "rank_shift": self.spec.rank_shift,
                               "verified_files": sum(len(j.files) for j in jobs),
                               "verify_errors": len(mism), "mismatches": mism[:20]})
            self.result.add_phase(phase)
            bad.extend(mism)
        if bad:
            m = bad[0]
            more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
            raise RunFailed(f"restore verification failed: {m['path']}: offset {m['offset']}: "
                            f"{m['what']}{more}")


def _untimed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its I/O declared untimed (manifests, DeepSpeed's `latest`): the run's
    byte audit leaves it out (iobench.verify.untimed)."""
    def call(*args: Any) -> Any:
        with verify.untimed():
            return fn(*args)
    return call


def finish_metrics(result: Recorder, plan: Plan, spec: Spec) -> None:
    """The result metrics (iobench.kinds.checkpoint.metrics declares every one)."""
    m = result.metrics
    writes = [p for p in result.phases if p["direction"] == "write"]
    reads = [p for p in result.phases if p["direction"] == "read"]
    m["checkpoint_bytes"] = plan.checkpoint_bytes
    m["ranks"] = len(plan.ranks)
    m["files_per_checkpoint"] = plan.nfiles
    m["params"] = model_mod.params(plan.spec)

    def block(prefix: str, phases: list[dict[str, Any]]) -> None:
        if not phases:
            return
        durs = [p["seconds"] for p in phases]
        nbytes = sum(p["bytes"] for p in phases)
        m[f"{prefix}_s"] = sum(durs) / len(durs)
        m[f"{prefix}_gb_per_s"] = nbytes / sum(durs) / 1e9 if sum(durs) > 0 else 0.0
        m[f"{prefix}_rank_min_gb_per_s"] = min(
            p["metrics"].get("rank_min_bytes_per_s", 0.0) for p in phases) / 1e9
        agg = [p["metrics"].get("aggregate_bytes_per_s", 0.0) for p in phases]
        m[f"{prefix}_aggregate_gb_per_s"] = sum(agg) / len(agg) / 1e9
        hist = Histogram.merged(Histogram.from_dict(p["histogram"]) for p in phases
                                if p.get("histogram"))
        if hist.count:
            m[f"{prefix}_lat_p50_ns"] = hist.percentile(50)
            m[f"{prefix}_lat_p99_ns"] = hist.percentile(99)
        m[f"{prefix}_first_s"] = durs[0]
        m[f"{prefix}_last_s"] = durs[-1]
        first, last = phases[0]["bytes_per_s"], phases[-1]["bytes_per_s"]
        m[f"{prefix}_last_vs_first"] = last / first if first else 0.0

    block("write", writes)
    block("read", reads)
    if writes and writes[0]["metrics"].get("fsync_max_s") is not None:
        m["write_fsync_s"] = sum(p["metrics"]["fsync_max_s"] for p in writes) / len(writes)
    if spec.async_mode and writes:
        m["stall_s"] = sum(p["metrics"]["stall_max_s"] for p in writes) / len(writes)
        m["persist_s"] = m["write_s"]
    if reads:
        m["verify_errors"] = sum(p["metrics"].get("verify_errors", 0) for p in reads)
    if writes:
        gpus = plan.spec.parallelism.world
        mtbf_h, src = economics.job_mtbf_h(gpus, spec.mtbf, spec.mtbf_per_gpu)
        if plan.mode == "subset" or plan.scale != 1.0:
            # the whole job writes the full checkpoint; a subset run measured a part of it
            # at the same per-rank rate only if the storage scales: say so
            result.warnings.append(
                "interval and waste use the duration measured for this "
                f"{'subset' if plan.mode == 'subset' else 'scaled'} checkpoint; the full job's "
                "checkpoint takes that long only if the storage scales with the ranks")
        m.update(economics.interval_report(m["write_s"], mtbf_h, restart_s=m.get("read_s"),
                                           stall_s=m.get("stall_s"), source=src))


def _probe_direct(root: Path) -> None:
    from iobench.engines.native import open_file

    probe = root / ".odirect-probe"
    try:
        fd = open_file(probe, write=True, direct=True, create=True)
        os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            safepath.remove(probe)


def _body(result: Recorder, plan: Plan, spec: Spec, root: Path, ctx: Ctx) -> None:
    runner_ = Runner(plan, spec, root, result, ctx)
    if spec.engine == "fio":
        from iobench.engines import fio as fio_mod

        fio_mod.fio_binary()  # ToolMissing before anything is written
    try:
        if spec.write:
            runner_.write_all()
            result.cache = cache_mod.verdict(spec.cache, "o_direct" if spec.direct
                                             else "none", plan.checkpoint_bytes, reads=False)
        if spec.read:
            runner_.read_all()
    except BaseException as e:  # the finished checkpoints' phases are kept
        # under MPI: the reason (naming the rank) is on disk before the rank processes
        # are stopped, in case mpirun SIGKILLs this rank while they are; then they are
        # stopped at once (a rank process killed with the job fails the pool too)
        runner.note_fault(result, e, ctx)
        runner_.close(now=True)
        raise
    finally:
        runner_.close()
        finish_metrics(result, plan, spec)
