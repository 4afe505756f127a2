"""The body of `iobench infer kvcache`: checks, the replay, the TTFT search, the fio
comparison and the metrics (merged over pool threads, users and MPI ranks)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iobench import cache as cache_mod
from iobench import dist
from iobench import target as target_mod
from iobench.errors import UsageError
from iobench.infer.kvcache import geometry as geo
from iobench.infer.kvcache import profiles as prof_mod
from iobench.infer.kvcache import store as store_mod
from iobench.infer.kvcache import trace as trace_mod
from iobench.infer.kvcache.engine import (
    COMPARE_UID,
    PROBE_UID,
    THROTTLE_ENV,
    Engine,
    Options,
)
from iobench.infer.kvcache.tiers import Tiers
from iobench.results import Recorder, make_phase
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


def check(c: Config, target: Path, ranks: int) -> tuple[Any, geo.Geometry, Any, Any]:
    """Every bad input, before anything is written: (model, geometry, profile, trace)."""
    from iobench.infer import model as model_mod

    o = c.opts
    from iobench.limits import MAX_THREADS

    if not 1 <= o.users <= MAX_THREADS:  # one thread per user: 100000 took > 2 GiB
        raise UsageError(f"--users {o.users}: must be >= 1 and <= {MAX_THREADS} (concurrent "
                         "sessions, one thread each)")
    if not 1 <= o.queue_depth <= MAX_THREADS:
        raise UsageError(f"--queue-depth {o.queue_depth}: must be >= 1 and <= {MAX_THREADS}")
    if o.admit_after < 1:
        raise UsageError(f"--admit-after {o.admit_after}: must be >= 1 (1 admits every "
                         "chunk to storage; 2 as Dynamo)")
    if c.ttft_s <= 0:
        raise UsageError("--ttft must be > 0, e.g. 200ms")
    if not 1 <= c.search_users <= MAX_THREADS:
        raise UsageError(f"--search-users {c.search_users}: must be >= 1 and <= {MAX_THREADS}")
    if c.prefill_rate <= 0:
        raise UsageError(f"--prefill-rate {c.prefill_rate:g}: must be > 0 tokens/s")
    if o.trace_speed < 0:
        raise UsageError(f"--trace-speed {o.trace_speed:g}: must be >= 0 (0: as fast as "
                         "possible, 1: the trace's timestamps)")
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
    mem = c.cpu_cache + o.queue_depth * cb
    if mem > 0.9 * _available_ram():
        raise UsageError(f"--cpu-cache {format_bytes(c.cpu_cache)} + --queue-depth "
                         f"{o.queue_depth} x {format_bytes(cb)} chunk buffers = "
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
    return m, g, profile, trace


def _ms(h: dict[str, Any], key: str) -> float | None:
    v = (h.get("latency_ns") or {}).get(key)
    return v / 1e6 if isinstance(v, int | float) else None


def _stamp(phases: list[dict[str, Any]], start_mono: int, end_mono: int) -> None:
    a, b = dist.wall_from_mono(start_mono), dist.wall_from_mono(end_mono)
    for p in phases:
        dist.stamp(p, a, b)


def body(res: Recorder, c: Config, tgt: target_mod.Target, g: geo.Geometry, profile: Any,
         trace: Any) -> None:
    w = dist.world()
    o = c.opts
    cb = g.chunk_bytes
    slots = c.capacity // cb
    ram_slots = c.cpu_cache // cb
    root = dist.root_first(lambda: tgt.subdir(f"kvcache/{c.layout}"), w)
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
            _compare(res, c, eng, store, g, w)
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
        "bytes_per_token": g.bytes_per_token, "chunk_tokens": g.chunk_tokens,
        "chunk_bytes": g.chunk_bytes, "chunk_payload_bytes": g.payload_bytes,
        "replay_seconds": req["seconds"], "requests": k["requests"],
        "requests_restored": k["requests_restored"],
    })
    for name, ph in (("restore", req), ("chunk_read", rd), ("chunk_write", wr)):
        for pk in ("p50", "p90", "p99", "p99_9"):
            m[f"{name}_{pk}_ms"] = _ms(ph, pk)
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
        "bytes_read_per_cached_token": rd["bytes"] / tokens_cached if tokens_cached else None,
        "bytes_written_per_cached_token": (wr["bytes"] / tokens_cached if tokens_cached
                                           else None),
        "storage_hit_ratio": k["storage_hits"] / chunks,
        "ram_hit_ratio": k["ram_hits"] / chunks,
        "miss_ratio": k["misses"] / chunks,
        "chunks_looked_up": k["chunks"], "storage_hits": k["storage_hits"],
        "ram_hits": k["ram_hits"], "misses": k["misses"],
        "evictions_storage": k["evictions_storage"], "evictions_ram": k["evictions_ram"],
        "skipped_full": k["skipped_full"], "skipped_dup": k["skipped_dup"],
        "write_gb_per_hour": wr["bytes"] / 1e9 / hours if hours else 0.0,
        "storage_tokens_per_s": k["tokens_storage"] / s,
        "ram_tokens_per_s": k["tokens_ram"] / s,
        "verify_errors": k["verify_errors"],
        "turn_syncs": k["turn_syncs"],
    })
    lag = next((p for p in phases if p["name"] == "kv trace lateness"), None)
    if lag is not None:
        m["trace_lag_p99_ms"] = _ms(lag, "p99")
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
    m["ttft_ms"] = c.ttft_s * 1e3
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
                            metrics={"latency_unit": "per restore request"})
            _stamp([ph], t0, time.monotonic_ns())
            return [ph]

        ph = dist.combine(part, w, f"ttft probe {n}")[0] if w.size > 1 else part()[0]
        p99 = ph["latency_ns"].get("p99")
        ok = p99 is not None and p99 <= budget_ns
        ph["metrics"].update({"context_tokens": n * ct, "chunks": n, "passed": ok,
                              "p99_ms": p99 / 1e6 if p99 is not None else None,
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
                         "p99_ms": p["metrics"]["p99_ms"], "passed": p["metrics"]["passed"],
                         "restores": p["ops"]} for p in seen.values()]
    m["ttft_search_limit_tokens"] = limit * ct
    m["max_context_tokens"] = lo * ct
    if lo:
        best = seen[lo]
        p99_ms = best["metrics"]["p99_ms"]
        recompute_ms = lo * ct / c.prefill_rate * 1e3
        m.update({"restore_p99_ms_at_max": p99_ms, "recompute_ms_at_max": recompute_ms,
                  "speedup_vs_recompute": recompute_ms / p99_ms if p99_ms else None,
                  "restore_gb_per_s_at_max": best["gb_per_s"]})
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


def fio_jobfile(root: Path, files: list[Path], file_bytes: int, chunk_bytes: int,
                queue_depth: int, runtime_s: float, layout: str) -> str:
    """fio's job: the same files, whole-chunk random reads, the same queue depth (file
    names relative to `directory=`: fio caps the length of one option value)."""
    from iobench import __version__
    from iobench.engines.fio import PERCENTILE_LIST, _escape

    lines = [f"; iobench {__version__}: infer kvcache chunk reads ({layout}), fio engine",
             "[global]", "rw=randread", f"bs={chunk_bytes}", "ioengine=libaio",
             f"iodepth={queue_depth}", "direct=1", "randrepeat=0", "norandommap=1",
             "invalidate=0", "time_based=1", f"runtime={max(1, round(runtime_s * 1000))}ms",
             "lat_percentiles=1", f"percentile_list={PERCENTILE_LIST}"]
    if len(files) > 1:
        lines += ["file_service_type=random", f"nrfiles={len(files)}",
                  f"filesize={file_bytes}"]
    else:
        lines.append(f"size={file_bytes}")
    lines += ["", "[kvchunks]", f"directory={_escape(root)}",
              "filename=" + ":".join(_escape(p.relative_to(root)) for p in files), ""]
    return "\n".join(lines)


def _compare(res: Recorder, c: Config, eng: Engine, store: store_mod.Store, g: geo.Geometry,
             w: dist.World) -> None:
    """The same chunk pattern through native and fio: random whole-chunk reads of one set
    of chunk files (or slab slots), bs = chunk bytes, iodepth = --queue-depth."""
    from iobench.engines import fio

    n = min(store.slots, COMPARE_CHUNKS)
    if isinstance(store, store_mod.Slab):
        n = min(n, store.per_file)
    chunks = [(COMPARE_UID + j, 1, j) for j in range(n)]
    eng.write_set(chunks)
    files, file_bytes = store.fio_files(chunks)
    text = fio_jobfile(store.root, files, file_bytes, g.chunk_bytes, c.opts.queue_depth,
                       c.fio_runtime_s, c.layout)

    def native() -> list[dict[str, Any]]:
        t0 = time.monotonic_ns()
        ph = eng.compare_native(chunks, c.fio_runtime_s)
        _stamp([ph], t0, time.monotonic_ns())
        return [ph]

    def with_fio() -> list[dict[str, Any]]:
        t0 = time.monotonic_ns()
        doc = fio.run_fio(text, store.root)
        ph = fio.parse(doc, name="kv chunk reads fio")[0]
        ph["metrics"].update({"block_size": g.chunk_bytes, "queue_depth": c.opts.queue_depth,
                              "chunks": n, "ioengine": "libaio"})
        ph["fio"] = {"jobfile": text, "command": (doc.get("iobench") or {}).get("command")}
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
              "native_chunk_read_p99_ms": _ms(nat, "p99"),
              "fio_chunk_read_p99_ms": _ms(fp, "p99")})


def spec_dict(c: Config, m: Any, g: geo.Geometry, ranks: int) -> dict[str, Any]:
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(c).items()
         if k != "opts"}
    d.update(asdict(c.opts))
    d.update({"bytes_per_token": g.bytes_per_token, "chunk_bytes": g.chunk_bytes,
              "model_spec": dict(m.__dict__)})
    if ranks > 1:
        d["ranks"] = ranks
    return d

