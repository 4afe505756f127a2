"""`iobench checkpoint MODEL`: write and restore sharded training checkpoints, one process
per rank, and turn the measured duration into an optimal checkpoint interval."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from iobench import cache as cache_mod
from iobench import dist, dlio, presets, safepath
from iobench import spec as spec_mod
from iobench import target as target_mod
from iobench.checkpoint import economics, layout
from iobench.checkpoint import model as model_mod
from iobench.checkpoint.layout import FileEntry
from iobench.checkpoint.model import ModelSpec
from iobench.checkpoint.rankio import CHUNK, FileJob, RankJob
from iobench.cli import (
    MAX_THREADS,
    SEED,
    SIZE,
    cache_option,
    cli,
    common_run_options,
    engine_option,
)
from iobench.errors import RunFailed, SpecError, UsageError
from iobench.report import terminal
from iobench.report.progress import ByteProgress
from iobench.results import Recorder, Result, make_phase
from iobench.runner import execute
from iobench.stats import Histogram
from iobench.units import format_bytes, format_ns

MAX_RANK_BUFFER_BYTES = 256 << 20  # the memory bound per rank the issue promises
SUBSET_RANKS = 8  # MLPerf's subset mode: the GPUs of one host


# --- the plan: which ranks write which files ------------------------------------------------
@dataclass(frozen=True)
class Plan:
    spec: ModelSpec
    mode: str
    ranks: tuple[int, ...]  # world ranks simulated; process i is ranks[i]
    files: dict[int, tuple[FileEntry, ...]]  # world rank -> its files (scaled)
    scale: float
    layout: str

    @property
    def bytes_per_rank(self) -> dict[int, int]:
        return {r: sum(f.bytes for f in fs) for r, fs in self.files.items()}

    @property
    def checkpoint_bytes(self) -> int:
        return sum(self.bytes_per_rank.values())

    @property
    def nfiles(self) -> int:
        return sum(len(fs) for fs in self.files.values())


def load_spec(model: str, tp: int | None, pp: int | None, dp: int | None, zero: int | None,
              layout_name: str | None) -> ModelSpec:
    spec = spec_mod.load(ModelSpec, presets.find("checkpoint", model))
    par = spec_mod.override(spec.parallelism, tp=tp, pp=pp, dp=dp, zero=zero)
    spec = dataclasses.replace(spec, parallelism=par,
                               layout=layout_name or spec.layout)  # type: ignore[arg-type]
    return model_mod.validate(spec)


def make_plan(spec: ModelSpec, mode: str, ranks: int | None, scale: float) -> Plan:
    world = spec.parallelism.world
    if mode == "full":
        if ranks is not None and ranks != world:
            p = spec.parallelism
            raise UsageError(
                f"--ranks {ranks}: full mode runs every rank of {spec.name}'s "
                f"TP {p.tp} x PP {p.pp} x DP {p.dp} = {world}; use --mode subset --ranks "
                f"{ranks} to write the first {ranks} ranks' share, or change --tp/--pp/--dp")
        chosen = tuple(range(world))
    else:
        n = ranks if ranks is not None else min(SUBSET_RANKS, world)
        if n > world:
            raise UsageError(f"--ranks {n}: {spec.name} has only {world} ranks; "
                             f"use --ranks <= {world}")
        chosen = tuple(range(n))
    shares = model_mod.shares(spec)
    files = {r: tuple(layout.rank_files(shares[r], spec, spec.layout, scale)) for r in chosen}
    return Plan(spec, mode, chosen, files, scale, spec.layout)


def plan_dict(plan: Plan, count: int, keep: int | None) -> dict[str, Any]:
    s = plan.spec
    total = model_mod.total_bytes(s)
    bpr = plan.bytes_per_rank
    on_disk = plan.checkpoint_bytes * min(count, (keep + 1) if keep else count)
    out: dict[str, Any] = {
        "model": s.name, "params": model_mod.params(s.architecture),
        "model_bytes": total, "model_gb": total / 1e9, "model_gib": total / 2**30,
        "tp": s.parallelism.tp, "pp": s.parallelism.pp, "dp": s.parallelism.dp,
        "zero": s.parallelism.zero, "world": s.parallelism.world, "mode": plan.mode,
        "ranks": len(plan.ranks), "layout": plan.layout, "scale": plan.scale,
        "files_per_checkpoint": plan.nfiles,
        "rank_bytes_min": min(bpr.values()) if bpr else 0,
        "rank_bytes_max": max(bpr.values()) if bpr else 0,
        "checkpoint_bytes": plan.checkpoint_bytes,
        "checkpoint_gb": plan.checkpoint_bytes / 1e9,
        "checkpoint_gib": plan.checkpoint_bytes / 2**30,
        "count": count, "keep": keep, "peak_disk_bytes": on_disk,
    }
    if s.mlperf_total:
        out["mlperf_total_gib"] = s.mlperf_total / 2**30
        out["vs_mlperf"] = total / s.mlperf_total
    return out


def plan_table(d: dict[str, Any]) -> Table:
    t = Table(title="Checkpoint plan", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    n = d["params"]
    t.add_row("model", f"{d['model']}: " + (f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.3f} M")
              + " parameters")
    t.add_row("model checkpoint", f"{d['model_gb']:.2f} GB = {d['model_gib']:.2f} GiB")
    if d.get("vs_mlperf"):
        t.add_row("MLPerf Storage lists", f"{d['mlperf_total_gib']:.0f} GiB (printed as GB); "
                  f"ours is {100 * (d['vs_mlperf'] - 1):+.1f}%")
    t.add_row("parallelism", f"TP {d['tp']} x PP {d['pp']} x DP {d['dp']} = {d['world']}, "
              f"ZeRO-{d['zero']}, layout {d['layout']}")
    t.add_row("ranks (processes)", f"{d['ranks']} ({d['mode']}"
              + (f", scale {d['scale']:g}" if d["scale"] != 1 else "") + ")")
    t.add_row("files per checkpoint", str(d["files_per_checkpoint"]))
    t.add_row("bytes per rank", f"{format_bytes(d['rank_bytes_min'])} .. "
              f"{format_bytes(d['rank_bytes_max'])}")
    t.add_row("written per checkpoint", f"{d['checkpoint_gb']:.3f} GB = "
              f"{d['checkpoint_gib']:.3f} GiB ({d['checkpoint_bytes']} bytes)")
    t.add_row("checkpoints", f"{d['count']}" + (f", keeping the last {d['keep']}"
                                                 if d["keep"] else ", all kept"))
    t.add_row("peak on disk", format_bytes(d["peak_disk_bytes"]))
    return t


# --- running -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    count: int
    keep: int | None
    write: bool
    read: bool
    rank_shift: int
    policy: str
    async_mode: bool
    staging_bytes: int
    engine: str
    seed: int
    space_check: bool
    job_mtbf_h: float | None
    gpu_mtbf_h: float | None
    json_out: bool


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
            row["fsync_seconds"] = r["fsync_ns"] / 1e9
            row["stall_seconds"] = (r["stall_end_ns"] - r["start_ns"]) / 1e9
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
        metrics["fsync_max_s"] = max(row["fsync_seconds"] for row in rows)
        metrics["fsync_latency_ns"] = fs.summary() if fs.count else None
        metrics["stall_max_s"] = max(row["stall_seconds"] for row in rows)
    peaks = [row["peak_rss_bytes"] - (row["base_rss_bytes"] or 0) for row in rows
             if row.get("peak_rss_bytes")]
    if peaks:
        metrics["rank_peak_rss_growth_bytes_max"] = max(peaks)
    return make_phase(name, nbytes=nbytes, seconds=duration, ops=ops, latency=hist,
                      engine=engine, direction=op, metrics=metrics)


class Runner:
    """Runs the checkpoints of one invocation: writes, keep/delete, cache, restores."""

    def __init__(self, plan: Plan, opts: Options, root: Path, result: Recorder) -> None:
        self.plan = plan
        self.opts = opts
        self.root = root  # <target>/checkpoint/<model>/
        self.result = result
        self.written: list[tuple[int, Path]] = []  # (step, step dir) kept on disk
        self.pool: Any = None

    def _pool(self, n: int) -> Any:
        from iobench.checkpoint.pool import RankPool

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
        w = dist.world()
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

    def _on_root(self, fn: Any, *args: Any) -> None:
        """Shared-namespace changes (directories, manifests, `latest`) are rank 0's."""
        w = dist.world()
        if w.is_root:
            fn(*args)
        w.barrier()

    # -- helpers --
    def _progress(self, label: str, total: int) -> ByteProgress:
        return ByteProgress(label, total, enabled=False if self.opts.json_out else None)

    def _direct(self) -> bool:
        return self.opts.policy == "direct"

    def _write_jobs(self, step_path: Path, seed: int) -> list[RankJob]:
        staging = self.opts.staging_bytes // CHUNK if self.opts.async_mode else 2
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
        for i in range(1, self.opts.count + 1):
            step = i
            step_path = self.root / layout.step_dir(p.layout, step)

            self._on_root(self._fresh_dir, step_path)
            seed = self.opts.seed * 1_000_003 + step
            if self.opts.engine == "fio":
                from iobench.checkpoint import fio_engine

                phase = fio_engine.write(p, step_path, self._direct(), i, step)
                self.result.add_phase(phase)
            else:
                with self._progress(f"checkpoint {i}/{self.opts.count}",
                                    p.checkpoint_bytes) as prog:
                    results = self._run_ranks("write", self._write_jobs(step_path, seed), prog)
                self._disk_full(results, step_path)
                self._errors(results, "write")
                phase = summarise(f"write-{i}", results, p.ranks, "write", "native",
                                  {"checkpoint": i, "step": step, "path": str(step_path),
                                   "async": self.opts.async_mode})
                self.result.add_phase(phase)
                crcs: dict[str, list[int]] = {}
                for r in results:
                    for path, lst in r["crc32c"].items():
                        crcs[Path(path).name] = lst
                files = [f for r in p.ranks for f in p.files[r]]
                self._on_root(layout.write_manifest, step_path, p.layout, {
                    "model": p.spec.name, "layout": p.layout, "step": step, "seed": seed,
                    "content": "random", "chunk_bytes": CHUNK, "ranks": list(p.ranks),
                    "mode": p.mode, "scale": p.scale,
                    "parallelism": dataclasses.asdict(p.spec.parallelism)}, files, crcs)
            if p.layout == "deepspeed":
                # DeepSpeed's tag file, written after every rank saved (as rank 0 does)
                self._on_root(safepath.write_file, self.root / "latest", f"global_step{step}")
            self.written.append((step, step_path))
            if self.opts.keep and len(self.written) > self.opts.keep:
                old_step, old = self.written.pop(0)
                self._on_root(self._remove_step, old)

    # -- reading --
    def discover(self) -> list[tuple[int, Path]]:
        """Existing complete checkpoints of this model (for --no-write), oldest first."""
        found = []
        for d in self.root.iterdir() if self.root.is_dir() else []:
            if d.is_dir() and (d / layout.manifest_name(self.plan.layout)).exists():
                doc = layout.read_manifest(d, self.plan.layout)
                found.append((int(doc["step"]), d))
        if not found:
            raise UsageError(
                f"{self.root}: no {self.plan.layout} checkpoint of {self.plan.spec.name} to "
                "read; write one first (drop --no-write) or give the same --layout")
        found.sort()
        return found[-self.opts.count:]

    def _read_jobs(self, step_path: Path) -> tuple[list[RankJob], list[Path], tuple[int, ...]]:
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
            src = (i + self.opts.rank_shift) % n
            jobs.append(RankJob(rank=r, seed=int(doc["seed"]), content=doc.get("content", "random"),
                                direct=self._direct(), chunk=chunk, source_rank=src,
                                files=tuple(by_rank[ranks[src]])))
        return jobs, paths, ranks

    def read_all(self) -> None:
        targets = self.written if self.opts.write else self.discover()
        if self.opts.engine == "fio":
            from iobench.checkpoint import fio_engine

            files = [f for _, d in targets for f in sorted(d.glob("fio_rank*.dat"))]
            method = cache_mod.prepare(self.opts.policy, files)
            self.result.cache = cache_mod.verdict(self.opts.policy, method,
                                                  sum(f.stat().st_size for f in files))
            for i, (step, d) in enumerate(targets, 1):
                self.result.add_phase(fio_engine.read(self.plan, d, self._direct(), i, step,
                                                      self.opts.rank_shift))
            return
        prepared = [(step, d, *self._read_jobs(d)) for step, d in targets]
        all_paths = [p for *_, paths, _r in prepared for p in paths]
        data = sum(p.stat().st_size for p in all_paths if p.exists())
        method = cache_mod.prepare(self.opts.policy, all_paths)
        self.result.cache = cache_mod.verdict(self.opts.policy, method, data)
        bad: list[dict[str, Any]] = []
        for i, (step, d, jobs, _paths, ranks) in enumerate(prepared, 1):
            total = sum(f.bytes for j in jobs for f in j.files)
            with self._progress(f"restore {i}/{len(prepared)}", total) as prog:
                results = self._run_ranks("read", jobs, prog)
            self._errors(results, "read")
            mism = [m for r in results for m in r["mismatches"]]
            phase = summarise(f"read-{i}", results, ranks, "read", "native",
                              {"checkpoint": i, "step": step, "path": str(d),
                               "rank_shift": self.opts.rank_shift,
                               "verified_files": sum(len(j.files) for j in jobs),
                               "verify_errors": len(mism), "mismatches": mism[:20]})
            self.result.add_phase(phase)
            bad.extend(mism)
        if bad:
            m = bad[0]
            more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
            raise RunFailed(f"restore verification failed: {m['path']}: offset {m['offset']}: "
                            f"{m['what']}{more}")


