"""The KV-cache replay: an I/O pool of --queue-depth workers, user sessions (or a trace)
that restore stored prefixes and write new chunks, the TTFT search and the fio comparison.

Memory: the RAM tier's buffer (--cpu-cache) plus one chunk buffer per pool worker
(queue depth x chunk bytes), whatever the capacity or the run length. Every chunk read
and write is one pread/pwrite of the whole chunk with O_DIRECT into a page-aligned
buffer (the native engine's data path); nothing is serialized or copied on the way.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iobench.engines.native import aligned_buffer
from iobench.errors import RunFailed
from iobench.infer.kvcache.geometry import Geometry
from iobench.infer.kvcache.profiles import Profile
from iobench.infer.kvcache.store import ChunkCodec, Slab, Store
from iobench.infer.kvcache.tiers import Step, Tiers
from iobench.infer.kvcache.trace import Request
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


class Batch:
    """A group of pool tasks the submitter waits for; the first error is kept."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.cv = threading.Condition()
        self.error: BaseException | None = None

    def done(self, error: BaseException | None = None) -> None:
        with self.cv:
            if error is not None and self.error is None:
                self.error = error
            self.left -= 1
            if self.left <= 0:
                self.cv.notify_all()

    def wait(self) -> None:
        with self.cv:
            while self.left > 0:
                self.cv.wait()
        if self.error is not None:
            raise self.error


class Worker:
    """One pool thread's chunk buffer, latency recorders and byte counters."""

    def __init__(self, chunk_bytes: int) -> None:
        self.buf = aligned_buffer(chunk_bytes)
        self.mv = memoryview(self.buf)[:chunk_bytes]
        self.arr = np.frombuffer(self.buf, dtype=np.uint8)[:chunk_bytes]
        self.arr[:] = 0  # touch every page once, outside any timed path
        self.rec = {k: LatencyRecorder() for k in ("read", "write", "ram", "compare")}
        self.n = {k: 0 for k in ("read_bytes", "reads", "write_bytes", "writes", "ram_bytes",
                                 "ram_copies", "compare_bytes", "compare_reads",
                                 "verify_errors")}
        self.first_error: str | None = None


