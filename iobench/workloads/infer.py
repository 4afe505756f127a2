"""`iobench infer randread` (small random reads) and `iobench infer load` (model weights)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import RenderableType
from rich.table import Table

from iobench import cache as cache_mod
from iobench import dist
from iobench import target as target_mod
from iobench.cli import (
    DURATION,
    INT_LIST,
    MAX_THREADS,
    SIZE,
    SIZE0,
    SIZE_LIST,
    cache_option,
    check_open_files,
    cli,
    common_run_options,
    engine_option,
)
from iobench.errors import UsageError, did_you_mean
from iobench.report import terminal
from iobench.report.progress import ByteProgress
from iobench.results import Recorder, Result, make_phase
from iobench.runner import execute
from iobench.units import format_bytes, format_count, format_ns, parse_list

DEFAULT_PRECISIONS = {"safetensors": "bf16,fp8,int4", "gguf": "bf16,int8,int4"}
DEFAULT_METHODS = {"safetensors": "read,pread,direct,mmap,safetensors",
                   "gguf": "read,pread,direct,mmap,gguf"}


@cli.group("infer")
def infer() -> None:
    """Inference I/O: small random reads, and model-weight loading (safetensors, GGUF)."""


# --- randread ----------------------------------------------------------------------------
@infer.command("randread")
@common_run_options
@engine_option
@cache_option("direct")
@click.option("--file-size", type=SIZE, default="1GiB", show_default=True,
              help="Size of each file of the set (random content, made once, reused).")
@click.option("--files", "nfiles", type=click.IntRange(min=1, max=MAX_THREADS), default=4,
              show_default=True)
@click.option("--block-size", "-b", type=SIZE_LIST, default="4k,16k,64k,128k",
              show_default=True, help="Block sizes to sweep.")
@click.option("--queue-depth", "-q", type=INT_LIST, default="1,4,16,64", show_default=True,
              help="I/Os in flight (native: threads; fio: iodepth of one job).")
@click.option("--runtime", type=DURATION, default="5s", show_default=True,
              help="Time per cell.")
@click.option("--ioengine", type=click.Choice(["io_uring", "libaio"]), default="libaio",
              show_default=True, help="fio's engine (--engine fio).")
def randread_cmd(target: Path, json_out: bool, results_dir: Path, force: bool, engine: str,
                 cache: str, file_size: int, nfiles: int, block_size: list[int],
                 queue_depth: list[int], runtime: float, ioengine: str) -> None:
    """Random reads: one cell per block size x queue depth (IOPS, GB/s, latency)."""
    from iobench.infer import randread as rr

    direct = cache == "direct"
    rr.check(block_size, file_size, direct)
    check_open_files(nfiles, "--files")
    if max(queue_depth) > MAX_THREADS:
        raise UsageError(f"--queue-depth {max(queue_depth)}: at most {MAX_THREADS} I/Os in "
                         "flight per cell")
    if runtime <= 0:
        raise UsageError("--runtime must be > 0 for the sweep, e.g. 5s")
    if engine == "fio":
        from iobench.engines.fio import fio_binary

        fio_binary()  # missing fio: one line, before anything is written
    w = dist.world()

    def prepare() -> target_mod.Target:  # on rank 0 first: bad input is reported once
        if nfiles < w.size:
            raise UsageError(f"--files {nfiles}: under mpirun each of the {w.size} ranks "
                             f"reads its own files; give --files {w.size} or more")
        return target_mod.prepare(target, force)

    tgt = dist.root_first(prepare, w)
    spec = {"file_size": file_size, "files": nfiles, "block_sizes": block_size,
            "queue_depths": queue_depth, "runtime_s": runtime, "cache": cache,
            "engine": engine, "ioengine": ioengine if engine == "fio" else None}
    if w.size > 1:
        spec["ranks"] = w.size
    result = Recorder("infer-randread", "randread", spec=spec, engine=engine)

    def body(res: Recorder) -> None:
        root = dist.root_first(lambda: tgt.subdir("infer/randread"), w)
        every = rr.file_set(root, nfiles)
        # under mpirun rank r lays out and reads its own files (dist.split), and runs its
        # share of each cell's queue depth; the cells are merged (IOPS over all ranks)
        mine = list(dist.split(nfiles, w))
        paths = [every[i] for i in mine]

        def lay_out() -> None:
            missing = [i for i in mine
                       if not every[i].exists() or every[i].stat().st_size != file_size]
            if not missing:
                return
            tgt.check_space(file_size * len(missing), "the random-read file set")
            from iobench.engines import native

            with ByteProgress("layout", file_size * len(missing),
                              enabled=False if json_out else None) as prog:
                for i in missing:  # stream i: no two files share a block, whoever lays out
                    native.layout([every[i]], file_size, progress=prog, first_stream=i)

        dist.collective(lay_out, w, "layout")
        method = "o_direct"
        for bs in block_size:
            for qd in queue_depth:
                methods = dist.collective(lambda: cache_mod.prepare(cache, paths), w,
                                          f"cache {cache}")
                method = methods[0]
                threads = len(dist.split(qd, w))

                def cell(bs: int = bs, qd: int = qd, threads: int = threads) -> list[dict]:
                    start = dist.wall_from_mono(time.monotonic_ns())
                    if threads == 0:  # fewer I/Os in flight than ranks: this one idles
                        ph = make_phase(rr.cell_name(bs, qd), nbytes=0, seconds=0.0, ops=0,
                                        engine=engine, direction="read")
                    elif engine == "fio":
                        ph = rr.fio_cell(paths, bs, threads, runtime, direct, ioengine,
                                         file_size, root)
                        ph["name"] = rr.cell_name(bs, qd)
                    else:
                        ph = rr.native_cell(paths, bs, threads, runtime, direct, seed=w.rank)
                        ph["name"] = rr.cell_name(bs, qd)
                    if w.size > 1:
                        dist.stamp(ph, start, dist.wall_from_mono(time.monotonic_ns()))
                    return [ph]

                ph = dist.combine(cell, w, rr.cell_name(bs, qd))[0] if w.size > 1 \
                    else cell()[0]
                # the merged phase keeps rank 0's metrics: the cell's are all ranks'
                ph["metrics"].update({"block_size": bs, "queue_depth": qd, "direct": direct})
                if w.size > 1:
                    ph["metrics"].update({"threads" if engine == "native" else "iodepth": qd,
                                          "files": nfiles})
                    if engine == "fio":
                        ph["metrics"]["ioengine"] = ioengine
                res.add_phase(ph)
                key = f"randread.bs{bs}.qd{qd}"
                res.metrics[f"{key}.iops"] = ph["ops_per_s"]
                res.metrics[f"{key}.gb_per_s"] = ph["gb_per_s"]
                res.metrics[f"{key}.p99_us"] = (ph["latency_ns"].get("p99") or 0) / 1e3
        res.cache = cache_mod.verdict(cache, method, file_size * nfiles, rereads=True)
        res.metrics["max_iops"] = max((p["ops_per_s"] for p in res.phases), default=0.0)
        # the grid's worst tail: what `randread.p99_us <= 500` in a suite holds to
        p99s = [(p["latency_ns"].get("p99") or 0) / 1e3 for p in res.phases]
        res.metrics["p99_us"] = max(p99s, default=0.0)
        res.metrics["p99_9_us"] = max(((p["latency_ns"].get("p99_9") or 0) / 1e3
                                       for p in res.phases), default=0.0)

    execute(result, body, results_dir=results_dir, json_out=json_out, target=tgt.root)


def randread_tables(result: Result) -> list[RenderableType]:
    """Rows: block size; columns: queue depth, each 'IOPS / p99'."""
    cells = [p for p in result.phases if "block_size" in p.get("metrics", {})]
    bss = sorted({p["metrics"]["block_size"] for p in cells})
    qds = sorted({p["metrics"]["queue_depth"] for p in cells})
    t = Table(title=f"Random reads ({result.engine}): IOPS / p99 latency", title_justify="left")
    t.add_column("block size")
    for qd in qds:
        t.add_column(f"QD {qd}", justify="right")
    for bs in bss:
        row = [format_bytes(bs)]
        for qd in qds:
            p = next((c for c in cells if c["metrics"]["block_size"] == bs
                      and c["metrics"]["queue_depth"] == qd), None)
            row.append("-" if p is None else
                       f"{format_count(p['ops_per_s'])} / {format_ns(p['latency_ns'].get('p99'))}")
        t.add_row(*row)
    t.caption = "IOPS = reads/s; p99 of per-read latency; GB/s and p50..max per cell above"
    return [t]


terminal.register("infer-randread", randread_tables)


# --- load -----------------------------------------------------------------------------------
def _words(text: str, what: str, choices: tuple[str, ...]) -> list[str]:
    def one(item: str, w: str) -> str:
        if item not in choices:
            raise UsageError(f"{w} {item!r}: unknown value{did_you_mean(item, choices)}")
        return item

    out = parse_list(text, one, what)
    return list(dict.fromkeys(out))


@infer.command("load")
@click.argument("model_name", metavar="MODEL")
@common_run_options
@click.option("--precision", "-p", default=None,
              help="Comma list of bf16,fp16,fp8,int8,int4 [safetensors: bf16,fp8,int4; "
                   "gguf: bf16,int8,int4].")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "gguf"]),
              default="safetensors", show_default=True)
@click.option("--method", "-m", default=None,
              help="Comma list of read,pread,direct,mmap,safetensors (gguf: gguf instead of "
                   "safetensors) [all of them].")
@click.option("--threads", "-t", type=click.IntRange(min=1, max=1024), default=8, show_default=True,
              help="Reader threads for pread/direct.")
@click.option("--chunk", type=SIZE, default="16MiB", show_default=True,
              help="Bytes per read for pread/direct (and the --discard buffer).")
@click.option("--replicas", type=click.IntRange(min=1, max=1024), default=1, show_default=True,
              help="Also run R processes cold-loading the same model at once.")
@click.option("--cold/--warm", "cold", default=None,
              help="Only cold (page cache dropped) or only warm (files cached) loads "
                   "[both].")
@click.option("--discard", is_flag=True,
              help="Read into bounded per-thread buffers (measures storage, not RAM).")
@click.option("--what-if", is_flag=True,
              help="Print the files, tensor counts and bytes per precision; write nothing.")
def load_cmd(model_name: str, target: Path, json_out: bool, results_dir: Path, force: bool,
             precision: str | None, fmt: str, method: str | None, threads: int, chunk: int,
             replicas: int, cold: bool | None, discard: bool, what_if: bool) -> None:
    """Load MODEL's weights (a preset in workloads/inference/ or a YAML path)."""
    from iobench.infer import files as files_mod
    from iobench.infer import load as load_mod
    from iobench.infer import model as model_mod
    from iobench.infer.layouts import PRECISIONS, check_precision

    m = model_mod.load(model_name)
    precisions = _words(precision or DEFAULT_PRECISIONS[fmt], "--precision", PRECISIONS)
    for pr in precisions:
        check_precision(pr, fmt)
    methods = _words(method or DEFAULT_METHODS[fmt], "--method", load_mod.METHODS)
    load_mod.check_methods(methods, fmt)
    plans = [files_mod.plan(m, pr, fmt) for pr in precisions]
    if what_if:
        _what_if(m, plans, target, json_out)
        return
    states = ["cold", "warm"] if cold is None else (["cold"] if cold else ["warm"])
    opts = load_mod.LoadOptions(threads=threads, chunk=chunk, discard=discard)
    w = dist.world()
    tgt = dist.root_first(lambda: target_mod.prepare(target, force), w)
    spec = {"model": m.name, "format": fmt, "precisions": precisions, "methods": methods,
            "threads": threads, "chunk": chunk, "replicas": replicas, "states": states,
            "discard": discard, "model_spec": {k: v for k, v in m.__dict__.items()}}
    if w.size > 1:
        spec["ranks"] = w.size
    result = Recorder("infer-load", m.name, spec=spec, engine="native")

    def body(res: Recorder) -> None:
        root = dist.root_first(lambda: tgt.subdir(f"infer/models/{m.name}"), w)

        def write_weights() -> None:  # rank 0 writes; the others read what it wrote
            todo = [p for p in plans if not files_mod.is_complete(p, root)]
            need = sum(p.total_bytes for p in todo)
            if todo:
                tgt.check_space(need, f"the {m.name} weight files")
                with ByteProgress("write weights", need,
                                  enabled=False if json_out else None) as pg:
                    for p in todo:
                        files_mod.write(p, root, progress=pg)

        if w.size > 1:
            dist.collective(lambda: write_weights() if w.is_root else None, w, "write weights")
        else:
            write_weights()
        cache_method = "none"
        base = plans[0].total_bytes
        for p in plans:
            paths = files_mod.paths(p, root)
            for meth in methods:
                for state in states:
                    def one(state: str = state, meth: str = meth,
                            paths: list[Path] = paths) -> tuple[str, Any]:
                        # one process loading the model: under mpirun rank 0 measures it
                        # while the other ranks wait (the replicas below use every rank)
                        if not w.is_root:
                            return "none", None
                        if state == "cold":
                            method = cache_mod.prepare("drop", paths)
                        else:
                            method = "none"
                            load_mod.warm(paths)
                        return method, load_mod.load(meth, paths, fmt, opts)

                    if w.size > 1:
                        got, st = dist.collective(one, w, f"load {p.precision} {meth}")[0]
                    else:
                        got, st = one()
                    if state == "cold":
                        cache_method = got
                    name = f"load {p.precision} {meth} {state}"
                    ph = make_phase(name, nbytes=st.bytes, seconds=st.seconds, ops=st.ops,
                                    latency=st.latency, engine="native", direction="read",
                                    metrics={
                                        "precision": p.precision, "method": meth,
                                        "state": state, "format": fmt,
                                        "tensors": st.tensors, "files": len(paths),
                                        "first_tensor_s": st.first_tensor_s,
                                        "bytes_read": st.bytes_read,
                                        "buffer_bytes": st.peak_buffer_bytes,
                                        "size_ratio": p.total_bytes / base,
                                        "latency_unit": ("per read" if meth in
                                                         ("read", "pread", "direct")
                                                         else "per tensor"),
                                        # mmap (and gguf's memmap) fault pages in and read
                                        # one byte of each: not bytes copied
                                        "throughput_kind": (
                                            "touched bytes/s" if meth in ("mmap", "gguf")
                                            else "bytes moved/s"),
                                    })
                    res.add_phase(ph)
                    key = f"load.{p.precision}.{meth}.{state}"
                    res.metrics[f"{key}.seconds"] = st.seconds
                    res.metrics[f"{key}.gb_per_s"] = st.bytes_per_s / 1e9
                    res.metrics[f"{key}.first_tensor_s"] = st.first_tensor_s
                    if "load.seconds" not in res.metrics:
                        res.metrics["load.seconds"] = st.seconds
                        res.metrics["load.gb_per_s"] = st.bytes_per_s / 1e9
                if replicas > 1:
                    cache_method, r = _replicas(w, meth, paths, fmt, opts, replicas)
                    ready = r["ready_ns"]
                    ph = make_phase(f"load {p.precision} {meth} x{replicas} replicas cold",
                                    nbytes=r["bytes"], seconds=r["seconds"], ops=r["ops"],
                                    latency=r["latency"], engine="native", direction="read",
                                    metrics={"precision": p.precision, "method": meth,
                                             "state": "cold", "format": fmt,
                                             "replicas": replicas,
                                             "ready_p50_s": ready.percentile(50) / 1e9,
                                             "ready_p99_s": ready.percentile(99) / 1e9,
                                             "ready_max_s": (ready.max or 0) / 1e9,
                                             "aggregate_gb_per_s": r["bytes"] / r["seconds"]
                                             / 1e9 if r["seconds"] else 0.0})
                    if w.size > 1:
                        ph["metrics"]["ranks"] = w.size
                        ph["metrics"]["replicas_per_rank"] = r["replicas_per_rank"]
                    res.add_phase(ph)
                    key = f"load.{p.precision}.{meth}.replicas{replicas}"
                    res.metrics[f"{key}.aggregate_gb_per_s"] = ph["metrics"]["aggregate_gb_per_s"]
                    res.metrics[f"{key}.ready_p99_s"] = ph["metrics"]["ready_p99_s"]
        total = sum(p.total_bytes for p in plans)
        res.cache = cache_mod.verdict("drop", cache_method, total, rereads="warm" in states)
        if "warm" in states:
            res.warnings.append("warm loads read files the page cache holds by design: they "
                                "measure memory and the loader, not storage")
        if not discard:
            largest = format_bytes(max(p.total_bytes for p in plans))
            res.warnings.append(f"memory: each load holds the model ({largest} largest) plus "
                                "bounce buffers; --discard keeps only threads x chunk")

    execute(result, body, results_dir=results_dir, json_out=json_out, target=tgt.root)


