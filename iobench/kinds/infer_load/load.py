"""Load methods for model-weight files, each timed from open to the last tensor in memory.

read: one whole-file read per file; pread: threads x chunk parallel preads into one
preallocated buffer per file; direct: the same with O_DIRECT (reads widened to 4 KiB,
tensors sliced out of the aligned buffer); mmap: map and touch every page of every
tensor; safetensors / gguf: the libraries' own loaders (safe_open + get_tensor,
GGUFReader + touch). With `discard`, data lands in bounded per-thread buffers instead.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iobench.engines import wholefiles
from iobench.engines.native import ALIGN, aligned_buffer
from iobench.errors import ToolMissing, UsageError, did_you_mean
from iobench.kinds.infer_load import gguf_fmt, safetensors_fmt
from iobench.kinds.infer_load.safetensors_fmt import Entry
from iobench.stats import Histogram, LatencyRecorder

METHODS = ("read", "pread", "direct", "mmap", "safetensors", "gguf")
LIBRARY_METHOD = {"safetensors": "safetensors", "gguf": "gguf"}  # format -> its library
READ_CHUNK = 64 << 20  # whole-file `read` is split only where one read(2) cannot do it


@dataclass(frozen=True)
class LoadOptions:
    threads: int = 8
    chunk: int = 16 << 20
    discard: bool = False


@dataclass
class LoadStats:
    """What one load measured. `bytes` are the files' bytes; `bytes_read` what was read
    (O_DIRECT widening adds the tail up to 4 KiB)."""

    method: str
    bytes: int
    bytes_read: int
    seconds: float
    first_tensor_s: float
    tensors: int
    ops: int
    latency: Histogram
    start_ns: int = 0
    end_ns: int = 0
    peak_buffer_bytes: int = 0
    cpu_s: float = 0.0  # CPU time of the process (every thread) during the load

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


def check_methods(methods: Sequence[str], fmt: str) -> None:
    for m in methods:
        if m not in METHODS:
            raise UsageError(f"--method {m!r}: unknown load method{did_you_mean(m, METHODS)}")
        if m in LIBRARY_METHOD and LIBRARY_METHOD[m] != fmt:
            raise UsageError(f"--method {m}: loads {m} files, not {fmt}; with --format {fmt} "
                             f"use read, pread, direct, mmap or {LIBRARY_METHOD.get(fmt, fmt)}")


def parse(path: Path, fmt: str) -> list[Entry]:
    if fmt == "gguf":
        return gguf_fmt.parse(path)[0]
    return safetensors_fmt.parse_header(path)[0]


def _numpy_extra_dtypes() -> None:
    """safetensors' numpy backend finds bf16/fp8 through ml_dtypes (numpy has neither)."""
    try:
        import ml_dtypes
    except ImportError:
        raise ToolMissing("the safetensors load method needs ml_dtypes for BF16/F8 tensors "
                          "in numpy: pip install ml-dtypes (or iobench[formats])") from None
    for name in ("float8_e4m3fn", "float8_e5m2"):
        if not hasattr(np, name):
            setattr(np, name, getattr(ml_dtypes, name))


def _first_ready(entries: list[Entry], done: list[tuple[int, int, int]]) -> int:
    """Completion time of the first tensor: the last of the reads that cover its bytes."""
    if not entries:
        return done[-1][2] if done else 0
    e = entries[0]
    covering = [t for (b, end, t) in done if b < e.end and end > e.begin]
    return max(covering) if covering else 0