def finish_metrics(result: Recorder, plan: Plan, opts: Options) -> None:
    m = result.metrics
    writes = [p for p in result.phases if p["direction"] == "write"]
    reads = [p for p in result.phases if p["direction"] == "read"]
    m["checkpoint_bytes"] = plan.checkpoint_bytes
    m["ranks"] = len(plan.ranks)
    m["files_per_checkpoint"] = plan.nfiles
    m["params"] = model_mod.params(plan.spec.architecture)

    def block(prefix: str, phases: list[dict[str, Any]]) -> None:
        if not phases:
            return
        durs = [p["seconds"] for p in phases]
        nbytes = sum(p["bytes"] for p in phases)
        m[f"{prefix}_seconds"] = sum(durs) / len(durs)
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
        m[f"{prefix}_first_seconds"] = durs[0]
        m[f"{prefix}_last_seconds"] = durs[-1]
        first, last = phases[0]["bytes_per_s"], phases[-1]["bytes_per_s"]
        m[f"{prefix}_last_vs_first"] = last / first if first else 0.0

    block("write", writes)
    block("read", reads)
    if writes and writes[0]["metrics"].get("fsync_max_s") is not None:
        m["write_fsync_seconds"] = sum(p["metrics"]["fsync_max_s"] for p in writes) / len(writes)
    if opts.async_mode and writes:
        m["stall_seconds"] = sum(p["metrics"]["stall_max_s"] for p in writes) / len(writes)
        m["persist_seconds"] = m["write_seconds"]
    if reads:
        m["verify_errors"] = sum(p["metrics"].get("verify_errors", 0) for p in reads)
    if writes:
        gpus = plan.spec.parallelism.world
        mtbf_h, src = economics.job_mtbf_h(gpus, opts.job_mtbf_h, opts.gpu_mtbf_h)
        delta = m["write_seconds"]
        if plan.mode == "subset" or plan.scale != 1.0:
            # the whole job writes the full checkpoint; a subset run measured a part of it
            # at the same per-rank rate only if the storage scales: say so
            result.warnings.append(
                "interval and waste use the duration measured for this "
                f"{'subset' if plan.mode == 'subset' else 'scaled'} checkpoint; the full job's "
                "checkpoint takes that long only if the storage scales with the ranks")
        interval = economics.interval_report(
            delta, mtbf_h, restart_s=m.get("read_seconds"),
            stall_s=m.get("stall_seconds"), source=src)
        m["interval"] = interval
        m["mtbf_hours"] = mtbf_h
        m["young_interval_s"] = interval["young_interval_s"]
        m["daly_interval_s"] = interval["daly_interval_s"]
        m["waste_fraction"] = interval["waste_fraction"]