def _replicas(w: dist.World, meth: str, paths: list[Path], fmt: str, opts: Any,
              replicas: int) -> tuple[str, dict[str, Any]]:
    """`replicas` processes cold-loading at once; under mpirun each rank runs its share
    (dist.split), all released together after one collective; figures over all replicas.
    Returns (cache method, summary)."""
    from iobench.infer import load as load_mod

    if w.size == 1:
        method = cache_mod.prepare("drop", paths)
        return method, load_mod.replicas(meth, paths, fmt, opts, replicas)
    fleet = load_mod.ReplicaFleet(meth, paths, fmt, opts, len(dist.split(replicas, w)))
    try:
        def start() -> str:
            # every rank drops its host's cache before any replica anywhere starts loading
            method = cache_mod.prepare("drop", paths)
            fleet.start()
            return method

        methods = dist.collective(start, w, f"replicas {meth} start")
        fleet.go()  # right after the collective: every rank's replicas start together
        offset = time.time_ns() - time.monotonic_ns()  # replicas' CLOCK_MONOTONIC -> wall

        def rows() -> list[tuple[Any, ...]]:
            return [(r[0], r[1] + offset, r[2] + offset, *r[3:]) for r in fleet.rows()]

        per_rank = dist.collective(rows, w, f"replicas {meth}")
    finally:
        fleet.close()
    out = load_mod.summarize_replicas([r for rs in per_rank for r in rs])
    out["replicas_per_rank"] = [len(rs) for rs in per_rank]
    return methods[0], out


