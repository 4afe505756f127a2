"""`iobench io PATTERN`: plain sequential/random read/write patterns, native or fio."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from iobench import cache, dist, safepath, verify
from iobench import target as target_mod
from iobench.cli import (
    DURATION,
    MAX_THREADS,
    SEED,
    SIZE,
    cache_option,
    check_open_files,
    cli,
    common_run_options,
    engine_option,
)
from iobench.engines import IOENGINES, PATTERNS, IOSpec
from iobench.errors import UsageError
from iobench.report import terminal
from iobench.report.progress import ByteProgress
from iobench.results import Result
from iobench.runner import execute

# The phases table already shows everything io's summary metrics hold (they exist for
# suite criteria); the extra table is what was verified (depth, residency, byte audit).


def _verified(result: Result) -> list:
    t = verify.table(result.phases)
    return [t] if t is not None else []


terminal.register("io", _verified)


def io_files(root: Path, jobs: int, first: int = 0) -> tuple[Path, ...]:
    return tuple(root / f"job{j}.dat" for j in range(first, first + jobs))


def run_io(spec: IOSpec, engine: str, policy: str, workdir: Path, result: Result,
           json_out: bool = False) -> None:
    """Lay out the files (reads), apply the cache policy, run the pattern, add its phases.

    Under MPI each rank runs its own jobs (files job{first_job}..); the phases of all
    ranks are merged (iobench.dist) and every rank sees the same merged figures.
    """
    w = dist.world()

    def lay_out() -> None:
        for f in spec.files:  # iobench's own files: never a link or a file with other links
            safepath.check_writable(f)
        missing = [f for f in spec.files if not f.exists() or f.stat().st_size < spec.size]
        if spec.is_write or not missing:
            return
        from iobench.engines import native

        with ByteProgress("layout", spec.size * len(missing),
                          enabled=False if json_out else None) as prog:
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

        with ByteProgress(spec.pattern, None if spec.runtime else total,
                          enabled=False if json_out else None) as prog:
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
            cpu = p["metrics"].get("cpu_seconds") if engine == "native" else None
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
        "iops": main["iops"],
        "p99_us": (main["latency_ns"].get("p99") or 0) / 1e3,
        "bytes": main["bytes"],
        "ranks": w.size,
    })


@cli.command("io")
@click.argument("pattern", type=click.Choice(PATTERNS))
@common_run_options
@engine_option
@click.option("--size", type=SIZE, default="64MiB", show_default=True,
              help="File size per job.")
@click.option("--block-size", "-b", type=SIZE, default="1MiB", show_default=True)
@click.option("--jobs", "-j", type=click.IntRange(min=1, max=MAX_THREADS), default=1,
              show_default=True)
@click.option("--queue-depth", "-q", type=click.IntRange(min=1, max=MAX_THREADS), default=1,
              show_default=True,
              help="I/Os in flight per job (native: threads; fio: iodepth).")
@click.option("--runtime", type=DURATION, default="0",
              help="Run for this long (time-based, wraps around); 0 = one pass over --size.")
@cache_option("drop")
@click.option("--ioengine", type=click.Choice(IOENGINES), default=None,
              help="fio ioengine (default psync at QD1, libaio above).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--fio-hosts", "fio_hosts", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="Run on the `fio --server` daemons listed in FILE (host or host,port a "
                   "line), all at once; needs --engine fio. See docs/guide/many-hosts.md.")
def io_cmd(pattern: str, target: Path, json_out: bool, results_dir: Path, force: bool,
           engine: str, size: int, block_size: int, jobs: int, queue_depth: int,
           runtime: float, cache: str, ioengine: str | None, seed: int,
           fio_hosts: Path | None) -> None:
    """Run a plain I/O PATTERN (seqread, seqwrite, randread, randwrite) on the target.

    Each job owns one file of --size under <target>/io/; both engines use the same files.
    Under mpirun, --jobs is per rank and rank r owns files job{r*jobs}...
    """
    if block_size > size:
        raise UsageError(f"--block-size {block_size} is larger than --size {size}; "
                         "give a larger --size or a smaller --block-size")
    check_open_files(jobs, "--jobs")
    if engine == "native" and jobs * queue_depth > MAX_THREADS and not (
            cache == "direct" and queue_depth > 1):  # threads; O_DIRECT QD>1 uses AIO
        raise UsageError(f"--jobs {jobs} x --queue-depth {queue_depth}: the native engine "
                         f"runs one thread per I/O in flight, at most {MAX_THREADS}; lower "
                         "them or use --cache direct (native AIO) or --engine fio")
    direct = cache == "direct"
    if direct and block_size % 4096:
        raise UsageError(f"--block-size {block_size}: --cache direct (O_DIRECT) needs a "
                         "multiple of 4096 bytes, e.g. 4k")
    w = dist.world()
    servers = None
    if fio_hosts is not None:  # checked before the target is touched: fails fast
        from iobench.engines import fio_hosts as hosts

        if w.size > 1:
            raise UsageError("--fio-hosts runs fio's own client/server mode: run it "
                             "without mpirun (one iobench drives every server)")
        servers = hosts.load(fio_hosts, engine)
    tgt = dist.root_first(lambda: target_mod.prepare(target, force=force), w)
    workdir = dist.root_first(lambda: tgt.subdir("io"), w)
    first = w.rank * jobs  # --jobs is per rank (as fio's numjobs per client)
    spec = IOSpec(pattern=pattern, size=size, block_size=block_size,  # type: ignore[arg-type]
                  files=io_files(workdir, jobs, first), jobs=jobs, queue_depth=queue_depth,
                  runtime=runtime, direct=direct,
                  ioengine=ioengine or ("psync" if queue_depth == 1 else "libaio"), seed=seed,
                  first_job=first)
    if servers is None:  # the servers' disks are not this host's: fio reports ENOSPC
        need = sum(max(0, size - (f.stat().st_size if f.exists() else 0)) for f in spec.files)
        tgt.check_space(need, f"{pattern} with {jobs} x {size} bytes")
    spec_dict = {k: (list(map(str, v)) if k == "files" else v)
                 for k, v in dataclasses.asdict(spec).items()}
    spec_dict["cache"] = cache
    result = Result(kind="io", name=pattern, spec=spec_dict, engine=engine)
    if servers is not None:
        spec_dict["files"] = hosts.spec_files(spec, len(servers), workdir)
        spec_dict["fio_hosts"] = [s.address for s in servers]
        execute(result, lambda r: hosts.run_io(spec, servers, cache, workdir, r),
                results_dir=results_dir, json_out=json_out, target=tgt.root)
        return
    execute(result, lambda r: run_io(spec, engine, cache, workdir, r, json_out),
            results_dir=results_dir, json_out=json_out, target=tgt.root)
