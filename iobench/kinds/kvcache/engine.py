"""The KV-cache replay: user sessions (or a trace) that restore stored prefixes and write
new chunks, the TTFT search and the fio comparison, over iobench.engines.chunks (the pool
of --queue-depth workers, the AIO read lane, the timed random chunk reads).

Memory: the RAM tier's buffer (--cpu-cache) plus queue-depth chunk buffers shared by the
pool threads and the reads in flight, whatever the capacity or the run length. Every chunk
read and write is one O_DIRECT I/O of the whole chunk into a page-aligned buffer: reads
through Linux AIO (as fio's libaio), writes as a pwrite from a pool thread; nothing is
serialized or copied on the way.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iobench.engines import chunks as chunk_io
from iobench.engines.chunks import ChunkReads, Pool, Worker
from iobench.engines.native import aligned_buffer
from iobench.errors import RunFailed
from iobench.kinds.kvcache.geometry import Geometry
from iobench.kinds.kvcache.profiles import Profile
from iobench.kinds.kvcache.store import ChunkCodec, Slab, Store
from iobench.kinds.kvcache.tiers import Step, Tiers
from iobench.kinds.kvcache.trace import Request
from iobench.results import make_phase
from iobench.stats import Histogram, LatencyRecorder

# Test hook: a throttled reader. Each storage chunk read takes at least nbytes x this many
# nanoseconds (the pool sleeps out the difference), so a test knows the restore time and
# therefore the TTFT search's answer. Never set outside tests; a run that has it says so.
THROTTLE_ENV = "IOBENCH_TEST_KV_READ_NS_PER_BYTE"
PROBE_UID = 1 << 30  # uids of the TTFT search's chunks
COMPARE_UID = 1 << 31  # uids of the fio comparison's chunks
COUNTERS = ("requests", "requests_restored", "chunks", "ram_hits", "storage_hits", "misses",
            "tokens_total", "tokens_ram", "tokens_storage", "chunks_written",
            "chunks_computed", "skipped_full", "skipped_dup", "verify_errors",
            "turn_syncs")
RECORDERS = ("read", "write", "ram", "compare")
WORKER_COUNTERS = ("verify_errors",)  # bytes and ops per recorder: the engine's Worker


@dataclass
class Options:
    users: int = 4
    queue_depth: int = 8
    promote: bool = True
    admit_after: int = 1
    fsync: str = "turn"  # chunk | turn | none
    decode_s: float = 0.0  # per output token
    duration_s: float | None = None
    requests: int = 0  # 0: no cap
    trace_speed: float = 0.0  # 0: as fast as possible; 1: the trace's own timestamps
    verify: bool = False
    seed: int = 0


def _run_all(threads: Sequence[threading.Thread], stop: threading.Event) -> None:
    """Start the threads and wait for them; Ctrl-C (even while they are being started)
    sets `stop`, waits for the started ones to finish their request, and re-raises."""
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            if t.ident is not None:
                t.join(60)
        raise


@dataclass
class UserStats:
    restore: LatencyRecorder = field(default_factory=LatencyRecorder)
    fsync: LatencyRecorder = field(default_factory=LatencyRecorder)
    lag: LatencyRecorder = field(default_factory=LatencyRecorder)  # trace: start - due
    n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    error: BaseException | None = None


class Engine:
    def __init__(self, store: Store, geom: Geometry, tiers: Tiers, opts: Options,
                 ram_bytes: int, rank: int = 0) -> None:
        self.store = store
        self.geom = geom
        self.tiers = tiers
        self.o = opts
        self.rank = rank
        self.codec = ChunkCodec(geom, opts.seed, rank)
        cb = geom.chunk_bytes
        self.ram = aligned_buffer(ram_bytes) if ram_bytes else None
        self.ram_arr = np.frombuffer(self.ram, dtype=np.uint8) if self.ram is not None \
            else np.zeros(0, dtype=np.uint8)
        self.pool = Pool(opts.queue_depth, cb, RECORDERS, WORKER_COUNTERS)
        self.throttle = float(os.environ.get(THROTTLE_ENV, "0") or 0)
        from iobench.engines import aio

        # storage reads: Linux AIO as fio's libaio; threads with pread where AIO is missing
        # or the test hook throttles reads (it sleeps in the reading thread)
        self.aio = ChunkReads(self.pool) if aio.available() and not self.throttle else None
        self.queue = "linux-aio" if self.aio is not None else "threads"
        slab = isinstance(store, Slab)
        self.sync_chunk = opts.fsync == "chunk" or (opts.fsync == "turn" and not slab)
        self.sync_turn = opts.fsync == "turn" and slab
        self.stop = threading.Event()
        self._count_lock = threading.Lock()
        self._requests = 0
        self.last: tuple[list[UserStats], int, int] = ([], 0, 0)
        self.replay_verify_errors = 0

    # -- pool tasks ---------------------------------------------------------------------
    def _ram_view(self, slot: int) -> np.ndarray:
        cb = self.geom.chunk_bytes
        return self.ram_arr[slot * cb:(slot + 1) * cb]

    def _read(self, w: Worker, uid: int, gen: int, slot: int, kind: str) -> None:
        """One storage chunk read on a pool thread (no AIO lane, or the throttled reader)."""
        cb = self.geom.chunk_bytes
        n = w.read(kind, lambda mv: self.store.read(uid, gen, slot, mv), cb, self.throttle)
        if n != cb:
            raise RunFailed(f"chunk {uid}: short read ({n} of {cb} bytes): "
                            "a chunk file was truncated or removed by someone else")

    def _opener(self, uid: int, gen: int, slot: int
                ) -> Callable[[], tuple[int, int, bool]]:
        return lambda: self.store.open_read(uid, gen, slot)

    def _landed(self, w: Worker | None, res: int, uid: int) -> Worker:
        """An AIO read finished (the lane recorded and counted it): raise on failure."""
        if w is None or res < 0:
            raise OSError(-res, f"chunk {uid}: read failed: {os.strerror(-res)}")
        if res != self.geom.chunk_bytes:
            raise RunFailed(f"chunk {uid}: short read ({res} of {self.geom.chunk_bytes} "
                            "bytes): a chunk file was truncated or removed by someone else")
        return w

    def _restored_from_storage(self, w: Worker, st: Step) -> bool:
        ok = self._check(w, st.uid, st.gen)
        if ok and st.ram_slot >= 0:  # promotion: the read lands in host RAM
            np.copyto(self._ram_view(st.ram_slot), w.arr)
        return ok

    def _restore_aio(self, st: Step) -> Callable[[Worker | None, int, int], None]:
        def done(w: Worker | None, res: int, lat: int) -> None:
            ok = False
            try:
                ok = self._restored_from_storage(self._landed(w, res, st.uid), st)
            finally:
                self.tiers.restored(st, ok)
        return done

    def _restore(self, steps: Sequence[Step]) -> None:
        """Every chunk of a stored prefix, all at once (RAM copies on the pool threads,
        storage reads through AIO or the threads), returning when the last is in."""
        if self.aio is None:
            chunk_io.restore(self.pool, None, [self._restore_task(s) for s in steps], [])
        else:
            chunk_io.restore(self.pool, self.aio,
                             [self._restore_task(s) for s in steps if s.tier == "ram"],
                             [(self._opener(s.uid, s.gen, s.slot), self._restore_aio(s))
                              for s in steps if s.tier != "ram"])

    def _check(self, w: Worker, uid: int, gen: int | None) -> bool:
        err = self.codec.check(w.arr, uid, gen, self.o.verify)
        if err is not None:
            w.n["verify_errors"] += 1
            w.first_error = w.first_error or f"chunk {uid}: {err}"
        return err is None

    def _restore_task(self, st: Step) -> Callable[[Worker], None]:
        def task(w: Worker) -> None:
            ok = False
            try:
                if st.tier == "ram":
                    w.copy("ram", w.arr, self._ram_view(st.ram_slot))
                    self._check(w, st.uid, None)
                    ok = True
                else:
                    self._read(w, st.uid, st.gen, st.slot, "read")
                    ok = self._restored_from_storage(w, st)
            finally:
                self.tiers.restored(st, ok)
        return task

    def _write_task(self, st: Step) -> Callable[[Worker], None]:
        def task(w: Worker) -> None:
            stored = in_ram = False
            try:
                self.codec.fill(w.arr, st.uid, st.gen)  # the prefill computed this chunk
                if st.slot >= 0:
                    for vu, vg in st.evicted:
                        self.store.remove(vu, vg)
                    w.write("write", lambda mv: self.store.write(st.uid, st.gen, st.slot, mv,
                                                                 self.sync_chunk),
                            self.geom.chunk_bytes)
                    stored = True
                if st.ram_slot >= 0:
                    np.copyto(self._ram_view(st.ram_slot), w.arr)
                    in_ram = True
            finally:
                self.tiers.written(st, stored, in_ram)
        return task

    # -- one request --------------------------------------------------------------------
    def request(self, keys: list[Hashable], input_tokens: int, u: UserStats) -> None:
        ct = self.geom.chunk_tokens
        t0 = time.monotonic_ns()
        plan = self.tiers.plan(keys)
        n = u.n
        n["requests"] += 1
        n["chunks"] += plan.chunks
        ram = sum(1 for s in plan.restore if s.tier == "ram")
        sto = len(plan.restore) - ram
        n["ram_hits"] += ram
        n["storage_hits"] += sto
        n["misses"] += plan.chunks - ram - sto
        n["tokens_total"] += input_tokens
        n["tokens_ram"] += ram * ct
        n["tokens_storage"] += sto * ct
        n["skipped_full"] += plan.skipped_full
        n["skipped_dup"] += plan.skipped_dup
        n["chunks_computed"] += plan.chunks - ram - sto
        try:
            self._restore(plan.restore)
        except BaseException:
            for s in plan.write:  # nothing of this request gets written: release its slots
                self.tiers.written(s, False, False)
            raise
        if plan.restore:
            u.restore.add(time.monotonic_ns() - t0)
            n["requests_restored"] += 1
        self.pool.run([self._write_task(s) for s in plan.write])
        n["chunks_written"] += sum(1 for s in plan.write if s.slot >= 0)
        if self.sync_turn:
            slots = {s.slot for s in plan.write if s.slot >= 0}
            if slots:
                n["turn_syncs"] += chunk_io.timed(u.fsync, lambda: self.store.sync(slots))

    def _take(self) -> bool:
        """Count one more request against --requests; False when the cap is reached."""
        with self._count_lock:
            if self.o.requests and self._requests >= self.o.requests:
                return False
            self._requests += 1
            return True

    def _decode(self, tokens: int) -> None:
        if self.o.decode_s > 0 and tokens > 0:
            self.stop.wait(self.o.decode_s * tokens)

    # -- replay -------------------------------------------------------------------------
    def replay(self, profile: Profile | None, trace: list[Request] | None
               ) -> tuple[list[UserStats], int, int]:
        """Run --users users until --duration/--requests (or the trace) is done; returns
        (per-user stats, start ns, end ns). Ctrl-C stops the users after their request."""
        users = [UserStats() for _ in range(self.o.users)]
        start = time.monotonic_ns()
        default = None if trace is not None else 30.0
        dur = self.o.duration_s if self.o.duration_s is not None else default
        deadline = start + int(dur * 1e9) if dur else 0
        nxt = [0]
        lock = threading.Lock()

        def next_trace() -> Request | None:
            assert trace is not None
            with lock:
                if nxt[0] >= len(trace):
                    return None
                r = trace[nxt[0]]
                nxt[0] += 1
            return r

        def go_on() -> bool:
            return not self.stop.is_set() and not (deadline and time.monotonic_ns() >= deadline)

        def user(i: int) -> None:
            u = users[i]
            ct = self.geom.chunk_tokens
            try:
                if trace is not None:
                    while go_on():
                        r = next_trace()
                        if r is None or not self._take():
                            return
                        if self.o.trace_speed > 0:
                            due = start + int(r.timestamp_ms * 1e6 / self.o.trace_speed)
                            if self.stop.wait(max(0, due - time.monotonic_ns()) / 1e9):
                                return
                            # how late the request starts: > 0 when --users cannot keep up
                            u.lag.add(max(0, time.monotonic_ns() - due))
                        self.request(list(r.chunk_keys(ct)), r.input_length, u)
                        self._decode(r.output_length)
                    return
                assert profile is not None
                rng = np.random.default_rng([self.o.seed, self.rank, i])
                session = 0
                while go_on():
                    session += 1
                    ctx = 0
                    out = 0
                    for t in range(profile.draw(rng, "turns")):
                        if not go_on() or not self._take():
                            return
                        ctx += (profile.draw(rng, "context_tokens") if t == 0 else
                                profile.draw(rng, "turn_tokens")) + out
                        keys: list[Hashable] = [(i, session, j) for j in range(ctx // ct)]
                        self.request(keys, ctx, u)
                        out = profile.draw(rng, "output_tokens")
                        self._decode(out)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                u.error = e
                self.stop.set()

        threads = [threading.Thread(target=user, args=(i,), daemon=True)
                   for i in range(self.o.users)]
        try:
            _run_all(threads, self.stop)
        finally:
            end = time.monotonic_ns()
            self.last = (users, start, end)  # what was measured, also when interrupted
        return users, start, end

    # -- phases ---------------------------------------------------------------------------
    def replay_phases(self, users: list[UserStats], start: int, end: int
                      ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        s = (end - start) / 1e9
        p = self.pool
        x = [self.aio.w] if self.aio is not None else []
        req = Histogram.merged(u.restore.flush() for u in users)
        counters = {k: sum(u.n[k] for u in users) for k in COUNTERS}
        counters["verify_errors"] = p.total("verify_errors", x)
        cb = self.geom.chunk_bytes
        restored_bytes = (counters["ram_hits"] + counters["storage_hits"]) * cb
        phases = [
            make_phase("kv restore requests", nbytes=restored_bytes, seconds=s,
                       ops=counters["requests_restored"], latency=req, direction="read",
                       metrics={"latency_unit": "per request: every chunk of its stored "
                                "prefix, RAM and storage, queueing included",
                                # its bytes are the storage reads' and the RAM copies'
                                "summary": True}),
            make_phase("kv chunk reads (storage)", nbytes=p.bytes("read", x), seconds=s,
                       ops=p.ops("read", x), latency=p.hist("read", x), direction="read",
                       metrics={"queue": self.queue,
                                "latency_unit": "per chunk read (one O_DIRECT read of the "
                                "chunk; AIO: submission to completion)"}),
            make_phase("kv chunk writes (storage)", nbytes=p.bytes("write"), seconds=s,
                       ops=p.ops("write"), latency=p.hist("write"), direction="write",
                       metrics={"latency_unit": "per chunk write (one pwrite, O_DIRECT"
                                + (", + fsync" if self.sync_chunk else "") + ")"}),
        ]
        if self.ram is not None:
            phases.append(make_phase(
                "kv chunk copies (RAM tier)", nbytes=p.bytes("ram"), seconds=s,
                ops=p.ops("ram"), latency=p.hist("ram"), engine="ram",
                direction="read", metrics={"latency_unit": "per chunk memcpy"}))
        lag = Histogram.merged(u.lag.flush() for u in users)
        if lag.count:
            phases.append(make_phase("kv trace lateness", nbytes=0, seconds=s, ops=lag.count,
                                     latency=lag, direction="none",
                                     metrics={"latency_unit": "per request: start minus its "
                                              "trace timestamp / --trace-speed"}))
        if self.sync_turn:
            f = Histogram.merged(u.fsync.flush() for u in users)
            phases.append(make_phase("kv fsync per turn", nbytes=0, seconds=s, ops=f.count,
                                     latency=f, direction="sync"))
        return phases, counters

    def first_error(self) -> str | None:
        every = [*self.pool.workers, *([self.aio.w] if self.aio is not None else [])]
        return next((w.first_error for w in every if w.first_error), None)

    # -- direct chunk sets (TTFT search, fio comparison) --------------------------------
    def clear_storage(self) -> None:
        """Evict everything the replay stored (files removed, slots freed)."""
        with self.tiers.lock:
            items = list(self.tiers.sto.map.items())
            for uid, _slot in items:
                self.tiers.sto.drop(uid)
            gens = dict(self.tiers.gens)
        for uid, _slot in items:
            self.store.remove(uid, gens[uid])

    def write_set(self, chunks: Sequence[tuple[int, int, int]]) -> None:
        """Write (uid, gen, slot) chunks outside any measurement (fsync'd): the run's
        byte audit leaves them out (verify.untimed over the whole process: the pool
        threads write them while nothing else moves bytes)."""
        from iobench import verify

        def task(c: tuple[int, int, int]) -> Callable[[Worker], None]:
            def fn(w: Worker) -> None:
                self.codec.fill(w.arr, c[0], c[1])
                self.store.write(c[0], c[1], c[2], w.mv, True)
            return fn

        with verify.untimed(children=True):
            self.pool.run([task(c) for c in chunks])

    def restore_once(self, chunks: Sequence[tuple[int, int, int]]) -> int:
        """Restore these chunks from storage (up to queue depth at once); returns ns."""
        def task(c: tuple[int, int, int]) -> Callable[[Worker], None]:
            def fn(w: Worker) -> None:
                self._read(w, c[0], c[1], c[2], "compare")
                self._check(w, c[0], c[1])
            return fn

        def done(c: tuple[int, int, int]) -> Callable[[Worker | None, int, int], None]:
            def fn(w: Worker | None, res: int, lat: int) -> None:
                self._check(self._landed(w, res, c[0]), c[0], c[1])
            return fn

        if self.aio is None:
            return chunk_io.restore(self.pool, None, [task(c) for c in chunks], [])
        return chunk_io.restore(self.pool, self.aio, [],
                                [(self._opener(*c), done(c)) for c in chunks], "compare")

    def probe(self, n: int, users: int, per_user: int, restores: int
              ) -> tuple[Histogram, int, int]:
        """Each of `users` restores its own n-chunk prefix `restores` times at once; returns
        the request latency histogram, bytes read and ns taken."""
        sets = [[(PROBE_UID + u * per_user + j, 1, u * per_user + j) for j in range(n)]
                for u in range(users)]
        recs = [LatencyRecorder() for _ in sets]
        errors: list[BaseException] = []

        def user(i: int) -> None:
            try:
                for _ in range(restores):
                    if self.stop.is_set():
                        return
                    recs[i].add(self.restore_once(sets[i]))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                self.stop.set()

        t0 = time.monotonic_ns()
        threads = [threading.Thread(target=user, args=(i,), daemon=True)
                   for i in range(len(sets))]
        _run_all(threads, self.stop)
        if errors:
            raise errors[0]
        h = Histogram.merged(r.flush() for r in recs)
        return h, h.count * n * self.geom.chunk_bytes, time.monotonic_ns() - t0

    def compare_native(self, chunks: Sequence[tuple[int, int, int]], runtime_s: float
                       ) -> dict[str, Any]:
        """Random whole-chunk reads of the set for runtime_s with --queue-depth in flight
        (iobench.engines.chunks.read_random): the native side of the fio comparison (fio:
        randread, bs = chunk, iodepth = queue depth, the same files opened once)."""
        cb = self.geom.chunk_bytes
        opened = [self.store.open_read(*c) for c in chunks]
        try:
            got = chunk_io.read_random([fd for fd, _, _ in opened],
                                       [off for _, off, _ in opened], cb,
                                       self.o.queue_depth, runtime_s, seed=self.o.seed,
                                       should_stop=self.stop.is_set)
        finally:
            for fd, _, own in opened:
                if own:
                    os.close(fd)
        return make_phase("kv chunk reads native (vs fio)", nbytes=got["bytes"],
                          seconds=got["seconds"], ops=got["ops"], latency=got["latency"],
                          direction="read",
                          metrics={"block_size_bytes": cb, "queue_depth": self.o.queue_depth,
                                   "chunks": len(chunks), "queue": got["queue"],
                                   "loop": got["loop"],
                                   **({"in_flight_mean": got["in_flight_mean"]}
                                      if "in_flight_mean" in got else {})})

    def verify_errors(self) -> int:
        return self.pool.total("verify_errors", [self.aio.w] if self.aio is not None else [])

    def close(self) -> None:
        self.stop.set()
        if self.aio is not None:
            self.aio.close()
        self.pool.close()  # the buffers go with the pool (AIO iocbs point into them)
        if self.ram is not None:
            del self.ram_arr
            self.ram.close()