def _what_if(m: Any, plans: list[Any], target: Path, json_out: bool) -> None:
    if json_out:
        click.echo(json.dumps({"model": m.name, "target": str(target),
                               "plans": [p.summary() for p in plans]}, indent=1))
        return
    t = Table(title=f"{m.name}: files that `infer load` would write under "
                    f"{target}/infer/models/{m.name}/ (nothing written)", title_justify="left")
    for col in ("precision", "format", "files", "tensors", "bytes", "GB", "reference GB",
                "size ratio"):
        t.add_column(col, justify="left" if col in ("precision", "format") else "right")
    base = plans[0].total_bytes
    for p in plans:
        ref = m.reference_gb.get(p.precision if p.fmt == "safetensors"
                                 else f"gguf-{p.precision}")
        t.add_row(p.precision, p.fmt, str(len(p.files)), str(p.tensor_count),
                  format_bytes(p.total_bytes), f"{p.total_bytes / 1e9:.3g}",
                  "-" if ref is None else f"{ref:g}", f"{p.total_bytes / base:.3f}")
    con = terminal.console()
    con.print(t)
    for p in plans:
        names = ", ".join(f.name for f in p.files[:3]) + (" ..." if len(p.files) > 3 else "")
        idx = " + model.safetensors.index.json" if p.index else ""
        con.print(f"{p.dirname}/: {names}{idx}")