class Pool:
    def __init__(self, n: int, chunk_bytes: int) -> None:
        self.q: queue.SimpleQueue[tuple[Callable[[Worker], None], Batch] | None] = \
            queue.SimpleQueue()
        self.workers = [Worker(chunk_bytes) for _ in range(n)]
        self.threads = [threading.Thread(target=self._loop, args=(w,), daemon=True)
                        for w in self.workers]
        for t in self.threads:
            t.start()

    def _loop(self, w: Worker) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            fn, batch = item
            try:
                fn(w)
            except BaseException as e:  # noqa: BLE001 - handed to the submitter
                batch.done(e)
            else:
                batch.done()

    def run(self, fns: Sequence[Callable[[Worker], None]]) -> None:
        """Run the tasks (up to queue-depth at once, FIFO with everybody else's) and wait."""
        if not fns:
            return
        b = Batch(len(fns))
        for fn in fns:
            self.q.put((fn, b))
        b.wait()

    def close(self) -> None:
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join(30)

    def hist(self, kind: str) -> Histogram:
        return Histogram.merged(w.rec[kind].flush() for w in self.workers)

    def total(self, key: str) -> int:
        return sum(w.n[key] for w in self.workers)


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
        self.pool = Pool(opts.queue_depth, cb)
        self.throttle = float(os.environ.get(THROTTLE_ENV, "0") or 0)
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

    def _read(self, w: Worker, uid: int, gen: int, slot: int, kind: str) -> int:
        mono = time.monotonic_ns
        a = mono()
        n = self.store.read(uid, gen, slot, w.mv)
        if self.throttle:
            wait = a + int(n * self.throttle) - mono()
            if wait > 0:
                time.sleep(wait / 1e9)
        b = mono()
        w.rec[kind].add(b - a)
        if n != self.geom.chunk_bytes:
            raise RunFailed(f"chunk {uid}: short read ({n} of {self.geom.chunk_bytes} bytes): "
                            "a chunk file was truncated or removed by someone else")
        return b - a

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
                    a = time.monotonic_ns()
                    np.copyto(w.arr, self._ram_view(st.ram_slot))
                    w.rec["ram"].add(time.monotonic_ns() - a)
                    w.n["ram_bytes"] += self.geom.chunk_bytes
                    w.n["ram_copies"] += 1
                    self._check(w, st.uid, None)
                    ok = True
                else:
                    self._read(w, st.uid, st.gen, st.slot, "read")
                    w.n["read_bytes"] += self.geom.chunk_bytes
                    w.n["reads"] += 1
                    ok = self._check(w, st.uid, st.gen)
                    if ok and st.ram_slot >= 0:  # promotion: the read lands in host RAM
                        np.copyto(self._ram_view(st.ram_slot), w.arr)
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
                    a = time.monotonic_ns()
                    self.store.write(st.uid, st.gen, st.slot, w.mv, self.sync_chunk)
                    w.rec["write"].add(time.monotonic_ns() - a)
                    w.n["write_bytes"] += self.geom.chunk_bytes
                    w.n["writes"] += 1
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
            self.pool.run([self._restore_task(s) for s in plan.restore])
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
                a = time.monotonic_ns()
                n["turn_syncs"] += self.store.sync(slots)
                u.fsync.add(time.monotonic_ns() - a)

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
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for t in threads:
                t.join(60)
            raise
        finally:
            end = time.monotonic_ns()
            self.last = (users, start, end)  # what was measured, also when interrupted
        return users, start, end

    # -- phases ---------------------------------------------------------------------------
    def replay_phases(self, users: list[UserStats], start: int, end: int
                      ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        s = (end - start) / 1e9
        p = self.pool
        req = Histogram.merged(u.restore.flush() for u in users)
        counters = {k: sum(u.n[k] for u in users) for k in COUNTERS}
        counters["verify_errors"] = p.total("verify_errors")
        cb = self.geom.chunk_bytes
        restored_bytes = (counters["ram_hits"] + counters["storage_hits"]) * cb
        phases = [
            make_phase("kv restore requests", nbytes=restored_bytes, seconds=s,
                       ops=counters["requests_restored"], latency=req, direction="read",
                       metrics={"latency_unit": "per request: every chunk of its stored "
                                "prefix, RAM and storage, queueing included"}),
            make_phase("kv chunk reads (storage)", nbytes=p.total("read_bytes"), seconds=s,
                       ops=p.total("reads"), latency=p.hist("read"), direction="read",
                       metrics={"latency_unit": "per chunk read (one pread, O_DIRECT)"}),
            make_phase("kv chunk writes (storage)", nbytes=p.total("write_bytes"), seconds=s,
                       ops=p.total("writes"), latency=p.hist("write"), direction="write",
                       metrics={"latency_unit": "per chunk write (one pwrite, O_DIRECT"
                                + (", + fsync" if self.sync_chunk else "") + ")"}),
        ]
        if self.ram is not None:
            phases.append(make_phase(
                "kv chunk copies (RAM tier)", nbytes=p.total("ram_bytes"), seconds=s,
                ops=p.total("ram_copies"), latency=p.hist("ram"), engine="ram",
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
        return next((w.first_error for w in self.pool.workers if w.first_error), None)

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
        """Write (uid, gen, slot) chunks outside any measurement (fsync'd)."""
        def task(c: tuple[int, int, int]) -> Callable[[Worker], None]:
            def fn(w: Worker) -> None:
                self.codec.fill(w.arr, c[0], c[1])
                self.store.write(c[0], c[1], c[2], w.mv, True)
            return fn

        self.pool.run([task(c) for c in chunks])

    def restore_once(self, chunks: Sequence[tuple[int, int, int]]) -> int:
        """Restore these chunks from storage (up to queue depth at once); returns ns."""
        def task(c: tuple[int, int, int]) -> Callable[[Worker], None]:
            def fn(w: Worker) -> None:
                self._read(w, c[0], c[1], c[2], "compare")
                self._check(w, c[0], c[1])
            return fn

        t0 = time.monotonic_ns()
        self.pool.run([task(c) for c in chunks])
        return time.monotonic_ns() - t0

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
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for t in threads:
                t.join(60)
            raise
        if errors:
            raise errors[0]
        h = Histogram.merged(r.flush() for r in recs)
        return h, h.count * n * self.geom.chunk_bytes, time.monotonic_ns() - t0

    def compare_native(self, chunks: Sequence[tuple[int, int, int]], runtime_s: float
                       ) -> dict[str, Any]:
        """Queue-depth workers reading random chunks of the set for runtime_s: the native
        side of the fio comparison (fio: randread, bs = chunk, iodepth = queue depth)."""
        end = time.monotonic_ns() + int(runtime_s * 1e9)
        before = sum(w.n["compare_reads"] for w in self.pool.workers)
        cb = self.geom.chunk_bytes

        def task(seed: int) -> Callable[[Worker], None]:
            def fn(w: Worker) -> None:
                rng = np.random.default_rng([self.o.seed, seed])
                while time.monotonic_ns() < end and not self.stop.is_set():
                    c = chunks[int(rng.integers(0, len(chunks)))]
                    self._read(w, c[0], c[1], c[2], "compare")
                    w.n["compare_reads"] += 1
                    w.n["compare_bytes"] += cb
            return fn

        for w in self.pool.workers:
            w.rec["compare"].flush()
            w.rec["compare"].hist = Histogram()
        t0 = time.monotonic_ns()
        self.pool.run([task(i) for i in range(self.o.queue_depth)])
        s = (time.monotonic_ns() - t0) / 1e9
        reads = sum(w.n["compare_reads"] for w in self.pool.workers) - before
        return make_phase("kv chunk reads native (vs fio)", nbytes=reads * cb, seconds=s,
                          ops=reads, latency=self.pool.hist("compare"), direction="read",
                          metrics={"block_size": cb, "queue_depth": self.o.queue_depth,
                                   "chunks": len(chunks), "queue": "threads"})

    def close(self) -> None:
        self.stop.set()
        self.pool.close()
        if self.ram is not None:
            del self.ram_arr
            self.ram.close()
