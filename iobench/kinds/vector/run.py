"""Run `iobench infer vector`: mode 1 (a real DiskANN index, engine diskann) or mode 2
(DiskANN's read pattern on a plain index file, engine native or fio).

`run(spec, options, ctx)` is the whole command without the command line: the Python API
and suites call it. Imports neither click nor rich. The timed read loop of mode 2 is
iobench.engines.batch (dependent batches of reads on the compiled ring); fio's side is an
iobench.engines.fio job file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iobench import dist, runner, verify
from iobench import target as target_mod
from iobench.errors import TargetError, UsageError
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.vector.spec import RECALL_TARGET, SECTOR, K, Spec
from iobench.results import Recorder, Result, make_phase
from iobench.stats import Histogram
from iobench.units import format_bytes


@dataclass
class DiskannOptions:
    dim: int
    vectors: int
    queries: int
    metric: str
    clusters: int
    graph_degree: int
    build_complexity: int
    pq_bytes: int
    beam_widths: list[int]
    complexities: list[int]
    states: list[str]
    latency_budget_s: float
    cache_nodes: int
    search_procs: list[int] = field(default_factory=list)
    seed: int = 0


@dataclass
class PatternOptions:
    index_size: int
    sector: int
    hops: int
    beam_width: int
    concurrency: list[int]
    runtime_s: float
    engine: str
    calibrated_from: str | None = None
    calibration: dict[str, Any] | None = None


MAX_HOPS = 4096  # DiskANN-like searches take tens of rounds; a stop waits for a query


def free_bytes_at(path: Path) -> int:
    """Free bytes of the filesystem that holds (or would hold) `path`."""
    from iobench.target import _expand

    p = _expand(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def _space(target: Path, need: int, what: str) -> None:
    free = free_bytes_at(target)
    if need > free:
        raise TargetError(f"--target {target}: {what} needs {format_bytes(need)} ({need} bytes) "
                          f"but only {format_bytes(free)} ({free} bytes) are free; free space "
                          "or give a smaller size")


# --- the run ----------------------------------------------------------------------------
def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    """Run one mode; the Outcome says how it ended (the exit code a command gives)."""
    ctx = ctx or default_ctx()
    spec.validate()
    with target_mod.locked():
        if spec.is_diskann:
            return _execute_diskann(spec, options, ctx)
        return _execute_pattern(spec, options, ctx)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Run and return the (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result


def _prepare(options: RunOptions, w: dist.World, ready: dict[str, target_mod.Target]
             ) -> Path:
    """The target, prepared after the provisional result exists (runner.run's prepare)."""
    tgt = dist.root_first(lambda: target_mod.prepare(options.target, force=options.force,
                                                     wait=options.wait > 0), w)
    ready["tgt"] = tgt
    return tgt.root


def diskann_options(spec: Spec) -> DiskannOptions:
    from iobench.kinds.vector.data import default_clusters

    return DiskannOptions(
        dim=spec.dim, vectors=spec.vectors, queries=spec.queries, metric=spec.metric,
        clusters=spec.clusters or default_clusters(spec.vectors),
        graph_degree=spec.graph_degree, build_complexity=spec.build_complexity,
        pq_bytes=spec.resolved_pq_bytes(), beam_widths=list(spec.beams()),
        complexities=list(spec.complexity), states=spec.state_list(),
        latency_budget_s=spec.latency_budget, cache_nodes=spec.cache_nodes,
        search_procs=list(spec.search_procs))


def _execute_diskann(spec: Spec, options: RunOptions, ctx: Ctx) -> runner.Outcome:
    w = ctx.world
    o = diskann_options(spec)
    from iobench.kinds.vector import engine as eng

    eng.diskannpy()  # missing extra: one line before anything is written
    done = (options.target / "vector" / "diskann" / _dataset_key(o) / "dataset.json"
            ).is_file()
    if not done:
        _space(options.target, estimate_bytes(o), "the vector data set and its DiskANN index")
    sp: dict[str, Any] = dict(o.__dict__)
    sp["engine"] = "diskann"
    sp["recall_target"] = RECALL_TARGET
    if w.size > 1:
        sp["ranks"] = w.size
    rec = Recorder("infer-vector", "diskann", spec=sp, engine="diskann")
    ready: dict[str, target_mod.Target] = {}
    return runner.run(rec, lambda res: diskann_run(res, ready["tgt"], o, ctx), options, ctx,
                      prepare=lambda res: _prepare(options, w, ready))


RING_DEPTH = 4096  # iobench._fastio.Ring: the most reads one ring keeps in flight


def max_queue_depth(sector: int) -> int:
    """The most reads one process keeps in flight: one compiled ring's depth, the kernel's
    AIO request limit (/proc/sys/fs/aio-max-nr), and read buffers within a quarter of RAM."""
    top = RING_DEPTH
    try:
        with open("/proc/sys/fs/aio-max-nr", encoding="ascii") as f:
            top = min(top, int(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min(top, ram // 4 // max(4096, sector)))


def pattern_options(spec: Spec, target: Path, ranks: int = 1) -> PatternOptions:
    """Mode 2's parameters: the free space first (before any other check), then the
    calibration (a mode-1 result) and what follows from it."""
    size = spec.index_size
    path = target / "vector" / "pattern" / f"index-{size}.dat"
    have = path.is_file() and not path.is_symlink() and path.stat().st_size == size
    if not have:  # checked first: nothing else is looked at, nothing is written
        _space(target, size, f"the --index-size {format_bytes(size)} index file")
    cal = calibrate(str(spec.calibrate)) if spec.calibrate else None
    beams = spec.beam_width
    if beams is not None and len(beams) != 1:
        raise UsageError(f"--beam-width {','.join(map(str, beams))}: the pattern takes one "
                         "beam width (sweep --concurrency instead)")
    beam = beams[0] if beams else (cal["beam_width"] if cal else 4)
    hops = spec.hops if spec.hops is not None else (cal["hops"] if cal else 16)
    sector = spec.sector if spec.sector is not None else (cal["sector"] if cal else SECTOR)
    if not 1 <= hops <= MAX_HOPS:  # a query in flight always finishes: bound its length
        raise UsageError(f"--hops {hops}: give 1 to {MAX_HOPS} (rounds of reads per query)")
    if beam <= 0:
        raise UsageError(f"--beam-width {beam}: must be >= 1 (reads per round)")
    top = max_queue_depth(sector)
    share = -(-max(spec.concurrency) // max(1, ranks))  # queries in flight on one rank
    if share * beam > top:
        raise UsageError(f"--concurrency {max(spec.concurrency)}: {share} queries x "
                         f"--beam-width {beam} = {share * beam} reads in flight per process, "
                         f"more than {top} (one ring's depth, the AIO limit and a quarter "
                         f"of RAM in read buffers); give --concurrency <= "
                         f"{top // beam * max(1, ranks)}")
    if sector <= 0 or sector % 4096:
        raise UsageError(f"--sector {sector}: O_DIRECT reads need a multiple of 4096; give "
                         "4k or 8k")
    if size < sector * beam:
        raise UsageError(f"--index-size {format_bytes(size)}: smaller than one round of "
                         f"{beam} x {format_bytes(sector)}; give a larger --index-size")
    if spec.runtime <= 0:
        raise UsageError("--runtime must be > 0, e.g. 5s")
    if spec.engine == "fio":
        from iobench.engines.fio import fio_binary

        fio_binary()
    from iobench.engines import batch

    if batch.queue_kind() is None:
        raise UsageError("the vector pattern needs io_uring or Linux native AIO (both "
                         "refused here); check /proc/sys/fs/aio-max-nr or run on Linux")
    return PatternOptions(index_size=size, sector=sector, hops=hops, beam_width=beam,
                          concurrency=list(spec.concurrency), runtime_s=spec.runtime,
                          engine=spec.engine, calibrated_from=cal["from"] if cal else None,
                          calibration=cal)


def _execute_pattern(spec: Spec, options: RunOptions, ctx: Ctx) -> runner.Outcome:
    w = ctx.world
    o = pattern_options(spec, options.target, w.size)
    sp: dict[str, Any] = {k: v for k, v in o.__dict__.items() if k != "calibration"}
    if o.calibration:
        sp["calibration"] = o.calibration
    if w.size > 1:
        sp["ranks"] = w.size
    rec = Recorder("infer-vector", "pattern", spec=sp, engine=spec.engine)
    ready: dict[str, target_mod.Target] = {}
    return runner.run(rec, lambda res: pattern_run(res, ready["tgt"], o, ctx), options, ctx,
                      prepare=lambda res: _prepare(options, w, ready))


# --- mode 1 ---------------------------------------------------------------------------
def _dataset_key(o: DiskannOptions) -> str:
    return f"d{o.dim}-n{o.vectors}-q{o.queries}-c{o.clusters}-s{o.seed}-{o.metric}"


def _build_key(o: DiskannOptions) -> str:
    return f"R{o.graph_degree}-L{o.build_complexity}-pq{o.pq_bytes}"


def estimate_bytes(o: DiskannOptions) -> int:
    """Vectors + queries + ground truth + the disk index (nodes in whole sectors) + PQ."""
    from iobench.kinds.vector.engine import node_bytes

    nb = node_bytes(o.dim, o.graph_degree)
    per_sector = max(1, SECTOR // nb)
    sectors = -(-o.vectors // per_sector) if nb <= SECTOR else o.vectors * -(-nb // SECTOR)
    return (o.vectors * o.dim * 4 + o.queries * (o.dim * 4 + K * 12) + (sectors + 1) * SECTOR
            + o.vectors * o.pq_bytes * 2 + (16 << 20))


def _log_path(res: Recorder, w: dist.World, fallback: Path) -> Path:
    run_dir = w.bcast(str(res.run_dir) if res.run_dir else None)
    d = Path(run_dir) if run_dir and Path(run_dir).is_dir() else fallback
    return d / ("diskann.log" if w.rank == 0 else f"diskann-rank{w.rank}.log")


def prepare_dataset(o: DiskannOptions, tgt: target_mod.Target, root: Path, log: Path
                    ) -> dict[str, Any]:
    """Vectors, queries and ground truth (once), then the index (once); on rank 0."""
    from iobench.kinds.vector import data, engine

    with verify.untimed(children=True):  # the data set: set-up, not a measured byte
        info = _dataset(o, tgt, root)
    vectors = root / "vectors.bin"
    idx = root / f"index-{_build_key(o)}"
    with verify.untimed(children=True):
        built = data.read_json(idx / "build.json") if idx.is_dir() else None
    if built is None:
        if idx.is_symlink():
            raise UsageError(f"{idx}: is a symlink; iobench never follows one in its target")
        if idx.is_dir():
            import shutil

            shutil.rmtree(idx)  # a build that did not finish (ours, inside vector/)
        tgt.check_space(estimate_bytes(o) - o.vectors * o.dim * 4, "the DiskANN index")
        idx.mkdir()
        bp = engine.BuildParams(o.metric, o.graph_degree, o.build_complexity, o.pq_bytes,
                                max(1, os.cpu_count() or 1))
        io0 = verify.proc_io()  # the whole process: DiskANN's C++ threads write too
        secs = engine.build(vectors, idx, o.vectors, o.dim, bp, log)
        io1 = verify.proc_io()
        files = engine.index_files(idx)
        built = {"build_seconds": secs, "graph_degree": o.graph_degree,
                 "build_complexity": o.build_complexity, "pq_bytes": o.pq_bytes,
                 "threads": bp.threads,
                 "index_bytes": sum(p.stat().st_size for p in files),
                 "disk_index_bytes": engine.disk_index(idx).stat().st_size,
                 "files": {p.name: p.stat().st_size for p in files}}
        with verify.untimed(children=True):
            data.write_json(idx / "build.json", built)
        built["kernel_io"] = {k: io1[k] - io0[k] for k in io0 if k in io1}
        built["reused"] = False
    else:
        built["reused"] = True
    return {"dataset": info, "build": built, "index_dir": str(idx)}


def _dataset(o: DiskannOptions, tgt: target_mod.Target, root: Path) -> dict[str, Any]:
    """Vectors, queries and exact ground truth, made once (dataset.json says so)."""
    from iobench.kinds.vector import data

    info = data.read_json(root / "dataset.json")
    vectors = root / "vectors.bin"
    if info is None:
        for p in root.iterdir():  # an interrupted earlier attempt: ours, start over
            if p.is_file() and not p.is_symlink():
                p.unlink()
        tgt.check_space(estimate_bytes(o), "the vector data set and its DiskANN index")
        mix = data.Mixture(o.dim, o.clusters, o.seed)
        t0 = time.monotonic()
        data.write_vectors(vectors, mix, o.vectors)
        queries = mix.sample(o.queries, 1, 0)
        data.save_array(root / "queries.npy", queries)
        gen_s = time.monotonic() - t0
        t0 = time.monotonic()
        ids, scores = data.ground_truth(vectors, queries, o.metric)
        data.save_array(root / "truth_ids.npy", ids)
        data.save_array(root / "truth_scores.npy", scores)
        info = {"dim": o.dim, "vectors": o.vectors, "queries": o.queries,
                "clusters": o.clusters, "metric": o.metric, "seed": o.seed,
                "distribution": "gaussian-mixture", "generate_seconds": gen_s,
                "ground_truth_seconds": time.monotonic() - t0,
                "ground_truth": f"exact top-{K}, brute force (numpy, blocks)"}
        data.write_json(root / "dataset.json", info)
    return info


def diskann_run(res: Recorder, tgt: target_mod.Target, o: DiskannOptions, ctx: Ctx) -> None:
    from iobench.kinds.vector import data, engine

    w = ctx.world
    root = dist.root_first(lambda: tgt.subdir(f"vector/diskann/{_dataset_key(o)}"), w)
    log = _log_path(res, w, root)
    prep = dist.root_first_value(lambda: prepare_dataset(o, tgt, root, log), w)
    idx = Path(prep["index_dir"])
    build = prep["build"]
    res.metrics.update({"build_s": build["build_seconds"],
                        "index_bytes": build["index_bytes"],
                        "disk_index_bytes": build["disk_index_bytes"],
                        "index_reused": build["reused"],
                        "ground_truth_s": prep["dataset"]["ground_truth_seconds"]})
    res.spec["dataset"] = prep["dataset"]
    res.spec["build"] = build
    res.spec["sector_bytes"] = engine.sector_bytes(o.dim, o.graph_degree)
    res.spec["log"] = str(log)
    if not build["reused"]:
        res.add_phase(make_phase("build", nbytes=build["index_bytes"],
                                 seconds=build["build_seconds"], ops=1, direction="write",
                                 engine="diskann", metrics={"what": "DiskANN disk index "
                                                            "build (graph + PQ + layout)",
                                                            **_build_counter(build)}))
    with verify.untimed(children=True):  # the queries, the truth, the index load
        queries = data.load_array(root / "queries.npy")
        truth = data.load_array(root / "truth_ids.npy")
        mine = list(dist.split(len(queries), w))
        q_mine, t_mine = queries[mine], truth[mine]
        searcher = engine.Searcher(idx, o.metric, o.dim, o.cache_nodes, log)
    try:
        _sweep(res, o, searcher, idx, q_mine, t_mine, bool(mine), w)
    finally:
        with verify.untimed(children=True):
            searcher.close()
    if o.search_procs:
        _procs_sweep(res, o, idx, log, q_mine, t_mine, w)
    _headline(res, o)
    faulted = [p["name"] for p in res.phases if p.get("metrics", {}).get("major_faults")]
    if faulted:
        res.warnings.append(f"{len(faulted)} search pass(es) took major page faults (memory "
                            "pressure): their measured read bytes include those page-fault "
                            f"reads, so reads per query are overstated there: {faulted[:4]}")


def _build_counter(build: dict[str, Any]) -> dict[str, str]:
    """The build phase is left out of the run's byte audit, with the kernel's figures:
    DiskANN writes intermediate files (its in-memory graph, the PQ training sample) and
    removes some, so write(2) counts more than the index it leaves."""
    k = build.get("kernel_io") or {}
    return {"byte_counter": verify.NO_COUNTER,
            "byte_counter_why": "DiskANN's build writes and removes intermediate files, so "
                                "the kernel counts more than the index it leaves (wchar "
                                f"{k.get('wchar', 0):,} B, write_bytes "
                                f"{k.get('write_bytes', 0):,} B, of which cancelled "
                                f"{k.get('cancelled_write_bytes', 0):,} B, for "
                                f"{build['index_bytes']:,} B of index files)"}


SEARCH_WHY = ("the phase's bytes are this process's own read_bytes delta (/proc/self/io: "
              "DiskANN counts none of its own), so the audit would judge them against "
              "themselves; the device's count is beside them (query_device_bytes)")


def _sweep(res: Recorder, o: DiskannOptions, searcher: Any, idx: Path, q_mine: np.ndarray,
           t_mine: np.ndarray, mine: bool, w: dist.World) -> None:
    from iobench.kinds.vector import data, engine

    build = res.spec["build"]
    dev = engine.device_of(engine.disk_index(idx))
    files = engine.index_files(idx)
    evictions: list[dict[str, Any]] = []
    for bw in o.beam_widths:
        for cx in o.complexities:
            for state in o.states:
                def one(bw: int = bw, cx: int = cx, state: str = state) -> dict[str, Any]:
                    ev = engine.evict(files) if state == "cold" else None
                    out = searcher.run(q_mine, cx, bw, dev) if mine else _empty()
                    hits = data.recall_hits(out["found"], t_mine) if mine else 0
                    out.pop("found")
                    out["hits"] = hits
                    out["hist"] = out["hist"].to_dict()
                    out["evict"] = ev
                    return out

                w.barrier()
                per_rank = dist.collective(one, w, f"search W={bw} L={cx} {state}")
                if state == "cold":
                    evictions += [r["evict"] for r in per_rank if r["evict"]]
                res.add_phase(_search_phase(per_rank, bw, cx, state, o, dev))
    verified = all(e["verified"] for e in evictions) if evictions else None
    res.cache = {"policy": "fadvise" if "cold" in o.states else "allow",
                 "method": "fadvise_dontneed+mincore" if evictions else "none",
                 "data_bytes": build["index_bytes"], "ram_bytes": _ram(),
                 "data_to_ram": round(build["index_bytes"] / _ram(), 4),
                 "may_be_cached": False, "evicted_verified": verified,
                 "note": "DiskANN reads its disk index with O_DIRECT (Linux AIO), so searches "
                         "bypass the page cache; cold = the index files evicted with "
                         "posix_fadvise(DONTNEED) before the pass (checked with mincore; "
                         "the global page cache is not dropped), warm = the same queries "
                         "again at once (DiskANN's node cache and the storage's own caches "
                         "warm); a hypervisor or array cache is not cleared"}
    if "warm" in o.states:
        res.warnings.append("warm passes repeat the cold pass's queries: the storage's and "
                            "DiskANN's caches may serve them")


def _procs_sweep(res: Recorder, o: DiskannOptions, idx: Path, log: Path,
                 q_mine: np.ndarray, t_mine: np.ndarray, w: dist.World) -> None:
    """Concurrency on one host (--search-procs): P searcher processes (each its own
    StaticDiskIndex, one query at a time, each query timed; see fleet.py for why not
    threads) search this rank's queries at once, every setting and state of the sweep;
    queries/s, p99 and reads measured as in the one-at-a-time passes (reads: the sum of
    the processes' own /proc/self/io). Under mpirun: ranks x P in flight."""
    from iobench.kinds.vector import data, engine, fleet

    dev = engine.device_of(engine.disk_index(idx))
    files = engine.index_files(idx)
    curve: list[dict[str, Any]] = []
    for procs in o.search_procs:
        f = fleet.SearcherFleet(idx, o.metric, o.dim, o.cache_nodes, log, q_mine, procs) \
            if len(q_mine) else None
        clean = False
        try:
            if f is not None:
                f.start()
            for bw in o.beam_widths:
                for cx in o.complexities:
                    for state in o.states:
                        def one(bw: int = bw, cx: int = cx, state: str = state,
                                f: fleet.SearcherFleet | None = f) -> dict[str, Any]:
                            if state == "cold":
                                engine.evict(files)
                            out = f.run(cx, bw, dev) if f is not None else _empty()
                            out["hits"] = data.recall_hits(out.pop("found"), t_mine) \
                                if len(q_mine) else 0
                            out["hist"] = out["hist"].to_dict()
                            out["evict"] = None
                            return out

                        w.barrier()
                        name = f"procs P={procs} W={bw} L={cx} {state}"
                        per_rank = dist.collective(one, w, name)
                        ph = _search_phase(per_rank, bw, cx, state, o, dev)
                        ph["name"] = name
                        ph["metrics"]["procs"] = procs
                        ph["metrics"]["concurrency"] = procs * ph["metrics"]["searchers"]
                        res.add_phase(ph)
                        curve.append({"procs": procs, "beam_width": bw, "complexity": cx,
                                      "state": state,
                                      "queries_per_s": ph["metrics"]["queries_per_s"],
                                      "p99_us": (ph["latency_ns"].get("p99") or 0) / 1e3,
                                      "recall_at_10": ph["metrics"]["recall_at_10"]})
            clean = True
        finally:
            if f is not None:
                f.close(10.0 if clean else 0.0)
    res.metrics["procs_curve"] = curve
    res.metrics["max_procs_queries_per_s"] = max((c["queries_per_s"] for c in curve),
                                                 default=0.0)


def _empty() -> dict[str, Any]:
    now = time.time_ns()
    return {"queries": 0, "seconds": 0.0, "start_wall_ns": now, "end_wall_ns": now,
            "read_bytes": 0, "major_faults": 0, "hist": Histogram(),
            "found": np.empty((0, K), dtype=np.int64)}


def _ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _search_phase(per_rank: list[dict[str, Any]], bw: int, cx: int, state: str,
                  o: DiskannOptions, dev: str | None) -> dict[str, Any]:
    active = [r for r in per_rank if r["queries"]]
    nq = sum(r["queries"] for r in active)
    t0 = min(r["start_wall_ns"] for r in active)
    t1 = max(r["end_wall_ns"] for r in active)
    secs = (t1 - t0) / 1e9
    hist = Histogram.merged(Histogram.from_dict(r["hist"]) for r in active)
    rb = sum(r["read_bytes"] for r in active)
    m: dict[str, Any] = {
        "beam_width": bw, "complexity": cx, "state": state, "k": K,
        "queries_per_s": nq / secs if secs > 0 else 0.0,
        "recall_at_10": sum(r["hits"] for r in per_rank) / (nq * K) if nq else 0.0,
        "query_read_bytes": rb / nq if nq else 0.0,
        "reads_4k_per_query": rb / SECTOR / nq if nq else 0.0,
        "reads_source": "measured: /proc/self/io read_bytes delta of the searching "
                        "process(es), not the engine's own count",
        "searchers": len(active),
        # page faults that read from storage (memory pressure evicting the process's own
        # code or data) are counted in read_bytes too: nonzero means the figure is high
        "major_faults": sum(r.get("major_faults", 0) for r in active),
        "latency_unit": "per query (each search timed on its own)",
        "op_unit": "query",
        "byte_counter": verify.NO_COUNTER, "byte_counter_why": SEARCH_WHY,
    }
    if all("device_reads" in r for r in active) and dev:
        m["device"] = dev
        m["device_reads_per_query"] = sum(r["device_reads"] for r in active) / len(active) / nq
        m["query_device_bytes"] = sum(r["device_bytes"] for r in active) / len(active) / nq
        m["device_source"] = (f"measured: /proc/diskstats of {dev}, device-wide (other "
                              "processes' reads on the device are included)")
    ph = make_phase(f"search W={bw} L={cx} {state}", nbytes=rb, seconds=secs, ops=nq,
                    latency=hist, engine="diskann", direction="read", metrics=m)
    ph["start_wall_ns"], ph["end_wall_ns"] = t0, t1
    return ph


def _headline(res: Recorder, o: DiskannOptions) -> None:
    cells = [p for p in res.phases if p["name"].startswith("search ")]
    state = "cold" if "cold" in o.states else "warm"
    pool = [p for p in cells if p["metrics"]["state"] == state]
    budget_ns = o.latency_budget_s * 1e9
    ok = [p for p in pool if p["metrics"]["recall_at_10"] >= RECALL_TARGET
          and (p["latency_ns"].get("p99") or 0) <= budget_ns]
    res.metrics["recall_at_10"] = max((p["metrics"]["recall_at_10"] for p in cells),
                                      default=0.0)
    res.metrics["max_queries_per_s"] = max((p["metrics"]["queries_per_s"] for p in cells),
                                           default=0.0)
    res.metrics["latency_budget_us"] = o.latency_budget_s * 1e6
    good = [p for p in pool if p["metrics"]["recall_at_10"] >= RECALL_TARGET]
    if good:  # what the budget left out, so a miss still says what it would take
        res.metrics["best_at_recall"] = _setting(max(good, key=_qps), state)
    if not ok:
        res.metrics["queries_per_s"] = 0.0
        res.metrics["headline"] = None
        res.warnings.append(f"no {state} setting reached recall@10 >= {RECALL_TARGET} with "
                            f"p99 <= {o.latency_budget_s * 1e3:g} ms: give larger "
                            "--complexity values or a larger --latency-budget")
        return
    h = _setting(max(ok, key=_qps), state)
    res.metrics["queries_per_s"] = h["queries_per_s"]
    res.metrics["headline"] = h
    res.metrics["reads_per_query"] = h["reads_4k_per_query"]
    res.metrics["p99_us"] = h["p99_us"]


def _qps(p: dict[str, Any]) -> float:
    return float(p["metrics"]["queries_per_s"])


def _setting(p: dict[str, Any], state: str) -> dict[str, Any]:
    """One search setting as the headline (and best_at_recall) describe it."""
    m = p["metrics"]
    return {"state": state, "beam_width": m["beam_width"], "complexity": m["complexity"],
            "queries_per_s": m["queries_per_s"], "recall_at_10": m["recall_at_10"],
            "p99_us": (p["latency_ns"].get("p99") or 0) / 1e3,
            "reads_4k_per_query": m["reads_4k_per_query"],
            "query_read_bytes": m["query_read_bytes"]}


# --- mode 2 ---------------------------------------------------------------------------
def calibrate(path: str) -> dict[str, Any]:
    """hops, beam width and sector from a mode-1 result's headline setting."""
    from iobench import results

    r = results.load(path)
    if r.kind != "infer-vector" or r.engine != "diskann":
        raise UsageError(f"--calibrate {path}: not an `infer vector --engine diskann` result "
                         f"(it is {r.kind}, engine {r.engine})")
    h = r.metrics.get("headline")
    if not h:
        raise UsageError(f"--calibrate {path}: that run has no headline setting (none met "
                         f"recall@10 >= {RECALL_TARGET} within its latency budget); give "
                         "--hops and --beam-width")
    sector = int(r.spec.get("sector_bytes") or SECTOR)
    per_read = sector // SECTOR
    reads = float(h["reads_4k_per_query"]) / per_read
    beam = int(h["beam_width"])
    return {"beam_width": beam, "hops": max(1, round(reads / beam)), "sector": sector,
            "reads_per_query": reads, "from": str(path)}


def pattern_run(res: Recorder, tgt: target_mod.Target, o: PatternOptions, ctx: Ctx) -> None:
    from iobench.engines import batch, native

    w = ctx.world
    root = dist.root_first(lambda: tgt.subdir("vector/pattern"), w)
    path = root / f"index-{o.index_size}.dat"

    def lay_out() -> None:
        if path.is_symlink():
            raise UsageError(f"{path}: is a symlink; iobench never follows one in its target")
        if path.exists() and path.stat().st_size == o.index_size:
            return
        tgt.check_space(o.index_size, "the vector index file")
        # the index file laid out is untimed: the run's byte audit leaves it out
        with ctx.progress("layout", o.index_size) as prog, verify.untimed():
            native.layout([path], o.index_size, seed=LAYOUT_SEED, progress=prog)

    dist.collective(lambda: lay_out() if w.is_root else None, w, "layout")
    curve = []
    for c in o.concurrency:
        share = len(dist.split(c, w))

        def one(share: int = share) -> dict[str, Any]:
            if share == 0:
                now = time.time_ns()
                return {"queries": 0, "reads": 0, "bytes": 0, "seconds": 0.0,
                        "start_wall_ns": now, "end_wall_ns": now, "query_hist": {},
                        "read_hist": {}}
            out = batch.run_rounds(path, block_size=o.sector, rounds=o.hops,
                                   batch=o.beam_width, streams=share,
                                   runtime_s=o.runtime_s, seed=w.rank)
            out["queries"] = out.pop("streams")
            out["query_hist"] = out.pop("stream_hist").to_dict()
            out["read_hist"] = out["read_hist"].to_dict()
            return out

        w.barrier()
        per_rank = dist.collective(one, w, f"pattern concurrency {c}")
        ph = _pattern_phase(per_rank, c, o)
        sigs = [r["interrupted"] for r in per_rank if r.get("interrupted")]
        if sigs:  # the cell is kept (its queries finished), then the run stops as usual
            ph["metrics"]["interrupted"] = True
            if ph["ops"]:
                res.add_phase(ph)
            import signal

            from iobench.runner import Terminated

            raise Terminated() if sigs[0] == signal.SIGTERM else KeyboardInterrupt
        res.add_phase(ph)
        m = ph["metrics"]
        point = {"concurrency": c, "queries_per_s": m["queries_per_s"],
                 "p99_us": (ph["latency_ns"].get("p99") or 0) / 1e3,
                 "read_p99_us": (m["read_latency_ns"].get("p99") or 0) / 1e3,
                 "reads_per_s": m["reads_per_s"], "gb_per_s": ph["gb_per_s"]}
        if o.engine == "fio" and w.is_root:
            fph = _fio_beside(path, root, o, c)
            res.add_phase(fph)
            point["fio_reads_per_s"] = fph["ops_per_s"]
            point["fio_read_p99_us"] = (fph["latency_ns"].get("p99") or 0) / 1e3
        curve.append(point)
        res.metrics[f"c{c}.queries_per_s"] = point["queries_per_s"]
        res.metrics[f"c{c}.p99_us"] = point["p99_us"]
    res.metrics["curve"] = curve
    res.metrics["max_queries_per_s"] = max((p["queries_per_s"] for p in curve), default=0.0)
    res.metrics["queries_per_s"] = res.metrics["max_queries_per_s"]
    res.metrics["p99_us"] = max((p["p99_us"] for p in curve), default=0.0)
    res.metrics["read_p99_us"] = max((p["read_p99_us"] for p in curve), default=0.0)
    res.metrics["reads_per_query"] = o.hops * o.beam_width
    from iobench import cache as cache_mod

    res.cache = cache_mod.verdict("direct", "o_direct", o.index_size)


LAYOUT_SEED = 0x7EC  # the index file's content stream (incompressible, never deduplicated)


def _fio_beside(path: Path, root: Path, o: PatternOptions, c: int) -> dict[str, Any]:
    """fio randread (libaio, O_DIRECT) on the same file, same sector size, at the
    pattern's queue depth: per-read figures with no dependency between reads."""
    from iobench.engines import IOSpec, fio

    qd = c * o.beam_width
    io = IOSpec(pattern="randread", size=o.index_size, block_size=o.sector, files=(path,),
                jobs=1, queue_depth=qd, runtime=o.runtime_s, direct=True, ioengine="libaio")
    ph = fio.run(io, root)[0]
    ph["name"] = f"fio randread qd={qd}"
    ph["metrics"].update({"concurrency": c, "queue_depth": qd, "sector_bytes": o.sector,
                          "ioengine": "libaio",  # O_DIRECT AIO: read_bytes sees it
                          "what": "per-read figures at the pattern's queue depth (no "
                                  "dependency between reads)"})
    return ph


def _pattern_phase(per_rank: list[dict[str, Any]], c: int, o: PatternOptions
                   ) -> dict[str, Any]:
    active = [r for r in per_rank if r["queries"]] or per_rank
    t0 = min(r["start_wall_ns"] for r in active)
    t1 = max(r["end_wall_ns"] for r in active)
    secs = (t1 - t0) / 1e9
    qh = Histogram.merged(Histogram.from_dict(r["query_hist"]) for r in active
                          if r["query_hist"])
    rh = Histogram.merged(Histogram.from_dict(r["read_hist"]) for r in active
                          if r["read_hist"])
    nq = sum(r["queries"] for r in active)
    reads = sum(r["reads"] for r in active)
    nbytes = sum(r["bytes"] for r in active)
    m = {"concurrency": c, "hops": o.hops, "beam_width": o.beam_width,
         "sector_bytes": o.sector, "queries": nq, "reads": reads,
         "queries_per_s": nq / secs if secs > 0 else 0.0,
         "reads_per_query": reads / nq if nq else 0.0,
         "reads_per_s": reads / secs if secs > 0 else 0.0,
         "read_latency_ns": rh.summary(), "queue_depth": c * o.beam_width,
         "ranks": len(per_rank), "queue": active[0].get("queue", ""),
         "latency_unit": "per query (first submit to last completion of the last round)",
         "op_unit": "query"}
    ph = make_phase(f"pattern concurrency={c}", nbytes=nbytes, seconds=secs, ops=nq,
                    latency=qh, engine="native", direction="read", metrics=m)
    ph["read_histogram"] = rh.to_dict() if rh.count else None
    ph["start_wall_ns"], ph["end_wall_ns"] = t0, t1
    return ph