def load_tables(result: Result) -> list[RenderableType]:
    """Precisions side by side: size ratio vs load-time ratio vs tensor count."""
    loads = [p for p in result.phases if "state" in p.get("metrics", {})
             and "replicas" not in p["metrics"]]
    out: list[RenderableType] = []
    t = Table(title="Model load: precisions side by side (ratios vs the first precision, "
                    "same method and cache state)", title_justify="left")
    for col in ("precision", "method", "state", "tensors", "size", "size ratio", "load s",
                "time ratio", "GB/s", "first tensor", "p99/read"):
        t.add_column(col, justify="left" if col in ("precision", "method", "state") else "right")
    base: dict[tuple[str, str], float] = {}
    for p in loads:
        mt = p["metrics"]
        k = (mt["method"], mt["state"])
        base.setdefault(k, p["seconds"])
        b0 = base[k]
        t.add_row(mt["precision"], mt["method"], mt["state"], str(mt["tensors"]),
                  format_bytes(p["bytes"]), f"{mt['size_ratio']:.3f}", f"{p['seconds']:.3f}",
                  f"{p['seconds'] / b0:.3f}" if b0 else "-",
                  f"{p['gb_per_s']:.2f}" + (" touched" if mt.get("throughput_kind") ==
                                            "touched bytes/s" else ""),
                  f"{mt['first_tensor_s'] * 1e3:.1f} ms", format_ns(p["latency_ns"].get("p99")))
    t.caption = ("GB/s = 10^9 B/s of file bytes; 'touched' (mmap, gguf): every 4 KiB page "
                 "mapped and one byte of it read, no copy: from the page cache that is "
                 "page-mapping speed, not bytes moved; time ratio < size ratio means per-tensor or "
                 "per-file overhead dominates; p99 is per read (read/pread/direct) or per "
                 "tensor (mmap, libraries)")
    out.append(t)
    reps = [p for p in result.phases if "replicas" in p.get("metrics", {})]
    if reps:
        r = Table(title="Replicas cold-loading at once", title_justify="left")
        for col in ("precision", "method", "replicas", "aggregate GB/s", "ready p50",
                    "ready p99", "ready max"):
            r.add_column(col, justify="left" if col in ("precision", "method") else "right")
        for p in reps:
            mt = p["metrics"]
            r.add_row(mt["precision"], mt["method"], str(mt["replicas"]),
                      f"{mt['aggregate_gb_per_s']:.2f}", f"{mt['ready_p50_s']:.3f} s",
                      f"{mt['ready_p99_s']:.3f} s", f"{mt['ready_max_s']:.3f} s")
        out.append(r)
    return out


