"""`iobench infer vector`: input checks (one line, exit 2, nothing written), spec, run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iobench import dist
from iobench import target as target_mod
from iobench.errors import TargetError, UsageError
from iobench.infer.vector import SECTOR
from iobench.infer.vector import command as cmd
from iobench.results import Recorder
from iobench.runner import execute
from iobench.units import format_bytes

DIAG_BEAMS = [2, 4, 8]


def _space(target: Path, need: int, what: str) -> None:
    free = cmd.free_bytes_at(target)
    if need > free:
        raise TargetError(f"--target {target}: {what} needs {format_bytes(need)} ({need} bytes) "
                          f"but only {format_bytes(free)} ({free} bytes) are free; free space "
                          "or give a smaller size")


def run(target: Path, json_out: bool, results_dir: Path, force: bool, engine: str,
        **kw: Any) -> None:
    w = dist.world()
    if engine == "diskann":
        _diskann(target, json_out, results_dir, force, w, **kw)
    else:
        _pattern(target, json_out, results_dir, force, engine, w, **kw)


def _states(text: str) -> list[str]:
    out = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in out if s not in ("cold", "warm")]
    if bad or not out:
        raise UsageError(f"--states {text!r}: give cold, warm or cold,warm")
    return list(dict.fromkeys(out))


def _diskann(target: Path, json_out: bool, results_dir: Path, force: bool, w: dist.World,
             **kw: Any) -> None:
    dim, n = kw["dim"], kw["vectors"]
    clusters = kw["clusters"] or 0
    o = cmd.DiskannOptions(
        dim=dim, vectors=n, queries=kw["queries"], metric=kw["metric"],
        clusters=clusters, graph_degree=kw["graph_degree"],
        build_complexity=kw["build_complexity"],
        pq_bytes=kw["pq_bytes"] or max(1, min(dim, dim // 8 if dim >= 64 else dim)),
        beam_widths=list(kw["beam_width"] or DIAG_BEAMS), complexities=list(kw["complexity"]),
        states=_states(kw["states"]), latency_budget_s=kw["latency_budget"],
        cache_nodes=kw["cache_nodes"])
    cmd.check_diskann(o)
    if clusters < 0:
        raise UsageError(f"--clusters {clusters}: give 1 or more, or 0 for automatic")
    if o.pq_bytes > dim:
        raise UsageError(f"--pq-bytes {o.pq_bytes}: at most --dim ({dim}) bytes per vector")
    if kw["latency_budget"] <= 0:
        raise UsageError("--latency-budget must be > 0, e.g. 10ms")
    if o.clusters == 0:
        from iobench.infer.vector.data import default_clusters

        o.clusters = default_clusters(n)
    from iobench.infer.vector import engine as eng

    eng.diskannpy()  # missing extra: one line before anything is written
    done = (target / "vector" / "diskann" / cmd._dataset_key(o) / "dataset.json").is_file()
    if not done:
        _space(target, cmd.estimate_bytes(o), "the vector data set and its DiskANN index")
    tgt = dist.root_first(lambda: target_mod.prepare(target, force), w)
    spec: dict[str, Any] = {k: v for k, v in o.__dict__.items()}
    spec["engine"] = "diskann"
    spec["recall_target"] = cmd.RECALL_TARGET
    if w.size > 1:
        spec["ranks"] = w.size
    result = Recorder("infer-vector", "diskann", spec=spec, engine="diskann")
    execute(result, lambda res: cmd.diskann_run(res, tgt, o), results_dir=results_dir,
            json_out=json_out, target=tgt.root)


MAX_HOPS = 4096  # DiskANN-like searches take tens of rounds; a stop waits for a query


def _pattern(target: Path, json_out: bool, results_dir: Path, force: bool, engine: str,
             w: dist.World, **kw: Any) -> None:
    size = kw["index_size"]
    path = target / "vector" / "pattern" / f"index-{size}.dat"
    have = path.is_file() and not path.is_symlink() and path.stat().st_size == size
    if not have:  # checked first: nothing else is looked at, nothing is written
        _space(target, size, f"the --index-size {format_bytes(size)} index file")
    cal = cmd.calibrate(str(kw["calibrate"])) if kw["calibrate"] else None
    beams = kw["beam_width"]
    if beams is not None and len(beams) != 1:
        raise UsageError(f"--beam-width {','.join(map(str, beams))}: the pattern takes one "
                         "beam width (sweep --concurrency instead)")
    beam = beams[0] if beams else (cal["beam_width"] if cal else 4)
    hops = kw["hops"] if kw["hops"] is not None else (cal["hops"] if cal else 16)
    sector = kw["sector"] if kw["sector"] is not None else (cal["sector"] if cal else SECTOR)
    if not 1 <= hops <= MAX_HOPS:  # a query in flight always finishes: bound its length
        raise UsageError(f"--hops {hops}: give 1 to {MAX_HOPS} (rounds of reads per query)")
    if sector % 4096:
        raise UsageError(f"--sector {sector}: O_DIRECT reads need a multiple of 4096; give "
                         "4k or 8k")
    if size < sector * beam:
        raise UsageError(f"--index-size {format_bytes(size)}: smaller than one round of "
                         f"{beam} x {format_bytes(sector)}; give a larger --index-size")
    if kw["runtime"] <= 0:
        raise UsageError("--runtime must be > 0, e.g. 5s")
    if engine == "fio":
        from iobench.engines.fio import fio_binary

        fio_binary()
    from iobench.engines import aio

    if not aio.available():
        raise UsageError("the vector pattern needs Linux native AIO (io_setup failed here); "
                         "check /proc/sys/fs/aio-max-nr or run on Linux")
    o = cmd.PatternOptions(index_size=size, sector=sector, hops=hops, beam_width=beam,
                           concurrency=list(kw["concurrency"]), runtime_s=kw["runtime"],
                           engine=engine, calibrated_from=cal["from"] if cal else None)
    tgt = dist.root_first(lambda: target_mod.prepare(target, force), w)
    spec: dict[str, Any] = dict(o.__dict__)
    if cal:
        spec["calibration"] = cal
    if w.size > 1:
        spec["ranks"] = w.size
    result = Recorder("infer-vector", "pattern", spec=spec, engine=engine)
    execute(result, lambda res: cmd.pattern_run(res, tgt, o), results_dir=results_dir,
            json_out=json_out, target=tgt.root)
