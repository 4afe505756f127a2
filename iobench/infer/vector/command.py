"""The bodies of `iobench infer vector` (both modes) and its terminal tables.

The Click command lives in iobench/workloads/infer.py; it validates the input, then calls
`diskann_run` (mode 1) or `pattern_run` (mode 2) here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import RenderableType
from rich.table import Table

from iobench import dist
from iobench import target as target_mod
from iobench.errors import UsageError
from iobench.infer.vector import METRICS, SECTOR, K
from iobench.results import Recorder, make_phase
from iobench.stats import Histogram
from iobench.units import format_bytes, format_ns

RECALL_TARGET = 0.95


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


# --- validation (before anything is written) ----------------------------------------
def check_diskann(o: DiskannOptions) -> None:
    if o.dim <= 0:
        raise UsageError(f"--dim {o.dim}: must be >= 1 (embeddings are 768, 1024 or 1536)")
    if o.vectors <= 0:
        raise UsageError(f"--vectors {o.vectors}: must be >= 1, e.g. 100000")
    if o.queries <= 0:
        raise UsageError(f"--queries {o.queries}: must be >= 1, e.g. 1000")
    if o.vectors < 2 * K:
        raise UsageError(f"--vectors {o.vectors}: recall@{K} needs at least {2 * K} vectors")
    if o.metric not in METRICS:
        from iobench.errors import did_you_mean

        raise UsageError(f"--metric {o.metric!r}: unknown distance metric"
                         f"{did_you_mean(o.metric, METRICS)}")
    low = min(o.complexities)
    if low < K:
        raise UsageError(f"--complexity {low}: the search list must hold the {K} neighbours "
                         f"asked for; give {K} or more")
    if max(o.beam_widths) > low:
        raise UsageError(f"--beam-width {max(o.beam_widths)} is larger than --complexity "
                         f"{low}: a beam cannot be wider than the search list; give beam "
                         f"widths <= {low} or larger complexities")
    if o.graph_degree < 4 or o.build_complexity < o.graph_degree:
        raise UsageError(f"--graph-degree {o.graph_degree} / --build-complexity "
                         f"{o.build_complexity}: need degree >= 4 and build complexity >= "
                         "degree, e.g. 32 / 64")


def free_bytes_at(path: Path) -> int:
    """Free bytes of the filesystem that holds (or would hold) `path`."""
    from iobench.target import _expand

    p = _expand(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


# --- mode 1 ---------------------------------------------------------------------------
def _dataset_key(o: DiskannOptions) -> str:
    return f"d{o.dim}-n{o.vectors}-q{o.queries}-c{o.clusters}-s{o.seed}-{o.metric}"


def _build_key(o: DiskannOptions) -> str:
    return f"R{o.graph_degree}-L{o.build_complexity}-pq{o.pq_bytes}"


def estimate_bytes(o: DiskannOptions) -> int:
    """Vectors + queries + ground truth + the disk index (nodes in whole sectors) + PQ."""
    from iobench.infer.vector.engine import node_bytes

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
    from iobench.infer.vector import data, engine

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
    idx = root / f"index-{_build_key(o)}"
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
        secs = engine.build(vectors, idx, o.vectors, o.dim, bp, log)
        files = engine.index_files(idx)
        built = {"build_seconds": secs, "graph_degree": o.graph_degree,
                 "build_complexity": o.build_complexity, "pq_bytes": o.pq_bytes,
                 "threads": bp.threads,
                 "index_bytes": sum(p.stat().st_size for p in files),
                 "disk_index_bytes": engine.disk_index(idx).stat().st_size,
                 "files": {p.name: p.stat().st_size for p in files}}
        data.write_json(idx / "build.json", built)
        built["reused"] = False
    else:
        built["reused"] = True
    return {"dataset": info, "build": built, "index_dir": str(idx)}


def diskann_run(res: Recorder, tgt: target_mod.Target, o: DiskannOptions) -> None:
    from iobench.infer.vector import data, engine

    w = dist.world()
    root = dist.root_first(lambda: tgt.subdir(f"vector/diskann/{_dataset_key(o)}"), w)
    log = _log_path(res, w, root)
    prep = dist.root_first_value(lambda: prepare_dataset(o, tgt, root, log), w)
    idx = Path(prep["index_dir"])
    build = prep["build"]
    res.metrics.update({"build_seconds": build["build_seconds"],
                        "index_bytes": build["index_bytes"],
                        "disk_index_bytes": build["disk_index_bytes"],
                        "index_reused": build["reused"],
                        "ground_truth_seconds": prep["dataset"]["ground_truth_seconds"]})
    res.spec["dataset"] = prep["dataset"]
    res.spec["build"] = build
    res.spec["sector_bytes"] = engine.sector_bytes(o.dim, o.graph_degree)
    res.spec["log"] = str(log)
    if not build["reused"]:
        res.add_phase(make_phase("build", nbytes=build["index_bytes"],
                                 seconds=build["build_seconds"], ops=1, direction="write",
                                 engine="diskann", metrics={"what": "DiskANN disk index "
                                                            "build (graph + PQ + layout)"}))
    queries = data.load_array(root / "queries.npy")
    truth = data.load_array(root / "truth_ids.npy")
    mine = list(dist.split(len(queries), w))
    q_mine, t_mine = queries[mine], truth[mine]
    searcher = engine.Searcher(idx, o.metric, o.dim, o.cache_nodes, log)
    try:
        _sweep(res, o, searcher, idx, q_mine, t_mine, bool(mine), w)
    finally:
        searcher.close()
    _headline(res, o)
    faulted = [p["name"] for p in res.phases if p.get("metrics", {}).get("major_faults")]
    if faulted:
        res.warnings.append(f"{len(faulted)} search pass(es) took major page faults (memory "
                            "pressure): their measured read bytes include those page-fault "
                            f"reads, so reads per query are overstated there: {faulted[:4]}")


def _sweep(res: Recorder, o: DiskannOptions, searcher: Any, idx: Path, q_mine: np.ndarray,
           t_mine: np.ndarray, mine: bool, w: dist.World) -> None:
    from iobench.infer.vector import data, engine

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
        "qps": nq / secs if secs > 0 else 0.0,
        "recall_at_10": sum(r["hits"] for r in per_rank) / (nq * K) if nq else 0.0,
        "read_bytes_per_query": rb / nq if nq else 0.0,
        "reads_4k_per_query": rb / SECTOR / nq if nq else 0.0,
        "reads_source": "measured: /proc/self/io read_bytes delta of the searching "
                        "process(es), not the engine's own count",
        "searchers": len(active),
        # page faults that read from storage (memory pressure evicting the process's own
        # code or data) are counted in read_bytes too: nonzero means the figure is high
        "major_faults": sum(r.get("major_faults", 0) for r in active),
        "latency_unit": "per query (each search timed on its own)",
    }
    if all("device_reads" in r for r in active) and dev:
        m["device"] = dev
        m["device_reads_per_query"] = sum(r["device_reads"] for r in active) / len(active) / nq
        m["device_bytes_per_query"] = sum(r["device_bytes"] for r in active) / len(active) / nq
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
    res.metrics["max_qps"] = max((p["metrics"]["qps"] for p in cells), default=0.0)
    res.metrics["latency_budget_ms"] = o.latency_budget_s * 1e3
    good = [p for p in pool if p["metrics"]["recall_at_10"] >= RECALL_TARGET]
    if good:  # what the budget left out, so a miss still says what it would take
        b = max(good, key=lambda p: p["metrics"]["qps"])
        res.metrics["best_at_recall"] = {
            "beam_width": b["metrics"]["beam_width"], "complexity": b["metrics"]["complexity"],
            "qps": b["metrics"]["qps"], "recall_at_10": b["metrics"]["recall_at_10"],
            "p99_ms": (b["latency_ns"].get("p99") or 0) / 1e6,
            "reads_4k_per_query": b["metrics"]["reads_4k_per_query"]}
    if not ok:
        res.metrics["qps"] = 0.0
        res.metrics["headline"] = None
        res.warnings.append(f"no {state} setting reached recall@10 >= {RECALL_TARGET} with "
                            f"p99 <= {o.latency_budget_s * 1e3:g} ms: give larger "
                            "--complexity values or a larger --latency-budget")
        return
    best = max(ok, key=lambda p: p["metrics"]["qps"])
    m = best["metrics"]
    res.metrics["qps"] = m["qps"]
    res.metrics["headline"] = {
        "state": state, "beam_width": m["beam_width"], "complexity": m["complexity"],
        "qps": m["qps"], "recall_at_10": m["recall_at_10"],
        "p99_ms": (best["latency_ns"].get("p99") or 0) / 1e6,
        "reads_4k_per_query": m["reads_4k_per_query"],
        "read_bytes_per_query": m["read_bytes_per_query"]}
    res.metrics["reads_per_query"] = m["reads_4k_per_query"]
    res.metrics["p99_ms"] = res.metrics["headline"]["p99_ms"]


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


def pattern_run(res: Recorder, tgt: target_mod.Target, o: PatternOptions) -> None:
    from iobench.infer.vector import pattern

    w = dist.world()
    root = dist.root_first(lambda: tgt.subdir("vector/pattern"), w)
    path = root / f"index-{o.index_size}.dat"

    def lay_out() -> None:
        if path.is_symlink():
            raise UsageError(f"{path}: is a symlink; iobench never follows one in its target")
        if path.exists() and path.stat().st_size == o.index_size:
            return
        tgt.check_space(o.index_size, "the vector index file")
        pattern.layout(path, o.index_size)

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
            out = pattern.run(path, sector=o.sector, hops=o.hops, beam_width=o.beam_width,
                              concurrency=share, runtime_s=o.runtime_s, seed=w.rank)
            out["query_hist"] = out["query_hist"].to_dict()
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
        point = {"concurrency": c, "qps": m["qps"],
                 "p99_ms": (ph["latency_ns"].get("p99") or 0) / 1e6,
                 "read_p99_us": (m["read_latency_ns"].get("p99") or 0) / 1e3,
                 "iops": m["read_iops"], "gb_per_s": ph["gb_per_s"]}
        if o.engine == "fio" and w.is_root:
            from iobench.infer import randread as rr

            fph = rr.fio_cell([path], o.sector, c * o.beam_width, o.runtime_s, True,
                              "libaio", o.index_size, root)
            fph["name"] = f"fio randread qd={c * o.beam_width}"
            fph["metrics"].update({"concurrency": c, "queue_depth": c * o.beam_width,
                                   "what": "per-read figures at the pattern's queue depth "
                                           "(no dependency between reads)"})
            res.add_phase(fph)
            point["fio_iops"] = fph["ops_per_s"]
            point["fio_read_p99_us"] = (fph["latency_ns"].get("p99") or 0) / 1e3
        curve.append(point)
        res.metrics[f"c{c}.qps"] = point["qps"]
        res.metrics[f"c{c}.p99_ms"] = point["p99_ms"]
    res.metrics["curve"] = curve
    res.metrics["max_qps"] = max((p["qps"] for p in curve), default=0.0)
    res.metrics["qps"] = res.metrics["max_qps"]
    res.metrics["p99_ms"] = max((p["p99_ms"] for p in curve), default=0.0)
    res.metrics["read_p99_us"] = max((p["read_p99_us"] for p in curve), default=0.0)
    res.metrics["reads_per_query"] = o.hops * o.beam_width
    from iobench import cache as cache_mod

    res.cache = cache_mod.verdict("direct", "o_direct", o.index_size)


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
    m = {"concurrency": c, "hops": o.hops, "beam_width": o.beam_width, "sector": o.sector,
         "queries": nq, "reads": reads, "qps": nq / secs if secs > 0 else 0.0,
         "reads_per_query": reads / nq if nq else 0.0,
         "read_iops": reads / secs if secs > 0 else 0.0,
         "read_latency_ns": rh.summary(), "queue_depth": c * o.beam_width,
         "ranks": len(per_rank), "latency_unit": "per query (first submit to last "
                                                 "completion of the last round)"}
    ph = make_phase(f"pattern concurrency={c}", nbytes=nbytes, seconds=secs, ops=nq,
                    latency=qh, engine="native", direction="read", metrics=m)
    ph["read_histogram"] = rh.to_dict() if rh.count else None
    ph["start_wall_ns"], ph["end_wall_ns"] = t0, t1
    return ph


# --- tables ---------------------------------------------------------------------------
def _without_budget(b: dict[str, Any] | None) -> str:
    if not b:
        return ""
    return (f" (best at that recall, any p99: {b['qps']:.1f} QPS at W={b['beam_width']} "
            f"L={b['complexity']}, p99 {b['p99_ms']:.2f} ms)")


def tables(result: Recorder) -> list[RenderableType]:
    out: list[RenderableType] = []
    if result.engine == "diskann":
        t = Table(title="DiskANN search (diskannpy StaticDiskIndex): one row per beam width x "
                        "complexity x cache state", title_justify="left")
        for col in ("W", "L", "state", "QPS", "recall@10", "p50", "p99", "p99.9",
                    "4 KiB reads/q", "KiB read/q"):
            t.add_column(col, justify="left" if col == "state" else "right")
        for p in result.phases:
            m = p.get("metrics", {})
            if "recall_at_10" not in m:
                continue
            lat = p["latency_ns"]
            t.add_row(str(m["beam_width"]), str(m["complexity"]), m["state"],
                      f"{m['qps']:.1f}", f"{m['recall_at_10']:.3f}", format_ns(lat.get("p50")),
                      format_ns(lat.get("p99")), format_ns(lat.get("p99_9")),
                      f"{m['reads_4k_per_query']:.1f}",
                      f"{m['read_bytes_per_query'] / 1024:.1f}")
        h = result.metrics.get("headline")
        t.caption = ("QPS = queries/s; latency per query; reads measured from /proc/self/io "
                     "(not DiskANN's own count). Headline: " +
                     (f"{h['qps']:.1f} QPS at W={h['beam_width']} L={h['complexity']} "
                      f"({h['state']}), recall@10 {h['recall_at_10']:.3f}, p99 "
                      f"{h['p99_ms']:.2f} ms, {h['reads_4k_per_query']:.1f} reads/query"
                      if h else f"no setting met recall@10 >= {RECALL_TARGET} within "
                      f"{result.metrics.get('latency_budget_ms', 0):g} ms p99" +
                      _without_budget(result.metrics.get("best_at_recall"))) +
                     f". Build {result.metrics.get('build_seconds', 0):.1f} s"
                     f"{' (reused)' if result.metrics.get('index_reused') else ''}, index "
                     f"{format_bytes(result.metrics.get('index_bytes', 0))}.")
        out.append(t)
        return out
    t = Table(title="DiskANN read pattern (no engine): QPS vs p99 over concurrency",
              title_justify="left")
    for col in ("queries in flight", "QPS", "query p50", "query p99", "read p50", "read p99",
                "read IOPS", "GB/s", "fio IOPS", "fio read p99"):
        t.add_column(col, justify="right")
    fio = {p["metrics"].get("concurrency"): p for p in result.phases
           if p["name"].startswith("fio ")}
    for p in result.phases:
        m = p.get("metrics", {})
        if not p["name"].startswith("pattern"):
            continue
        f = fio.get(m["concurrency"])
        t.add_row(str(m["concurrency"]), f"{m['qps']:.1f}", format_ns(p["latency_ns"]["p50"]),
                  format_ns(p["latency_ns"]["p99"]), format_ns(m["read_latency_ns"]["p50"]),
                  format_ns(m["read_latency_ns"]["p99"]), f"{m['read_iops']:.0f}",
                  f"{p['gb_per_s']:.3f}", f"{f['ops_per_s']:.0f}" if f else "-",
                  format_ns(f["latency_ns"].get("p99")) if f else "-")
    sp = result.spec
    t.caption = (f"{sp.get('hops')} rounds x {sp.get('beam_width')} reads of "
                 f"{format_bytes(sp.get('sector', SECTOR))} per query (O_DIRECT, Linux AIO); "
                 "QPS = queries/s; GB/s = 10^9 B/s; fio: randread at queue depth = queries "
                 "in flight x beam width")
    out.append(t)
    return out

