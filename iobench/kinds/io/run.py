"""Run one plain I/O pattern: lay out the files, apply the cache policy, measure, verify.

`run(spec, options, ctx)` is the whole command without the command line: the Python API
and suites call it; `iobench io` is options -> Spec -> run -> render.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from iobench import cache, dist, runner, safepath, verify
from iobench import target as target_mod
from iobench.engines import IOSpec
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.io.spec import Spec
from iobench.results import Recorder, Result


def io_files(root: Path, jobs: int, first: int = 0) -> tuple[Path, ...]:
    return tuple(root / f"job{j}.dat" for j in range(first, first + jobs))


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    """Run the pattern; the Outcome says how it ended (the exit code a command gives)."""
    ctx = ctx or default_ctx()
    spec.validate()
    w = ctx.world
    servers = None
    with target_mod.locked():
        if spec.fio_hosts is not None:  # checked before the target is touched: fails fast
            from iobench.engines import fio_hosts as hosts
            from iobench.errors import UsageError

            if w.size > 1:
                raise UsageError("--fio-hosts runs fio's own client/server mode: run it "
                                 "without mpirun (one iobench drives every server)")
            servers = hosts.load(spec.fio_hosts, spec.engine)
        rec = Recorder(kind="io", name=spec.pattern, spec=spec.to_dict(), engine=spec.engine)
        ready: dict[str, Any] = {}  # what prepare() made, for the body

        def prepare(r: Recorder) -> Path:
            # after the provisional result exists: a rank killed here still leaves one
            tgt = dist.root_first(lambda: target_mod.prepare(
                options.target, force=options.force, wait=options.wait > 0), w)
            workdir = dist.root_first(lambda: tgt.subdir("io"), w)
            first = w.rank * spec.jobs  # --jobs is per rank (as fio's numjobs per client)
            io = IOSpec(pattern=spec.pattern, size=spec.size,  # type: ignore[arg-type]
                        block_size=spec.block_size, files=io_files(workdir, spec.jobs, first),
                        jobs=spec.jobs, queue_depth=spec.queue_depth, runtime=spec.runtime,
                        direct=spec.direct, ioengine=spec.fio_ioengine, seed=spec.seed,
                        first_job=first)
            if servers is None:  # the servers' disks are not this host's: fio says ENOSPC
                need = sum(max(0, spec.size - (f.stat().st_size if f.exists() else 0))
                           for f in io.files)
                tgt.check_space(need, f"{spec.pattern} with {spec.jobs} x {spec.size} bytes")
            r.spec["files"] = list(map(str, io.files))
            for key in ("direct", "end_fsync", "first_job"):
                r.spec[key] = getattr(io, key)
            r.spec["ioengine"] = io.ioengine
            if servers is not None:
                r.spec["files"] = hosts.spec_files(io, len(servers), workdir)
                r.spec["fio_hosts"] = [s.address for s in servers]
            ready.update(io=io, workdir=workdir)
            return tgt.root

        def body(r: Recorder) -> None:
            io, workdir = ready["io"], ready["workdir"]
            if servers is not None:
                hosts.run_io(io, servers, spec.cache, workdir, r)
            else:
                measure(io, spec.engine, spec.cache, workdir, r, ctx)

        return runner.run(rec, body, options, ctx, prepare=prepare)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Run the pattern and return its (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result


def measure(spec: IOSpec, engine: str, policy: str, workdir: Path, result: Recorder,
            ctx: Ctx) -> None:
    """Lay out the files (reads), apply the cache policy, run the pattern, add its phases.

    Under MPI each rank runs its own jobs (files job{first_job}..); the phases of all
    ranks are merged (iobench.dist) and every rank sees the same merged figures.
    """
    w = ctx.world

    def lay_out() -> None:
        for f in spec.files:  # iobench's own files: never a link or a file with other links
            safepath.check_writable(f)
        missing = [f for f in spec.files if not f.exists() or f.stat().st_size < spec.size]
        if spec.is_write or not missing:
            return
        from iobench.engines import native

        with ctx.progress("layout", spec.size * len(missing)) as prog:
            native.layout(missing, spec.size, seed=spec.seed, progress=prog,
                          first_stream=spec.first_job + spec.files.index(missing[0]))

    dist.collective(lay_out, w, "layout")
    method = cache.prepare(policy, spec.files) if not spec.is_write else (
        "o_direct" if spec.direct else "none")
    total = spec.size * spec.jobs * w.size
    # measured, not assumed: how much of this rank's data set is in the page cache now
    res0 = cache.residency(spec.files, spec.size) if not spec.is_write else None
    result.cache = cache.verdict(policy, method, total, reads=not spec.is_write,
                                 rereads=spec.runtime > 0 or spec.is_random, resident=res0)
    if res0 is not None and policy in cache.DROP_POLICIES and \
            res0["resident_pct"] > cache.RESIDENT_WARN_PCT:
        result.warnings.append(f"{res0['resident_pct']:.1f}% of the data set is still in the "
                               "page cache after the eviction: reads may come from RAM")
    kind = "fio" if engine == "fio" else "native"
    allowance = verify.startup_allowance(kind) if w.size == 1 else {}
    window: list[verify.Window] = []

    def run_fio() -> list[dict]:
        from iobench.engines import fio

        start = time.time_ns()
        window.append(verify.Window(spec.files))
        try:
            phases = fio.run(spec, workdir)
        except KeyboardInterrupt as e:  # keep what fio measured before it was stopped
            for p in fio.partial_phases(e):
                result.add_phase(p)
            raise
        end = time.time_ns()
        window[0].close()
        for p in phases:
            dist.stamp(p, start, end)
        return phases

    def run_native() -> list[dict]:
        from iobench.engines import native

        with ctx.progress(spec.pattern, None if spec.runtime else total) as prog:
            window.append(verify.Window(spec.files))
            try:
                return native.run(spec, progress=prog)
            except KeyboardInterrupt as e:  # keep what was measured up to the interruption
                for p in getattr(e, "phases", None) or []:
                    result.add_phase(p)
                raise
            finally:
                window[0].close()

    phases = dist.combine(run_fio if engine == "fio" else run_native, w, spec.pattern)
    res1 = cache.residency(spec.files, spec.size)
    if res0 is not None:
        result.cache["resident_end_pct"] = res1["resident_pct"]
    depth = spec.jobs * spec.queue_depth * w.size
    for p in phases:
        if p["direction"] not in ("read", "write"):
            continue
        p["metrics"]["resident_end_pct"] = res1["resident_pct"]
        if res0 is not None:
            p["metrics"]["resident_start_pct"] = res0["resident_pct"]
        if w.size == 1 and window:  # the counters are this process's: one rank only
            counter = verify.counter_for(p["direction"], p["metrics"].get("queue"),
                                         spec.ioengine if engine == "fio" else None)
            cpu = p["metrics"].get("cpu_s") if engine == "native" else None
            result.warnings.extend(verify.annotate(
                p, window[0], requested_depth=depth, counter=counter, allowance=allowance,
                direct=spec.direct, cpu_s=cpu))
        else:
            p["metrics"]["verify"] = {"depth": verify.achieved_depth(p, depth)}
    for p in phases:
        result.add_phase(p)
    for p in phases[:1]:
        result.warnings.extend((p.get("fio") or {}).get("warnings") or [])
    main = phases[0]
    result.metrics.update({
        "gb_per_s": main["bytes_per_s"] / 1e9,
        "ops_per_s": main["ops_per_s"],
        "p99_us": (main["latency_ns"].get("p99") or 0) / 1e3,
        "bytes": main["bytes"],
        "ranks": w.size,
    })