# --- rendering -----------------------------------------------------------------------------
def _gbps(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e9:.3f}"


def render_extra(result: Result) -> list[RenderableType]:
    out: list[RenderableType] = []
    plan = result.spec.get("plan")
    if plan:
        out.append(plan_table(plan))
    phases = [p for p in result.phases if p["direction"] in ("write", "read")]
    if phases:
        t = Table(title="Checkpoints (duration = slowest rank; rank GB/s = slowest rank; "
                        "aggregate = bytes / (last end - first start))", title_justify="left")
        for col in ("phase", "step", "seconds", "fsync s", "stall s", "GB/s", "rank min GB/s",
                    "aggregate GB/s", "p99", "verified"):
            t.add_column(col, justify="left" if col == "phase" else "right")
        for p in phases:
            pm = p["metrics"]
            stall = pm.get("stall_max_s") if pm.get("async") else None
            t.add_row(
                p["name"], str(pm.get("step", "")), f"{p['seconds']:.3f}",
                f"{pm['fsync_max_s']:.3f}" if pm.get("fsync_max_s") is not None else "-",
                f"{stall:.3f}" if stall is not None else "-",
                _gbps(p["bytes_per_s"]), _gbps(pm.get("rank_min_bytes_per_s")),
                _gbps(pm.get("aggregate_bytes_per_s")),
                format_ns((p.get("latency_ns") or {}).get("p99")),
                ("-" if p["direction"] == "write" else
                 f"{pm.get('verified_files', 0) - pm.get('verify_errors', 0)}"
                 f"/{pm.get('verified_files', 0)}"))
        m = result.metrics
        nwrites = len([p for p in phases if p["direction"] == "write"])
        if m.get("write_last_vs_first") and nwrites > 1:
            t.caption = (f"last vs first write: {m['write_first_seconds']:.3f} s -> "
                         f"{m['write_last_seconds']:.3f} s "
                         f"(throughput x{m['write_last_vs_first']:.3f})")
        out.append(t)
    for direction in ("write", "read"):
        last = next((p for p in reversed(phases) if p["direction"] == direction), None)
        if last is None or not last["metrics"].get("ranks"):
            continue
        t = Table(title=f"Per rank ({last['name']})", title_justify="left")
        cols = ["rank", "bytes", "files", "seconds", "GB/s"]
        cols += ["fsync s", "stall s"] if direction == "write" else ["read rank's files"]
        cols += ["peak RSS growth"]
        for col in cols:
            t.add_column(col, justify="right")
        rows = last["metrics"]["ranks"]
        shown = rows if len(rows) <= 32 else rows[:16] + rows[-16:]
        for row in shown:
            cells = [str(row["rank"]), format_bytes(row["bytes"]), str(row["files"]),
                     f"{row['seconds']:.3f}", _gbps(row["bytes_per_s"])]
            if direction == "write":
                fs = row.get("fsync_seconds")
                cells += [f"{fs:.3f}" if fs is not None else "-",
                          f"{row['stall_seconds']:.3f}" if last["metrics"].get("async") else "-"]
            else:
                cells += [str(row.get("source_rank", row["rank"]))]
            growth = (row["peak_rss_bytes"] - (row.get("base_rss_bytes") or 0)
                      if row.get("peak_rss_bytes") else None)  # fio rows have none
            cells.append(format_bytes(growth) if growth is not None else "-")
            t.add_row(*cells)
        if len(rows) > 32:
            t.caption = f"{len(rows)} ranks: the first and last 16 shown"
        out.append(t)
    iv = result.metrics.get("interval")
    if iv:
        t = Table(title="Checkpoint interval and lost training time", title_justify="left",
                  show_header=False)
        t.add_column("what")
        t.add_column("value", justify="right")
        t.add_row("job MTBF", f"{iv['mtbf_hours']:.2f} h ({iv['mtbf_source']})")
        t.add_row("checkpoint duration (measured)", f"{iv['checkpoint_seconds']:.3f} s")
        if iv.get("restart_seconds") is not None:
            t.add_row("restore duration (measured)", f"{iv['restart_seconds']:.3f} s")
        t.add_row("Young interval sqrt(2 delta M)", _dur(iv["young_interval_s"]))
        t.add_row("Daly interval", _dur(iv["daly_interval_s"]))
        t.add_row("training time lost at that interval",
                  f"{100 * iv['waste_fraction']:.2f}% (Young), "
                  f"{100 * iv['waste_fraction_daly']:.2f}% (Daly)")
        if iv.get("async_stall_seconds") is not None:
            t.add_row("async: stall only",
                      f"{iv['async_stall_seconds']:.3f} s -> interval "
                      f"{_dur(iv['async_young_interval_s'])}, "
                      f"{100 * iv['async_waste_fraction']:.2f}% lost")
        out.append(t)
    return out


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


