"""Load a model's weights: write the files once (safetensors or GGUF, as real checkpoints
hold them), then time each method x precision x cache state, and replicas loading at once.

`run(spec, options, ctx)` is the whole command without the command line; `iobench infer
load MODEL` is options -> Spec -> run -> render.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from iobench import cache as cache_mod
from iobench import dist, runner, verify
from iobench import target as target_mod
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.infer_load import files as files_mod
from iobench.kinds.infer_load import load as load_mod
from iobench.kinds.infer_load import preset
from iobench.kinds.infer_load.spec import Spec
from iobench.results import Recorder, Result, make_phase
from iobench.units import format_bytes


def plans(spec: Spec) -> tuple[preset.InferenceModel, list[files_mod.ModelPlan]]:
    """The model and the file set of each precision (what --what-if shows)."""
    m = preset.load(spec.model)
    return m, [files_mod.plan(m, pr, spec.format) for pr in spec.precisions]


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    """Run the loads; the Outcome says how it ended (the exit code a command gives)."""
    ctx = ctx or default_ctx()
    spec.validate()
    m, ps = plans(spec)
    w = ctx.world
    with target_mod.locked():
        spec_dict: dict[str, Any] = {"model": m.name, **spec.to_dict(),
                                     "model_spec": m.to_dict()}
        if w.size > 1:
            spec_dict["ranks"] = w.size
        rec = Recorder("infer-load", m.name, spec=spec_dict, engine="native")
        ready: dict[str, Any] = {}  # what prepare() made, for the body

        def prepare(r: Recorder) -> Path:
            # after the provisional result exists: a rank killed here still leaves one
            tgt = dist.root_first(lambda: target_mod.prepare(
                options.target, force=options.force, wait=options.wait > 0), w)
            ready.update(tgt=tgt, root=dist.root_first(
                lambda: tgt.subdir(f"infer/models/{m.name}"), w))
            return tgt.root

        def body(r: Recorder) -> None:
            measure(spec, m, ps, ready["tgt"], ready["root"], r, ctx)

        return runner.run(rec, body, options, ctx, prepare=prepare)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Run the loads and return the (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result


def _byte_counter(method: str) -> dict[str, str]:
    """How the run's byte audit sees a load (iobench.verify.judge_run): read, pread and
    direct are read(2)-family calls (rchar); mmap, gguf (numpy's memmap) and the
    safetensors library map the files and touch or copy their pages, which no
    /proc/self/io counter of the process counts on a warm cache (and read_bytes only in
    part on a cold one): those phases are left out, and say why."""
    if method in ("read", "pread", "direct"):
        return {}
    return {"byte_counter": verify.NO_COUNTER,
            "byte_counter_why": f"{method} maps the files: pages touched, not read(2)"}


def _residency(paths: list[Path]) -> dict[str, Any]:
    r = cache_mod.residency(paths)
    return {"resident_pct": float(r["resident_pct"]), "method": r["method"]}


def measure(spec: Spec, m: preset.InferenceModel, plans: list[files_mod.ModelPlan],
            tgt: target_mod.Target, root: Path, res: Recorder, ctx: Ctx) -> None:
    w = ctx.world
    fmt = spec.format
    opts = load_mod.LoadOptions(threads=spec.threads, chunk=spec.chunk, discard=spec.discard)

    def write_weights() -> None:  # rank 0 writes; the others read what it wrote
        todo = [p for p in plans if not files_mod.is_complete(p, root)]
        need = sum(p.total_bytes for p in todo)
        if todo:
            tgt.check_space(need, f"the {m.name} weight files")
            # the files the loads read, not a measured phase: out of the byte audit
            with ctx.progress("write weights", need) as pg, verify.untimed(children=True):
                for p in todo:
                    files_mod.write(p, root, progress=pg)

    if w.size > 1:
        dist.collective(lambda: write_weights() if w.is_root else None, w, "write weights")
    else:
        write_weights()
    cache_method = "none"
    first_cold: dict[str, Any] | None = None
    residencies: list[dict[str, Any]] = []
    base = plans[0].total_bytes
    for p in plans:
        paths = files_mod.paths(p, root)
        for meth in spec.methods:
            for state in spec.states:
                def one(state: str = state, meth: str = meth,
                        paths: list[Path] = paths) -> tuple[str, Any, Any]:
                    # one process loading the model: under mpirun rank 0 measures it
                    # while the other ranks wait (the replicas below use every rank)
                    if not w.is_root:
                        return "none", None, None
                    if state == "cold":
                        method = cache_mod.prepare("drop", paths)
                    else:
                        method = "none"
                        with verify.untimed(children=True):  # the warm state's own pass
                            load_mod.warm(paths)
                    # measured, not assumed: the files' share in the page cache now
                    resident = _residency(paths)
                    return method, resident, load_mod.load(meth, paths, fmt, opts)

                if w.size > 1:
                    got, resident, st = dist.collective(one, w,
                                                        f"load {p.precision} {meth}")[0]
                else:
                    got, resident, st = one()
                if state == "cold":
                    cache_method = got
                    first_cold = first_cold or resident
                name = f"load {p.precision} {meth} {state}"
                residencies.append({"phase": name, **resident})
                ph = make_phase(name, nbytes=st.bytes, seconds=st.seconds, ops=st.ops,
                                latency=st.latency, engine="native", direction="read",
                                metrics={
                                    "precision": p.precision, "method": meth,
                                    "state": state, "format": fmt,
                                    "tensors": st.tensors, "files": len(paths),
                                    "first_tensor_s": st.first_tensor_s,
                                    "read_bytes": st.bytes_read,
                                    "buffer_bytes": st.peak_buffer_bytes,
                                    "size_ratio": p.total_bytes / base,
                                    "resident_start_pct": resident["resident_pct"],
                                    "cpu_s": st.cpu_s,
                                    "latency_unit": ("per read" if meth in
                                                     ("read", "pread", "direct")
                                                     else "per tensor"),
                                    # mmap (and gguf's memmap) fault pages in and read
                                    # one byte of each: not bytes copied
                                    "throughput_kind": (
                                        "touched bytes/s" if meth in ("mmap", "gguf")
                                        else "bytes moved/s"),
                                    **_byte_counter(meth),
                                })
                res.add_phase(ph)
                key = f"load.{p.precision}.{meth}.{state}"
                res.metrics[f"{key}.load_s"] = st.seconds
                res.metrics[f"{key}.gb_per_s"] = st.bytes_per_s / 1e9
                res.metrics[f"{key}.first_tensor_s"] = st.first_tensor_s
                if "load_s" not in res.metrics:
                    res.metrics["load_s"] = st.seconds
                    res.metrics["load_gb_per_s"] = st.bytes_per_s / 1e9
            if spec.replicas > 1:
                cache_method, resident, r = _replicas(w, meth, paths, fmt, opts,
                                                      spec.replicas)
                name = f"load {p.precision} {meth} x{spec.replicas} replicas cold"
                residencies.append({"phase": name, **resident})
                ready = r["ready_ns"]
                ph = make_phase(name, nbytes=r["bytes"], seconds=r["seconds"], ops=r["ops"],
                                latency=r["latency"], engine="native", direction="read",
                                metrics={"precision": p.precision, "method": meth,
                                         "state": "cold", "format": fmt,
                                         "replicas": spec.replicas,
                                         "resident_start_pct": resident["resident_pct"],
                                         "ready_p50_s": ready.percentile(50) / 1e9,
                                         "ready_p99_s": ready.percentile(99) / 1e9,
                                         "ready_max_s": (ready.max or 0) / 1e9,
                                         "aggregate_gb_per_s": r["bytes"] / r["seconds"]
                                         / 1e9 if r["seconds"] else 0.0,
                                         **_byte_counter(meth)})
                if w.size > 1:
                    ph["metrics"]["ranks"] = w.size
                    ph["metrics"]["replicas_per_rank"] = r["replicas_per_rank"]
                res.add_phase(ph)
                key = f"load.{p.precision}.{meth}.replicas{spec.replicas}"
                res.metrics[f"{key}.aggregate_gb_per_s"] = ph["metrics"]["aggregate_gb_per_s"]
                res.metrics[f"{key}.ready_p99_s"] = ph["metrics"]["ready_p99_s"]
    total = sum(p.total_bytes for p in plans)
    res.cache = cache_mod.verdict(
        "drop", cache_method, total, rereads="warm" in spec.states,
        resident=({"resident_pct": first_cold["resident_pct"],
                   "method": first_cold["method"]} if first_cold else None))
    # every load's measured residency at its start (rank 0's host)
    res.cache["residency"] = residencies
    if "warm" in spec.states:
        res.warnings.append("warm loads read files the page cache holds by design: they "
                            "measure memory and the loader, not storage")
    cold = [r for r in residencies if "cold" in r["phase"]]
    high = [r for r in cold if r["resident_pct"] > cache_mod.RESIDENT_WARN_PCT]
    if high:
        res.warnings.append(f"{high[0]['resident_pct']:.1f}% of the weight files were still "
                            f"in the page cache at the start of the cold load "
                            f"'{high[0]['phase']}': it may have read RAM")
    if not spec.discard:
        largest = format_bytes(max(p.total_bytes for p in plans))
        res.warnings.append(f"memory: each load holds the model ({largest} largest) plus "
                            "bounce buffers; --discard keeps only threads x chunk")


def _replicas(w: dist.World, meth: str, paths: list[Path], fmt: str,
              opts: load_mod.LoadOptions, replicas: int) -> tuple[str, dict[str, Any],
                                                                  dict[str, Any]]:
    """`replicas` processes cold-loading at once; under mpirun each rank runs its share
    (dist.split), all released together after one collective; figures over all replicas.
    Returns (cache method, residency at the start, summary)."""
    if w.size == 1:
        method = cache_mod.prepare("drop", paths)
        fleet = load_mod.ReplicaFleet(meth, paths, fmt, opts, replicas)
        try:
            fleet.start()
            resident = _residency(paths)
            fleet.go()
            return method, resident, load_mod.summarize_replicas(fleet.rows())
        finally:
            fleet.close()
    fleet = load_mod.ReplicaFleet(meth, paths, fmt, opts, len(dist.split(replicas, w)))
    try:
        def start() -> tuple[str, dict[str, Any]]:
            # every rank drops its host's cache before any replica anywhere starts loading
            method = cache_mod.prepare("drop", paths)
            fleet.start()
            return method, _residency(paths)

        started = dist.collective(start, w, f"replicas {meth} start")
        fleet.go()  # right after the collective: every rank's replicas start together
        offset = time.time_ns() - time.monotonic_ns()  # replicas' CLOCK_MONOTONIC -> wall

        def rows() -> list[tuple[Any, ...]]:
            return [(r[0], r[1] + offset, r[2] + offset, *r[3:]) for r in fleet.rows()]

        per_rank = dist.collective(rows, w, f"replicas {meth}")
    finally:
        fleet.close()
    out = load_mod.summarize_replicas([r for rs in per_rank for r in rs])
    out["replicas_per_rank"] = [len(rs) for rs in per_rank]
    return started[0][0], started[0][1], out