def _chunked(method: str, files: Sequence[Path], fmt: str, opts: LoadOptions) -> LoadStats:
    """pread / direct: chunks of every file, in order, pulled by `threads` workers
    (iobench.engines.wholefiles.read_chunked)."""
    direct = method == "direct"
    c0, t0 = time.process_time(), time.monotonic_ns()
    entries = [parse(p, fmt) for p in files]
    sizes = [Path(p).stat().st_size for p in files]
    chunk = max(ALIGN, (opts.chunk + ALIGN - 1) // ALIGN * ALIGN) if direct else opts.chunk
    bufs: list[mmap.mmap] = []
    if not opts.discard:  # the model in memory: one preallocated (aligned) buffer per file
        bufs = [aligned_buffer(s + ALIGN) for s in sizes]
    r = wholefiles.read_chunked(files, sizes, chunk, opts.threads, direct=direct,
                                bufs=bufs or None)
    # the tensors, sliced out of the buffers (zero-copy views), as a loader hands them on
    views: list[memoryview] = []
    for fi, ents in enumerate(entries):
        if bufs:
            whole = memoryview(bufs[fi])
            views += [whole[e.begin:e.end] for e in ents]
            views.append(whole)
    ntensors = sum(len(ents) for ents in entries)
    t_views, c1 = time.monotonic_ns(), time.process_time()
    first_file = [(b, e, t) for (fi, b, e, t) in r.done if fi == 0]
    first = _first_ready(entries[0], first_file) if entries else t_views
    peak = sum(len(b) for b in bufs) if bufs else chunk * opts.threads
    for v in views:
        v.release()
    views.clear()
    for b in bufs:
        b.close()
    return LoadStats(method, sum(sizes), r.bytes, (t_views - t0) / 1e9, (first - t0) / 1e9,
                     ntensors, r.ops, r.latency, t0, max(r.end_ns, t_views), peak, c1 - c0)


def _read(files: Sequence[Path], fmt: str, opts: LoadOptions) -> LoadStats:
    """Whole-file read(2): the naive loader; the first tensor is ready when its file is
    (iobench.engines.wholefiles.read_sequential)."""
    c0, t0 = time.process_time(), time.monotonic_ns()
    rec = LatencyRecorder()
    first = 0
    total = nread = ops = ntensors = 0
    peak = 0
    for fi, p in enumerate(files):
        ents = parse(p, fmt)
        ntensors += len(ents)
        size = Path(p).stat().st_size
        total += size
        step = min(opts.chunk, size) if opts.discard else READ_CHUNK
        buf = aligned_buffer(max(1, step if opts.discard else size))
        peak = max(peak, len(buf))
        mark = ents[0].end if fi == 0 and ents else 0
        try:
            got, n, ready = wholefiles.read_sequential(p, size, step, buf,
                                                       into_place=not opts.discard, rec=rec,
                                                       mark=mark)
        finally:
            buf.close()
        nread += got
        ops += n
        first = first or ready
    end, c1 = time.monotonic_ns(), time.process_time()
    return LoadStats("read", total, nread, (end - t0) / 1e9, ((first or end) - t0) / 1e9,
                     ntensors, ops, rec.flush(), t0, end, peak, c1 - c0)


def _mmap(files: Sequence[Path], fmt: str, opts: LoadOptions) -> LoadStats:
    """Map every file and fault in every page of every tensor
    (iobench.engines.wholefiles.touch_mapped)."""
    c0, t0 = time.process_time(), time.monotonic_ns()
    rec = LatencyRecorder()
    first = 0
    total = ntensors = 0
    for p in files:
        ents = parse(p, fmt)
        total += Path(p).stat().st_size
        ready = wholefiles.touch_mapped(p, [(e.begin, e.end) for e in ents], rec)
        ntensors += len(ents)
        first = first or ready
    end, c1 = time.monotonic_ns(), time.process_time()
    return LoadStats("mmap", total, total, (end - t0) / 1e9, ((first or end) - t0) / 1e9,
                     ntensors, ntensors, rec.flush(), t0, end, 0, c1 - c0)


def import_library(method: str) -> Any:
    """Import the loader of a library method (safe_open, GGUFReader) - before any clock
    starts: Python's import of safetensors/ml_dtypes/gguf takes 1-5 s the first time in
    a process, which is not load time (the same files load as fast the second time)."""
    if method == "safetensors":
        _numpy_extra_dtypes()
        from safetensors import safe_open

        return safe_open
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ToolMissing("the gguf load method needs the gguf package: pip install "
                          "gguf (or iobench[formats])") from None
    return GGUFReader


def _library(method: str, files: Sequence[Path], fmt: str, opts: LoadOptions) -> LoadStats:
    """The reference loaders users know; latency is per tensor (get_tensor / touch)."""
    lib = import_library(method)  # untimed
    c0, t0 = time.process_time(), time.monotonic_ns()
    rec = LatencyRecorder()
    first = 0
    total = ntensors = 0
    kept: list[Any] = []
    for p in files:
        total += Path(p).stat().st_size
        if method == "safetensors":
            try:
                with lib(str(p), framework="np") as f:
                    for name in f.keys():  # noqa: SIM118 - safe_open is not a dict
                        a = time.monotonic_ns()
                        t = f.get_tensor(name)
                        b = time.monotonic_ns()
                        rec.add(b - a)
                        ntensors += 1
                        first = first or b
                        if not opts.discard:
                            kept.append(t)
            except Exception as e:  # noqa: BLE001 - the library's own error, named
                from iobench.errors import RunFailed

                raise RunFailed(f"{p}: the safetensors library refused it: {e}") from None
        else:
            reader = lib(str(p))
            for t in reader.tensors:
                a = time.monotonic_ns()
                wholefiles.touch_array(np.asarray(t.data).reshape(-1).view(np.uint8))
                b = time.monotonic_ns()
                rec.add(b - a)
                ntensors += 1
                first = first or b
            del reader
    end, c1 = time.monotonic_ns(), time.process_time()
    kept.clear()
    return LoadStats(method, total, total, (end - t0) / 1e9, ((first or end) - t0) / 1e9,
                     ntensors, ntensors, rec.flush(), t0, end, 0, c1 - c0)


def load(method: str, files: Sequence[Path], fmt: str, opts: LoadOptions) -> LoadStats:
    """Load a model's files with one method; everything from open to last tensor is timed,
    and the process's CPU time over the same window (a figure contention does not move)."""
    if method in LIBRARY_METHOD:
        import_library(method)  # before both clocks: an import is not load time
    return _load(method, files, fmt, opts)


def _load(method: str, files: Sequence[Path], fmt: str, opts: LoadOptions) -> LoadStats:
    if method in ("pread", "direct"):
        return _chunked(method, files, fmt, opts)
    if method == "read":
        return _read(files, fmt, opts)
    if method == "mmap":
        return _mmap(files, fmt, opts)
    if method in LIBRARY_METHOD:
        return _library(method, files, fmt, opts)
    raise UsageError(f"--method {method!r}: unknown load method{did_you_mean(method, METHODS)}")


def warm(files: Sequence[Path], chunk: int = 8 << 20) -> None:
    """An untimed buffered pass so the files sit in the page cache (the warm state)."""
    buf = bytearray(chunk)
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# --- replicas: R processes load at once ----------------------------------------------------
READY_TIMEOUT_S = 120.0  # replicas that cannot start (import, spawn) within this fail the run


def _replica(method: str, files: list[str], fmt: str, opts: LoadOptions, ready: Any,
             go: Any, out: Any, parent_pid: int | None = None) -> None:
    from iobench import interrupt

    interrupt.die_with_parent(parent_pid)  # a SIGKILLed parent leaves no replica behind
    try:
        if method in LIBRARY_METHOD:
            import_library(method)  # imported before the release, not in the timed load
        ready.put(os.getpid())  # started (and imported) ...
        if not go.wait(READY_TIMEOUT_S):  # ... and released together (across MPI ranks)
            raise TimeoutError(f"not released within {READY_TIMEOUT_S:.0f} s")
        st = load(method, [Path(f) for f in files], fmt, opts)
        out.put(("ok", st.start_ns, st.end_ns, st.bytes, st.first_tensor_s, st.ops,
                 st.latency.to_dict()))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which names it
        out.put(("error", f"{type(e).__name__}: {e}"))


class ReplicaFleet:
    """`count` processes that load the same files at once: `start()` spawns them and
    returns once all are ready, `go()` releases them together, `rows()` waits for what
    each measured. Under MPI every rank runs its share of the replicas and releases them
    right after a collective, so all ranks' replicas start together."""

    def __init__(self, method: str, files: Sequence[Path], fmt: str, opts: LoadOptions,
                 count: int) -> None:
        import multiprocessing as mp

        self.count = count
        ctx = mp.get_context("spawn")  # no fork of a threaded parent
        # each replica says it is ready, then waits for the parent to release them all
        self._ready = ctx.Queue()
        self._go = ctx.Event()
        self._out = ctx.Queue()
        self._procs = [ctx.Process(target=_replica,
                                   args=(method, [str(f) for f in files], fmt, opts,
                                         self._ready, self._go, self._out, os.getpid()),
                                   daemon=True)
                       for _ in range(count)]

    def start(self) -> None:
        """Spawn the replicas; returns when every one is ready to load."""
        import queue

        from iobench.errors import RunFailed

        for p in self._procs:
            p.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = 0
        while ready < self.count:
            try:
                self._ready.get(timeout=0.5)
                ready += 1
            except queue.Empty:
                dead = [p for p in self._procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    why = (f"exited with code {dead[0].exitcode}" if dead else
                           f"did not start within {READY_TIMEOUT_S:.0f} s")
                    raise RunFailed(f"a load replica {why} before loading; see its output "
                                    "above") from None

    def go(self) -> None:
        self._go.set()

    def rows(self) -> list[tuple[Any, ...]]:
        """(state, start_ns, end_ns, bytes, first_tensor_s, ops, latency dict) per replica
        (CLOCK_MONOTONIC: system-wide, so the processes' timestamps compare)."""
        import queue

        from iobench.errors import RunFailed

        rows: list[tuple[Any, ...]] = []
        while len(rows) < self.count:
            try:
                rows.append(self._out.get(timeout=0.5))
            except queue.Empty:
                dead = [p for p in self._procs if p.exitcode not in (None, 0)]
                if dead:  # died before reporting (killed, or could not start)
                    raise RunFailed(f"a load replica exited with code {dead[0].exitcode} "
                                    "before reporting; see its output above") from None
        errors = [r[1] for r in rows if r[0] == "error"]
        if errors:
            raise RunFailed(f"a load replica failed: {errors[0]}")
        return rows

    def close(self) -> None:
        for p in self._procs:
            if p.pid is None:
                continue
            p.join(10)
            if p.is_alive():
                p.kill()


def summarize_replicas(rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """Time to ready per replica = its end - the earliest start (the fleet's start);
    aggregate GB/s = all bytes / (last end - first start); latency merged."""
    start = min(r[1] for r in rows)
    end = max(r[2] for r in rows)
    ready = Histogram()
    ready.record_many([r[2] - start for r in rows])
    lat = Histogram.merged(Histogram.from_dict(r[6]) for r in rows)
    nbytes = sum(r[3] for r in rows)
    seconds = (end - start) / 1e9
    return {"bytes": nbytes, "seconds": seconds, "ops": sum(r[5] for r in rows),
            "latency": lat, "ready_ns": ready, "replicas": len(rows),
            "first_tensor_s": [r[4] for r in rows]}


def replicas(method: str, files: Sequence[Path], fmt: str, opts: LoadOptions,
             count: int) -> dict[str, Any]:
    """`count` processes load the same files at once, released together (one process)."""
    fleet = ReplicaFleet(method, files, fmt, opts, count)
    try:
        fleet.start()
        fleet.go()
        return summarize_replicas(fleet.rows())
    finally:
        fleet.close()