terminal.register("checkpoint", render_extra)


# --- the command ---------------------------------------------------------------------------
@cli.command("checkpoint")
@click.argument("model", required=False)
@common_run_options
@click.option("--ranks", type=click.IntRange(min=1, max=MAX_THREADS), default=None,
              help="Rank processes (full mode: must equal TP x PP x DP; subset: default 8).")
@click.option("--mode", type=click.Choice(["full", "subset"]), default="full", show_default=True,
              help="full: every rank of the job; subset: the first --ranks ranks (MLPerf's "
                   "single-host mode).")
@click.option("--count", type=click.IntRange(min=1, max=100_000), default=1, show_default=True,
              help="Checkpoints to write (MLPerf writes 10): first vs last shown.")
@click.option("--keep", type=click.IntRange(min=1, max=100_000), default=None,
              help="Keep only the newest K checkpoints, deleting older ones (default: all).")
@click.option("--layout", "layout_name", type=click.Choice(["deepspeed", "dcp"]), default=None,
              help="File layout (default: the preset's, deepspeed).")
@click.option("--zero", type=click.Choice(["0", "1", "2", "3"]), default=None,
              help="ZeRO stage (default: the preset's).")
@click.option("--tp", type=click.IntRange(min=1, max=2**20), default=None,
              help="Tensor parallel size.")