terminal.register("infer-load", load_tables)


# --- kvcache (iobench/infer/kvcache/) --------------------------------------------------------
@infer.command("kvcache")
@click.argument("model_name", metavar="MODEL")
@common_run_options
@engine_option
@click.option("--layout", type=click.Choice(["file-per-chunk", "slab"]),
              default="file-per-chunk", show_default=True,
              help="One file per chunk (LMCache) or preallocated slab files (Dynamo).")
@click.option("--chunk-tokens", type=int, default=256, show_default=True,
              help="Tokens per chunk (256 LMCache, 16 vLLM blocks, 512 Mooncake).")
@click.option("--kv-dtype", type=click.Choice(["bf16", "fp16", "fp8"]), default="bf16",
              show_default=True)
@click.option("--tp", type=int, default=1, show_default=True,
              help="Tensor-parallel degree: each rank stores kv_heads/TP heads.")
@click.option("--users", type=int, default=4, show_default=True,
              help="Concurrent sessions (or trace replayers).")
@click.option("--profile", default="chatbot", show_default=True,
              help="Context profile: chatbot, coding, document or a YAML path.")
@click.option("--trace", type=click.Path(path_type=Path), default=None,
              help="Replay a Mooncake-format JSONL trace instead of profile sessions.")
@click.option("--trace-speed", type=float, default=0.0, show_default=True,
              help="1 = the trace's timestamps, 2 = twice as fast, 0 = as fast as possible.")
