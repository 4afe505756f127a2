"""Run the random-read grid: lay out the file set once, then one cell per block size x
queue depth (native: iobench.engines.randfiles; fio: a job file from engines.fio).

`run(spec, options, ctx)` is the whole command without the command line; `iobench infer
randread` is options -> Spec -> run -> render.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from iobench import cache as cache_mod
from iobench import dist, runner, verify
from iobench import target as target_mod
from iobench.errors import UsageError
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.infer_randread import randread as rr
from iobench.kinds.infer_randread.spec import Spec
from iobench.results import Recorder, Result, make_phase


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    """Run the grid; the Outcome says how it ended (the exit code a command gives)."""
    ctx = ctx or default_ctx()
    spec.validate()
    if spec.engine == "fio":
        from iobench.engines.fio import fio_binary

        fio_binary()  # missing fio: one line, before anything is written
    w = ctx.world
    with target_mod.locked():
        spec_dict = spec.to_dict()
        if w.size > 1:
            spec_dict["ranks"] = w.size
        rec = Recorder("infer-randread", "randread", spec=spec_dict, engine=spec.engine)
        ready: dict[str, Any] = {}  # what prepare() made, for the body

        def prepare(r: Recorder) -> Path:
            # after the provisional result exists: a rank killed here still leaves one
            def target() -> target_mod.Target:  # rank 0 first: bad input reported once
                if spec.files < w.size:
                    raise UsageError(f"--files {spec.files}: under mpirun each of the "
                                     f"{w.size} ranks reads its own files; give --files "
                                     f"{w.size} or more")
                return target_mod.prepare(options.target, force=options.force,
                                          wait=options.wait > 0)

            tgt = dist.root_first(target, w)
            ready.update(tgt=tgt, root=dist.root_first(lambda: tgt.subdir("infer/randread"),
                                                       w))
            return tgt.root

        return runner.run(rec, lambda r: measure(spec, ready["tgt"], ready["root"], r, ctx),
                          options, ctx, prepare=prepare)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Run the grid and return its (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result


def measure(spec: Spec, tgt: target_mod.Target, root: Path, res: Recorder, ctx: Ctx) -> None:
    """Lay out the files, then measure every cell and add its phase and metrics.

    Under mpirun rank r lays out and reads its own files (dist.split) and runs its share
    of each cell's queue depth; the cells are merged (IOPS over all ranks).
    """
    w = ctx.world
    nfiles, file_size, engine = spec.files, spec.file_size, spec.engine
    every = rr.file_set(root, nfiles)
    mine = list(dist.split(nfiles, w))
    paths = [every[i] for i in mine]

    def lay_out() -> None:
        missing = [i for i in mine
                   if not every[i].exists() or every[i].stat().st_size != file_size]
        if not missing:
            return
        tgt.check_space(file_size * len(missing), "the random-read file set")
        from iobench.engines import native

        with ctx.progress("layout", file_size * len(missing)) as prog, verify.untimed():
            for i in missing:  # stream i: no two files share a block, whoever lays out
                native.layout([every[i]], file_size, progress=prog, first_stream=i)

    dist.collective(lay_out, w, "layout")
    method = "o_direct"
    for bs in spec.block_sizes:
        for qd in spec.queue_depths:
            methods = dist.collective(lambda: cache_mod.prepare(spec.cache, paths), w,
                                      f"cache {spec.cache}")
            method = methods[0]
            threads = len(dist.split(qd, w))

            def cell(bs: int = bs, qd: int = qd, threads: int = threads) -> list[dict]:
                start = dist.wall_from_mono(time.monotonic_ns())
                if threads == 0:  # fewer I/Os in flight than ranks: this one idles
                    ph = make_phase(rr.cell_name(bs, qd), nbytes=0, seconds=0.0, ops=0,
                                    engine=engine, direction="read")
                elif engine == "fio":
                    ph = rr.fio_cell(paths, bs, threads, spec.runtime, spec.direct,
                                     spec.ioengine, file_size, root)
                    ph["name"] = rr.cell_name(bs, qd)
                else:
                    ph = rr.native_cell(paths, bs, threads, spec.runtime, spec.direct,
                                        seed=w.rank)
                    ph["name"] = rr.cell_name(bs, qd)
                if w.size > 1:
                    dist.stamp(ph, start, dist.wall_from_mono(time.monotonic_ns()))
                return [ph]

            ph = dist.combine(cell, w, rr.cell_name(bs, qd))[0] if w.size > 1 else cell()[0]
            # the merged phase keeps rank 0's metrics: the cell's are all ranks'
            ph["metrics"].update({"block_bytes": bs, "queue_depth": qd,
                                  "direct": spec.direct})
            if w.size > 1:
                ph["metrics"].update({"threads" if engine == "native" else "iodepth": qd,
                                      "files": nfiles})
                if engine == "fio":
                    ph["metrics"]["ioengine"] = spec.ioengine
            res.add_phase(ph)
            key = rr.cell_key(bs, qd)
            res.metrics[f"{key}.ops_per_s"] = ph["ops_per_s"]
            res.metrics[f"{key}.gb_per_s"] = ph["gb_per_s"]
            res.metrics[f"{key}.p99_us"] = (ph["latency_ns"].get("p99") or 0) / 1e3
    res.cache = cache_mod.verdict(spec.cache, method, file_size * nfiles, rereads=True)
    res.metrics["max_ops_per_s"] = max((p["ops_per_s"] for p in res.phases), default=0.0)
    # the grid's worst tail: what `randread.p99_us <= 500` in a suite holds to
    p99s = [(p["latency_ns"].get("p99") or 0) / 1e3 for p in res.phases]
    res.metrics["p99_us"] = max(p99s, default=0.0)
    res.metrics["p99_9_us"] = max(((p["latency_ns"].get("p99_9") or 0) / 1e3
                                   for p in res.phases), default=0.0)
