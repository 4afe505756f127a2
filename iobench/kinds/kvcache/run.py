"""Run `infer kvcache`: checks, the replay, the TTFT search, the fio comparison and the
chunk pattern through fio, and the metrics (merged over pool threads, users and MPI ranks).

`run(spec, options, ctx)` is the whole command without the command line: the Python API
and suites call it; `iobench infer kvcache` is options -> Spec -> run -> render.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iobench import cache as cache_mod
from iobench import dist, runner
from iobench import target as target_mod
from iobench.engines.chunks import buffer_bytes, on_huge_pages
from iobench.errors import UsageError
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.kvcache import geometry as geo
from iobench.kinds.kvcache import profiles as prof_mod
from iobench.kinds.kvcache import store as store_mod
from iobench.kinds.kvcache import trace as trace_mod
from iobench.kinds.kvcache.engine import (
    COMPARE_UID,
    PROBE_UID,
    THROTTLE_ENV,
    Engine,
    Options,
)
from iobench.kinds.kvcache.spec import Spec
from iobench.kinds.kvcache.tiers import Tiers
from iobench.results import Recorder, Result, make_phase
from iobench.units import format_bytes

COMPARE_CHUNKS = 64  # chunks in the fio comparison's set (fewer if capacity is smaller)


@dataclass
class Config:
    model: str
    layout: str
    chunk_tokens: int
    kv_dtype: str
    tp: int
    profile: str
    trace: Path | None
    capacity: int
    cpu_cache: int
    ttft_s: float
    prefill_rate: float
    search: bool
    search_requests: int
    search_users: int
    max_context: int
    drive_size: int | None
    engine: str
    fio_runtime_s: float
    opts: Options
    fio_first: bool = False  # the comparison's order (benchmarks alternate it)


def config(spec: Spec) -> Config:
    """The run's internal configuration from a (validated) Spec."""
    o = Options(users=spec.users, queue_depth=spec.queue_depth, promote=spec.promote,
                admit_after=spec.admit_after, fsync=spec.fsync, decode_s=spec.decode_time,
                duration_s=spec.duration, requests=spec.requests,
                trace_speed=spec.trace_speed, verify=spec.verify, seed=spec.seed)
    return Config(model=spec.model, layout=spec.layout, chunk_tokens=spec.chunk_tokens,
                  kv_dtype=spec.kv_dtype, tp=spec.tp, profile=spec.profile,
                  trace=spec.trace, capacity=spec.capacity, cpu_cache=spec.cpu_cache,
                  ttft_s=spec.ttft, prefill_rate=spec.prefill_rate, search=spec.search,
                  search_requests=spec.search_requests, search_users=spec.search_users,
                  max_context=spec.max_context, drive_size=spec.drive_size,
                  engine=spec.engine, fio_runtime_s=spec.fio_runtime, opts=o,
                  fio_first=spec.fio_first)


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    """Run the KV-cache offload; the Outcome says how it ended (the exit code a command
    gives). Bad input raises a one-line UsageError before anything is written.

    Before runner.run only what needs no other rank (this process's own input: the model,
    the profile or trace, chunk vs capacity); the target, its free space and the other
    ranks come after the provisional result exists, in prepare()."""
    ctx = ctx or default_ctx()
    spec.validate()
    w = ctx.world
    c = config(spec)
    with target_mod.locked():
        m, g, profile, trace = check_input(c)
        rec = Recorder(kind="infer-kvcache", name=m.name, spec=spec_dict(c, m, g, w.size),
                       engine=spec.engine)
        ready: dict[str, Any] = {}  # what prepare() made, for the body

        def prepare(r: Recorder) -> Path:
            # after the provisional result exists: a rank killed here still leaves one
            dist.root_first(lambda: check_target(c, g, options.target, w.size), w)
            tgt = dist.root_first(lambda: target_mod.prepare(
                options.target, force=options.force, wait=options.wait > 0), w)
            root = dist.root_first(lambda: tgt.subdir(f"kvcache/{c.layout}"), w)
            ready.update(tgt=tgt, root=root)
            return tgt.root

        return runner.run(rec, lambda r: body(r, c, ready["tgt"], ready["root"], g, profile,
                                              trace, w), options, ctx, prepare=prepare)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    """Run the KV-cache offload and return its (frozen) Result, whatever its status."""
    return execute(spec, options, ctx).result