@click.option("--duration", type=DURATION, default=None,
              help="Replay time [sessions: 30s; trace: the whole trace].")
@click.option("--requests", type=click.IntRange(min=0), default=0, show_default=True,
              help="Stop after this many requests (0: no cap).")
@click.option("--queue-depth", "-q", type=int, default=8, show_default=True,
              help="Chunk I/Os in flight (as many chunk buffers; reads via Linux AIO).")
@click.option("--cpu-cache", type=SIZE0, default="0", show_default=True,
              help="Emulated host-RAM tier (real buffers); 0: every restore hits storage.")
@click.option("--capacity", type=SIZE, default="4GiB", show_default=True,
              help="Storage tier size on the target (per rank); LRU eviction when full.")
@click.option("--promote/--no-promote", default=True, show_default=True,
              help="Copy a storage hit into the RAM tier.")
@click.option("--admit-after", type=int, default=1, show_default=True,
              help="Write a chunk to storage only once seen K times (Dynamo: 2).")
@click.option("--fsync", type=click.Choice(["chunk", "turn", "none"]), default="turn",
              show_default=True, help="When written chunks are made durable.")
@click.option("--decode-time", type=DURATION, default="0", show_default=True,
              help="Emulated decode time per output token (interleaves reads and writes).")
@click.option("--ttft", type=DURATION, default="200ms", show_default=True,
              help="Time-to-first-token budget for the restore (the headline search).")