@click.option("--pp", type=click.IntRange(min=1, max=2**20), default=None,
              help="Pipeline parallel size.")
@click.option("--dp", type=click.IntRange(min=1, max=2**20), default=None,
              help="Data parallel size.")
@click.option("--scale", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0,
              show_default=True, help="Shrink every file by this fraction (tests, small disks).")
@click.option("--write/--no-write", "do_write", default=True, show_default=True)
@click.option("--read/--no-read", "do_read", default=True, show_default=True,
              help="Restore (read and verify) after writing.")
@click.option("--rank-shift", type=click.IntRange(min=0, max=2**20), default=0, show_default=True,
              help="Rank r restores rank r+K's files, as a restart on other hosts would.")
@cache_option("drop")
@click.option("--async", "async_mode", is_flag=True,
              help="Report the stall (snapshot into a bounded staging buffer) apart from the "
                   "persist (background write + fsync).")
@click.option("--staging", type=SIZE, default="128MiB", show_default=True,
              help="--async staging buffer per rank (at most 240 MiB).")
@click.option("--mtbf", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Mean time between failures of the whole job, hours (default: Llama 3's "
                   "3.1 h at 16,384 GPUs scaled to this job's GPUs).")
@click.option("--mtbf-per-gpu", type=click.FloatRange(min=0, min_open=True), default=None,
              help="MTBF per GPU in hours; divided by the job's TP x PP x DP.")
@engine_option
@click.option("--what-if", is_flag=True, help="Print the plan and write nothing.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--space-check/--no-space-check", default=True, show_default=True,
              help="Refuse before writing when the target lacks the free space.")
@click.option("--dlio-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint the model of a DLIO / MLPerf Storage YAML (model.transformer; "
                   "MODEL, if given, names it); options given here win.")
def checkpoint_cmd(model: str | None, target: Path, json_out: bool, results_dir: Path, force: bool,
                   ranks: int | None, mode: str, count: int, keep: int | None,
                   layout_name: str | None, zero: str | None, tp: int | None, pp: int | None,
                   dp: int | None, scale: float, do_write: bool, do_read: bool,
                   rank_shift: int, cache: str, async_mode: bool, staging: int,
                   mtbf: float | None, mtbf_per_gpu: float | None, engine: str,
                   what_if: bool, seed: int, space_check: bool,
                   dlio_config: Path | None) -> None:
    """Write and restore checkpoints of MODEL (a preset such as llama3-8b or a YAML file).

    Each rank is a process with a streaming writer (bounded memory), fsync timed apart;
    files go to <target>/checkpoint/<model>/ in DeepSpeed or PyTorch DCP layout.
    """
    if not do_write and not do_read:
        raise UsageError("--no-write with --no-read leaves nothing to do; drop one of them")
    if mtbf is not None and mtbf_per_gpu is not None:
        raise UsageError("--mtbf and --mtbf-per-gpu both given; give one (job or per GPU)")
    if staging > MAX_RANK_BUFFER_BYTES - 16 * 2**20 or staging < 2 * CHUNK:
        raise UsageError(f"--staging {staging}: give {format_bytes(2 * CHUNK)} .. 240 MiB "
                         "(memory per rank stays under 256 MiB)")
    model = dlio.workload_or_config(model, dlio_config, "MODEL")
    imp = dlio.load(dlio_config, "checkpoint", model or None) if dlio_config else None
    if imp is not None:
        imp.announce()
        mode, count = imp.pick("mode", mode), imp.pick("count", count)
        do_read = imp.pick("do_read", do_read)
        spec = model_mod.validate(dataclasses.replace(
            imp.model, parallelism=spec_mod.override(
                imp.model.parallelism, tp=tp, pp=pp, dp=dp,
                zero=int(zero) if zero is not None else None),
            layout=layout_name or imp.model.layout))
    else:
        spec = load_spec(model, tp, pp, dp, int(zero) if zero is not None else None,
                         layout_name)
    plan = make_plan(spec, mode, ranks, scale)
    if rank_shift and rank_shift % len(plan.ranks) == 0:
        raise UsageError(f"--rank-shift {rank_shift}: a multiple of the {len(plan.ranks)} ranks "
                         "reads each rank's own files; give 1 .. ranks-1")
    if engine == "fio" and async_mode:
        raise UsageError("--async with --engine fio: fio has no stall/persist split; "
                         "use --engine native")
    pd = plan_dict(plan, count if do_write else 0, keep)
    opts = Options(count=count, keep=keep, write=do_write, read=do_read, rank_shift=rank_shift,
                   policy=cache, async_mode=async_mode, staging_bytes=staging, engine=engine,
                   seed=seed, space_check=space_check, job_mtbf_h=mtbf, gpu_mtbf_h=mtbf_per_gpu,
                   json_out=json_out)
    spec_dict = {"model": dataclasses.asdict(spec), "plan": pd,
                 "options": {k: v for k, v in dataclasses.asdict(opts).items()
                             if k != "json_out"}}
    if imp is not None:
        spec_dict["dlio"] = imp.record()  # where the model came from, key by key
    if what_if:
        if json_out:
            import json

            click.echo(json.dumps(spec_dict, indent=1))
        else:
            con = terminal.console()
            con.print(plan_table(pd))
            con.print(Text("what-if: nothing was written"))
        return
    w = dist.world()
    tgt = dist.root_first(lambda: target_mod.prepare(target, force=force), w)
    dist.root_first(lambda: tgt.subdir("checkpoint"), w)
    root = tgt.claim(f"checkpoint/{spec.name}")  # a checked plain name, below our own dir
    if do_write:
        if w.is_root:  # an earlier run's checkpoints of this model: ours to replace
            safepath.rmtree(root)
            safepath.makedirs(root)
        w.barrier()
        if space_check and w.is_root:
            tgt.check_space(pd["peak_disk_bytes"],
                            f"checkpoint {spec.name} ({count} x {plan.checkpoint_bytes} bytes"
                            + (f", keeping {keep}" if keep else "") + ")")
        if cache == "direct":
            _probe_direct(root)
    result = Recorder(kind="checkpoint", name=spec.name, spec=spec_dict, engine=engine)
    if imp is not None:
        imp.announce(result.warnings)
    execute(result, lambda r: _body(r, plan, opts, root), results_dir=results_dir,
            json_out=json_out, target=tgt.root)


def _probe_direct(root: Path) -> None:
    from iobench.engines.native import open_file

    probe = root / ".odirect-probe"
    try:
        fd = open_file(probe, write=True, direct=True, create=True)
        import os

        os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            safepath.remove(probe)


def _body(result: Recorder, plan: Plan, opts: Options, root: Path) -> None:
    runner = Runner(plan, opts, root, result)
    if opts.engine == "fio":
        from iobench.engines import fio as fio_mod

        fio_mod.fio_binary()  # ToolMissing before anything is written
    try:
        if opts.write:
            runner.write_all()
            result.cache = cache_mod.verdict(opts.policy, "o_direct" if opts.policy == "direct"
                                             else "none", plan.checkpoint_bytes, reads=False)
        if opts.read:
            runner.read_all()
    except KeyboardInterrupt:  # the finished checkpoints' phases are kept
        runner.close(now=True)
        raise
    finally:
        runner.close()
        finish_metrics(result, plan, opts)


__all__ = ["checkpoint_cmd", "load_spec", "make_plan", "Plan", "SpecError"]