def _free_bytes(path: Path) -> int:
    from iobench.target import _expand

    p = _expand(path).absolute()
    while not p.exists():
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def _available_ram() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return cache_mod.ram_bytes()


def _slab_bytes_present(target: Path) -> int:
    """Bytes the slab files of an earlier run already take (reused, not written again)."""
    total = 0
    for f in (target / "kvcache" / "slab").glob("rank-*/slab-*.kv"):
        try:
            st = f.lstat()
        except OSError:
            continue
        if not f.is_symlink():
            total += st.st_blocks * 512
    return total


def check_input(c: Config) -> tuple[Any, geo.Geometry, Any, Any]:
    """This process's own bad input, before the target or another rank is touched:
    (model, geometry, profile, trace)."""
    from iobench import model as model_mod

    m = model_mod.load(c.model)
    g = geo.geometry(m, c.chunk_tokens, c.kv_dtype, c.tp)
    cb = g.chunk_bytes
    if cb > c.capacity:
        raise UsageError(f"--capacity {format_bytes(c.capacity)}: smaller than one chunk "
                         f"({format_bytes(cb)} = {c.chunk_tokens} tokens x "
                         f"{g.bytes_per_token} B/token); give a larger --capacity or "
                         "fewer --chunk-tokens")
    if c.cpu_cache and c.cpu_cache < cb:
        raise UsageError(f"--cpu-cache {format_bytes(c.cpu_cache)}: smaller than one chunk "
                         f"({format_bytes(cb)}); give 0 (no RAM tier) or >= one chunk")
    profile = trace = None
    if c.trace is not None:
        trace = trace_mod.load(c.trace)
    else:
        profile = prof_mod.load(c.profile)
    return m, g, profile, trace