@click.option("--prefill-rate", type=float, default=10000.0, show_default=True,
              help="Prefill tokens/s to recompute a context (an input, not measured).")
@click.option("--search/--no-search", default=True, show_default=True,
              help="Search the longest context restorable within --ttft at p99.")
@click.option("--search-requests", type=click.IntRange(min=1), default=8, show_default=True,
              help="Restores per user per search probe.")
@click.option("--search-users", type=int, default=1, show_default=True,
              help="Concurrent restores in each search probe (1: a request alone).")
@click.option("--max-context", type=click.IntRange(min=1), default=131072, show_default=True,
              help="Upper limit of the TTFT search, tokens.")
@click.option("--drive-size", type=SIZE, default=None, help="Drive size for DWPD.")
@click.option("--fio-runtime", type=DURATION, default="5s", show_default=True,
              help="--engine fio: seconds of native and of fio chunk reads side by side.")
@click.option("--fio-first", is_flag=True, hidden=True)  # benchmarks alternate the order
@click.option("--verify", is_flag=True, help="CRC-32C check of every restored chunk.")
@click.option("--seed", type=int, default=0, show_default=True)
def kvcache_cmd(model_name: str, target: Path, json_out: bool, results_dir: Path, force: bool,
                engine: str, **kw: Any) -> None:
    """KV-cache offload of MODEL: sessions restore stored prefixes, write new chunks."""
    from iobench.infer.kvcache import run as kv

    o = kv.Options(**{k: kw.pop(k) for k in ("users", "queue_depth", "promote",
                                              "admit_after", "fsync", "requests", "verify",
                                              "seed", "trace_speed")},
                   decode_s=kw.pop("decode_time"), duration_s=kw.pop("duration"))
    c = kv.Config(model=model_name, engine=engine, ttft_s=kw.pop("ttft"),
                  fio_runtime_s=kw.pop("fio_runtime"), opts=o, **kw)
    w = dist.world()
    m, g, profile, trace = dist.root_first(lambda: kv.check(c, target, w.size), w)
    tgt = dist.root_first(lambda: target_mod.prepare(target, force), w)
    result = Recorder("infer-kvcache", m.name, spec=kv.spec_dict(c, m, g, w.size), engine=engine)
    execute(result, lambda res: kv.body(res, c, tgt, g, profile, trace),
            results_dir=results_dir, json_out=json_out, target=tgt.root)


def _kvcache_tables(result: Result) -> list[RenderableType]:
    from iobench.infer.kvcache import report

    return report.tables(result)


terminal.register("infer-kvcache", _kvcache_tables)


def _declare_kvcache() -> None:
    from iobench.infer.kvcache.report import METRICS
    from iobench.suite.metrics import declare

    declare("infer kvcache", METRICS)


_declare_kvcache()