def check_target(c: Config, g: geo.Geometry, target: Path, ranks: int) -> None:
    """The bad input that depends on the host and the target (RAM, free space, fio),
    before anything is written (run by rank 0 in prepare, root_first)."""
    o = c.opts
    cb = g.chunk_bytes
    buf = buffer_bytes(cb)  # chunks of 2 MiB or more: whole huge pages each
    mem = c.cpu_cache + o.queue_depth * buf
    if mem > 0.9 * _available_ram():
        raise UsageError(f"--cpu-cache {format_bytes(c.cpu_cache)} + --queue-depth "
                         f"{o.queue_depth} x {format_bytes(buf)} chunk buffers = "
                         f"{format_bytes(mem)} is more than 90% of the "
                         f"{format_bytes(_available_ram())} of RAM available; give a smaller "
                         "--cpu-cache or --queue-depth")
    need = (c.capacity // cb) * cb * ranks
    if c.layout == "slab":
        need = max(0, need - _slab_bytes_present(target))
    free = _free_bytes(target)
    if need > free:
        raise UsageError(f"--capacity {format_bytes(c.capacity)}"
                         + (f" x {ranks} ranks" if ranks > 1 else "")
                         + f" needs {format_bytes(need)} but {target} has only "
                         f"{format_bytes(free)} free; give a smaller --capacity")
    if c.engine == "fio":
        from iobench.engines.fio import fio_binary

        fio_binary()


def _us(h: Any, key: str) -> float | None:
    v = (h.get("latency_ns") or {}).get(key)
    return v / 1e3 if isinstance(v, int | float) else None


def _stamp(phases: list[dict[str, Any]], start_mono: int, end_mono: int) -> None:
    a, b = dist.wall_from_mono(start_mono), dist.wall_from_mono(end_mono)
    for p in phases:
        dist.stamp(p, a, b)


def body(res: Recorder, c: Config, tgt: target_mod.Target, root: Path, g: geo.Geometry,
         profile: Any, trace: Any, w: dist.World) -> None:
    o = c.opts
    cb = g.chunk_bytes
    slots = c.capacity // cb
    ram_slots = c.cpu_cache // cb
    store = store_mod.make(c.layout, root / f"rank-{w.rank:03d}", g, slots)
    eng: Engine | None = None
    try:
        if isinstance(store, store_mod.Slab):
            dist.collective(lambda: tgt.check_space(store.need_bytes() * w.size,
                                                    "the slab files"), w, "space")
            store.open()
        tiers = Tiers(ram_slots, slots, o.admit_after, o.promote)
        eng = Engine(store, g, tiers, o, ram_slots * cb, w.rank)
        res.cache = cache_mod.verdict("direct", "o_direct", c.capacity, rereads=True)
        if eng.throttle:
            res.warnings.append(f"test hook {THROTTLE_ENV}={eng.throttle:g} is set: every "
                                "storage chunk read is slowed to that many ns per byte")
        _replay(res, c, eng, g, profile, trace, w)
        if c.search and not eng.stop.is_set():
            eng.clear_storage()
            _search(res, c, eng, g, w)
        if c.engine == "fio" and not eng.stop.is_set():
            eng.clear_storage()
            chunks = _compare(res, c, eng, store, g, w)
            if not eng.stop.is_set():
                _fio_pattern(res, c, eng, store, g, w, chunks)
        _late_verify_errors(res, eng, w)
    finally:
        if eng is not None:
            eng.close()
        store.close(keep=isinstance(store, store_mod.Slab))


def _late_verify_errors(res: Recorder, eng: Engine, w: dist.World) -> None:
    """Chunks the TTFT probes found wrong (the replay's are counted already)."""
    local = eng.verify_errors() - eng.replay_verify_errors
    n = sum(dist.collective(lambda: local, w, "verify")) if w.size > 1 else local
    if n:
        res.metrics["verify_errors"] = res.metrics.get("verify_errors", 0) + n
        res.mark("failed", f"{n} chunks read back by the TTFT search failed their check "
                 f"(first: {eng.first_error()})")


def _replay(res: Recorder, c: Config, eng: Engine, g: geo.Geometry, profile: Any, trace: Any,
            w: dist.World) -> None:
    error: BaseException | None = None
    try:
        users, start, end = eng.replay(profile, trace)
        error = next((u.error for u in users if u.error is not None), None)
    except KeyboardInterrupt as e:
        error = e
        users, start, end = eng.last
    phases, counters = eng.replay_phases(users, start, end)
    eng.replay_verify_errors = counters["verify_errors"]
    counters["evictions_storage"] = eng.tiers.sto.evictions
    counters["evictions_ram"] = eng.tiers.ram.evictions
    if w.size == 1 or isinstance(error, KeyboardInterrupt):
        # one process, or Ctrl-C (mpirun delivers it to every rank): what this rank measured
        for p in phases:
            res.add_phase(p)
        _metrics(res, c, g, phases, [counters], eng)
        if error is not None:
            raise error
        return
    _stamp(phases, start, end)

    def mine() -> tuple[list[dict[str, Any]], dict[str, int]]:
        if error is not None:  # every rank learns which rank failed, and why
            raise error
        return phases, counters

    per_rank = dist.collective(mine, w, "kvcache replay")
    merged = dist.merge_phases([p for p, _ in per_rank])
    for p in merged:
        res.add_phase(p)
    _metrics(res, c, g, merged, [k for _, k in per_rank], eng)


def _metrics(res: Recorder, c: Config, g: geo.Geometry, phases: list[dict[str, Any]],
             per_rank: list[dict[str, int]], eng: Engine) -> None:
    k = {key: sum(r.get(key, 0) for r in per_rank) for key in per_rank[0]}
    req, rd, wr = phases[0], phases[1], phases[2]
    s = req["seconds"] or 1e-9
    m = res.metrics
    m.update({
        "kv_token_bytes": g.bytes_per_token, "chunk_tokens": g.chunk_tokens,
        "chunk_bytes": g.chunk_bytes, "chunk_payload_bytes": g.payload_bytes,
        "replay_s": req["seconds"], "requests": k["requests"],
        "requests_restored": k["requests_restored"],
    })
    for name, ph in (("restore", req), ("chunk_read", rd), ("chunk_write", wr)):
        for pk in ("p50", "p90", "p99", "p99_9"):
            m[f"{name}_{pk}_us"] = _us(ph, pk)
    tokens_cached = k["tokens_ram"] + k["tokens_storage"]
    chunks = k["chunks"] or 1
    hours = s / 3600
    m.update({
        "read_bytes": rd["bytes"], "write_bytes": wr["bytes"],
        "read_gb_per_s": rd["bytes"] / s / 1e9, "write_gb_per_s": wr["bytes"] / s / 1e9,
        "chunk_ops_per_s": (rd["ops"] + wr["ops"]) / s,
        "chunk_reads": rd["ops"], "chunk_writes": wr["ops"],
        "cached_tokens": tokens_cached, "cached_tokens_storage": k["tokens_storage"],
        "cached_tokens_ram": k["tokens_ram"],
        "read_per_cached_token_bytes": rd["bytes"] / tokens_cached if tokens_cached
        else None,
        "written_per_cached_token_bytes": (wr["bytes"] / tokens_cached if tokens_cached
                                           else None),
        "storage_hit_ratio": k["storage_hits"] / chunks,
        "ram_hit_ratio": k["ram_hits"] / chunks,
        "miss_ratio": k["misses"] / chunks,
        "chunks_looked_up": k["chunks"], "storage_hits": k["storage_hits"],
        "ram_hits": k["ram_hits"], "misses": k["misses"],
        "evictions_storage": k["evictions_storage"], "evictions_ram": k["evictions_ram"],
        "skipped_full": k["skipped_full"], "skipped_dup": k["skipped_dup"],
        "written_per_hour_bytes": wr["bytes"] / hours if hours else 0.0,
        "storage_tokens_per_s": k["tokens_storage"] / s,
        "ram_tokens_per_s": k["tokens_ram"] / s,
        "verify_errors": k["verify_errors"],
        "turn_syncs": k["turn_syncs"],
    })
    lag = next((p for p in phases if p["name"] == "kv trace lateness"), None)
    if lag is not None:
        m["trace_lag_p99_us"] = _us(lag, "p99")
    if c.drive_size:
        m["dwpd"] = wr["bytes"] / s * 86400 / c.drive_size
    if k["verify_errors"]:
        res.mark("failed", f"{k['verify_errors']} restored chunks failed their check "
                 f"(first: {eng.first_error()})")


def _search(res: Recorder, c: Config, eng: Engine, g: geo.Geometry, w: dist.World) -> None:
    """The longest context (whole chunks) whose restore meets --ttft at p99 with
    --search-users concurrent restores: doubling, then bisection, as `train --find-max`."""
    ct = g.chunk_tokens
    users = c.search_users
    per_user = eng.store.slots // users
    limit = min(per_user, c.max_context // ct)
    m = res.metrics
    m["ttft_us"] = c.ttft_s * 1e6
    m["prefill_rate_tokens_per_s"] = c.prefill_rate
    if limit < 1:
        res.warnings.append(f"TTFT search skipped: --capacity holds {eng.store.slots} chunks, "
                            f"fewer than one per --search-users ({users})")
        return
    written = [0]
    seen: dict[int, dict[str, Any]] = {}
    budget_ns = c.ttft_s * 1e9

    def probe(n: int) -> bool:
        if n in seen:
            return bool(seen[n]["metrics"]["passed"])
        if written[0] < n:
            eng.write_set([(PROBE_UID + u * per_user + j, 1, u * per_user + j)
                           for u in range(users) for j in range(written[0], n)])
            written[0] = n

        def part() -> list[dict[str, Any]]:
            t0 = time.monotonic_ns()
            h, nbytes, ns = eng.probe(n, users, per_user, c.search_requests)
            ph = make_phase(f"ttft probe {n * ct} tokens", nbytes=nbytes, seconds=ns / 1e9,
                            ops=h.count, latency=h, direction="read",
                            metrics={"latency_unit": "per restore request",
                                     "queue": eng.queue})
            _stamp([ph], t0, time.monotonic_ns())
            return [ph]

        ph = dist.combine(part, w, f"ttft probe {n}")[0] if w.size > 1 else part()[0]
        p99 = ph["latency_ns"].get("p99")
        ok = p99 is not None and p99 <= budget_ns
        ph["metrics"].update({"context_tokens": n * ct, "chunks": n, "passed": ok,
                              "restore_p99_us": p99 / 1e3 if p99 is not None else None,
                              "restores": ph["ops"]})
        res.add_phase(ph)
        seen[n] = ph
        return ok

    lo, hi = 0, 0
    n = 1
    while True:
        if eng.stop.is_set():
            return
        if not probe(n):
            hi = n
            break
        lo = n
        if n >= limit:
            break
        n = min(n * 2, limit)
    while hi and hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    m["ttft_probes"] = [{"context_tokens": p["metrics"]["context_tokens"],
                         "p99_us": p["metrics"]["restore_p99_us"], "passed": p["metrics"]["passed"],
                         "restores": p["ops"]} for p in seen.values()]
    m["ttft_search_limit_tokens"] = limit * ct
    m["max_context_tokens"] = lo * ct
    if lo:
        best = seen[lo]
        p99_ms = best["metrics"]["restore_p99_us"] / 1e3
        recompute_ms = lo * ct / c.prefill_rate * 1e3
        m.update({"restore_p99_at_max_us": p99_ms * 1e3,
                  "recompute_at_max_us": recompute_ms * 1e3,
                  "speedup_vs_recompute": recompute_ms / p99_ms if p99_ms else None,
                  "restore_at_max_gb_per_s": best["gb_per_s"]})
        m["ttft_statement"] = (
            f"{lo * ct} tokens ({format_bytes(lo * g.chunk_bytes)} of KV) restore within "
            f"{c.ttft_s * 1e3:g} ms at p99 with {users} concurrent restore(s) "
            f"(p99 {p99_ms:.1f} ms; recompute at {c.prefill_rate:g} tokens/s: "
            f"{recompute_ms:.0f} ms, {recompute_ms / p99_ms:.1f}x slower)")
        if lo == limit:
            res.warnings.append(
                f"TTFT search stopped at its limit of {limit * ct} tokens (--capacity per "
                "user, or --max-context): the storage may restore more; raise them")
    else:
        m["ttft_statement"] = (f"not even one chunk ({ct} tokens) restores within "
                               f"{c.ttft_s * 1e3:g} ms at p99 with {users} concurrent "
                               "restore(s)")


def compare_set(store: store_mod.Store) -> list[tuple[int, int, int]]:
    """The (uid, gen, slot) chunks of the fio comparison: up to COMPARE_CHUNKS chunk files,
    or the first slots of slab 0."""
    n = min(store.slots, COMPARE_CHUNKS)
    if isinstance(store, store_mod.Slab):
        n = min(n, store.per_file)
    return [(COMPARE_UID + j, 1, j) for j in range(n)]


def fio_chunk_reads(store: store_mod.Store, chunks: list[tuple[int, int, int]],
                    g: geo.Geometry, queue_depth: int, runtime_s: float, layout: str,
                    ramp_s: float = 0.0, request_chunks: int = 0) -> dict[str, Any]:
    """fio's side of the comparison: random whole-chunk reads of the same chunk set,
    bs = chunk bytes, iodepth = queue depth, libaio, O_DIRECT, its buffers on huge pages
    where the native side's are (engines.fio's job file; ramp_s: fio's ramp_time, its
    start-up left out of its figures; request_chunks: in restore requests of that many)."""
    from iobench.engines import fio

    huge = on_huge_pages(g.chunk_bytes)
    files, file_bytes = store.fio_files(chunks)
    phases, _text = fio.run_chunks(store.root, files, name="kv chunk reads fio",
                                   file_bytes=file_bytes, chunk_sizes={g.chunk_bytes: 1},
                                   iodepth=queue_depth, runtime_s=runtime_s, ramp_s=ramp_s,
                                   request_chunks=request_chunks, huge_buffers=huge,
                                   comment=f"infer kvcache chunk reads ({layout})")
    ph = phases[0]
    ph["metrics"].update({"block_size_bytes": g.chunk_bytes, "queue_depth": queue_depth,
                          "chunks": len(chunks), "ioengine": "libaio", "huge_buffers": huge})
    return ph


def _compare(res: Recorder, c: Config, eng: Engine, store: store_mod.Store, g: geo.Geometry,
             w: dist.World) -> list[tuple[int, int, int]]:
    """Random whole-chunk reads of one set of chunk files (or slab slots) natively and
    through fio, bs = chunk bytes, iodepth = --queue-depth; returns the set."""
    chunks = compare_set(store)
    eng.write_set(chunks)

    def native() -> list[dict[str, Any]]:
        t0 = time.monotonic_ns()
        ph = eng.compare_native(chunks, c.fio_runtime_s)
        _stamp([ph], t0, time.monotonic_ns())
        return [ph]

    def with_fio() -> list[dict[str, Any]]:
        t0 = time.monotonic_ns()
        ph = fio_chunk_reads(store, chunks, g, c.opts.queue_depth, c.fio_runtime_s, c.layout)
        _stamp([ph], t0, time.monotonic_ns())
        return [ph]

    def one(fn: Any, what: str) -> dict[str, Any]:
        ph: dict[str, Any] = dist.combine(fn, w, what)[0] if w.size > 1 else fn()[0]
        return ph

    if c.fio_first:
        fp = one(with_fio, "kv fio chunk reads")
        nat = one(native, "kv native chunk reads")
    else:
        nat = one(native, "kv native chunk reads")
        fp = one(with_fio, "kv fio chunk reads")
    res.add_phase(nat)
    res.add_phase(fp)
    m = res.metrics
    m.update({"native_chunk_read_gb_per_s": nat["gb_per_s"],
              "fio_chunk_read_gb_per_s": fp["gb_per_s"],
              "native_to_fio": nat["gb_per_s"] / fp["gb_per_s"] if fp["gb_per_s"] else None,
              "native_chunk_read_p99_us": _us(nat, "p99"),
              "fio_chunk_read_p99_us": _us(fp, "p99")})
    return chunks


def _fio_pattern(res: Recorder, c: Config, eng: Engine, store: store_mod.Store,
                 g: geo.Geometry, w: dist.World, chunks: list[tuple[int, int, int]]) -> None:
    """The replay's chunk pattern as one fio job on the comparison's chunk set: its mix of
    chunk reads and writes (rwmixread from the replay's counts), its chunk sizes (bs, or
    bssplit where they differ), --queue-depth as iodepth, its fsync policy (fsync=N), for
    --fio-runtime. Reported in the replay's metrics with a fio_pattern_ prefix."""
    from iobench.engines import fio

    m = res.metrics
    reads, writes = int(m.get("chunk_reads") or 0), int(m.get("chunk_writes") or 0)
    if reads + writes == 0:
        res.warnings.append("the replay moved no chunk to or from storage: no fio pattern "
                            "to run")
        return
    mix = round(100 * reads / (reads + writes))
    # every stored chunk is chunk_bytes (a context's partial tail chunk is not stored)
    sizes = {g.chunk_bytes: reads + writes}
    syncs = int(m.get("turn_syncs") or 0)
    every = 1 if eng.sync_chunk else (max(1, round(writes / syncs)) if eng.sync_turn and
                                      syncs else 0)
    files, file_bytes = store.fio_files(chunks)
    huge = on_huge_pages(g.chunk_bytes)

    def part() -> list[dict[str, Any]]:
        t0 = time.monotonic_ns()
        phases, _text = fio.run_chunks(
            store.root, files, name="kv chunk pattern fio", file_bytes=file_bytes,
            chunk_sizes=sizes, iodepth=c.opts.queue_depth, runtime_s=c.fio_runtime_s,
            rwmixread=mix, fsync_every=every, huge_buffers=huge,
            comment=f"infer kvcache chunk pattern ({c.layout}): {mix}% reads")
        for p in phases:
            p["metrics"].update({"block_size_bytes": g.chunk_bytes, "huge_buffers": huge,
                                 "queue_depth": c.opts.queue_depth, "chunks": len(chunks),
                                 "ioengine": "libaio", "rwmixread": mix,
                                 "bssplit": "/".join(f"{b}:{n}" for b, n in sizes.items())})
        _stamp(phases, t0, time.monotonic_ns())
        return phases

    phases = dist.combine(part, w, "kv fio chunk pattern") if w.size > 1 else part()
    for p in phases:
        res.add_phase(p)
    rd = next((p for p in phases if p["direction"] == "read"), None)
    wr = next((p for p in phases if p["direction"] == "write"), None)
    io = [p for p in (rd, wr) if p is not None]
    secs = max((p["seconds"] for p in io), default=0.0)
    m.update({
        "fio_pattern_read_gb_per_s": rd["gb_per_s"] if rd else 0.0,
        "fio_pattern_write_gb_per_s": wr["gb_per_s"] if wr else 0.0,
        "fio_pattern_chunk_ops_per_s": sum(p["ops"] for p in io) / secs if secs else 0.0,
        "fio_pattern_read_p50_us": _us(rd, "p50") if rd else None,
        "fio_pattern_read_p99_us": _us(rd, "p99") if rd else None,
        "fio_pattern_write_p50_us": _us(wr, "p50") if wr else None,
        "fio_pattern_write_p99_us": _us(wr, "p99") if wr else None,
        "fio_pattern_read_share_pct": float(mix),
    })


def spec_dict(c: Config, m: Any, g: geo.Geometry, ranks: int) -> dict[str, Any]:
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(c).items()
         if k != "opts"}
    d.update(asdict(c.opts))
    d.update({"bytes_per_token": g.bytes_per_token, "chunk_bytes": g.chunk_bytes,
              "model_spec": dict(m.__dict__)})
    if ranks > 1:
        d["ranks"] = ranks
    return d

