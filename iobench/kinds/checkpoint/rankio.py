"""One rank's checkpoint I/O: a streaming writer and a verifying reader with bounded memory.

Each rank is a process. Writing, the rank's main thread "snapshots" its state (fills
fixed-size, page-aligned chunks with reproducible content and their CRC32C) into a
bounded staging queue while the write lane of iobench.engines.stream pwrite()s them and
fsyncs each file, timing each write and each fsync. Memory per rank is (staging chunks
+ 1) x chunk bytes, whatever the checkpoint size. Reading is the mirror image: the read
lane preads chunks, the main thread checks each chunk's CRC32C against the manifest and,
on a mismatch, regenerates the expected bytes to name the first differing byte's offset.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
import numpy as np

from iobench.content import Content
from iobench.engines import stream
from iobench.engines.native import aligned_buffer, open_file
from iobench.engines.stream import DiskFull, Stopped, StreamStats
from iobench.errors import IobenchError

CHUNK = 16 << 20  # bytes per write/read call and per checksum
ALIGN = 4096


@dataclass(frozen=True)
class FileJob:
    path: str
    bytes: int
    stream: int
    crc32c: tuple[int, ...] = ()  # reads: expected CRC per chunk (empty: regenerate)


@dataclass(frozen=True)
class RankJob:
    """What a rank does for one checkpoint write or read (sent to the rank process)."""

    rank: int
    files: tuple[FileJob, ...]
    seed: int
    content: str = "random"
    direct: bool = False
    chunk: int = CHUNK
    staging_chunks: int = 2  # write queue depth: 2 = double buffering
    source_rank: int | None = None  # reads: whose files these are (rank shift)


def _rss() -> tuple[int, int]:
    """(current RSS, peak RSS) in bytes from /proc/self/status (0, 0 where absent)."""
    cur = peak = 0
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    except OSError:
        pass
    return cur, peak


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a forked rank measures itself."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def write_rank(job: RankJob, progress: Any = None) -> dict[str, Any]:
    """Write this rank's files; returns its measurements (JSON-ready). The timed write
    loop is iobench.engines.stream.write_lane; this thread fills the chunks."""
    nbuf = max(2, job.staging_chunks)
    bufs = [aligned_buffer(job.chunk) for _ in range(nbuf)]
    arrs = [np.frombuffer(b, dtype=np.uint8) for b in bufs]
    free: queue.Queue = queue.Queue()
    for i in range(nbuf):
        free.put(i)
    full: queue.Queue = queue.Queue()
    crcs: dict[str, list[int]] = {f.path: [] for f in job.files}
    st = StreamStats()
    start = st.start_ns
    t = stream.start(stream.write_lane, full, free, bufs, direct=job.direct, stats=st,
                     progress=progress)
    opened: list[int] = []
    stall_end = start
    try:
        for f in job.files:
            gen = Content(job.content, job.seed, f.stream)
            fd = open_file_w(f.path, job.direct)
            opened.append(fd)
            off = 0
            crc_list = crcs[f.path]
            while off < f.bytes:
                n = min(job.chunk, f.bytes - off)
                bi = stream.get(free, st)
                arr = arrs[bi]
                # fill whole 4 KiB blocks (O_DIRECT writes the tail block whole)
                fill_n = (n + ALIGN - 1) // ALIGN * ALIGN
                gen.fill(arr[:fill_n], off)
                crc_list.append(crc32c.crc32c(memoryview(bufs[bi])[:n]))
                full.put(("w", fd, f.path, off, n, bi))
                off += n
            full.put(("close", fd, f.bytes, f.path))
        stall_end = time.monotonic_ns()
        full.put(None)
        while t.is_alive():
            t.join(0.2)
    except Stopped:
        pass
    except BaseException as e:  # noqa: BLE001 - reported to the parent with the others
        st.fail(e)
    finally:
        t.join(5)
    end = time.monotonic_ns()
    cur, peak = _rss()
    fsync_hist = st.fsync_recorder.flush()
    out: dict[str, Any] = {
        "rank": job.rank, "bytes": st.bytes, "ops": st.ops,
        "start_ns": start, "stall_end_ns": stall_end,
        "write_end_ns": st.end_ns or end, "end_ns": end,
        "fsync_ns": st.fsync_ns, "fsyncs": fsync_hist.count,
        "hist": st.recorder.flush().to_dict(), "fsync_hist": fsync_hist.to_dict(),
        "crc32c": crcs, "files": len(job.files), "rss_bytes": cur, "peak_rss_bytes": peak,
        "buffer_bytes": nbuf * job.chunk, "error": None,
    }
    if st.error is not None:
        err = st.error
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        if isinstance(err, DiskFull) or (isinstance(err, OSError)
                                         and err.errno == errno.ENOSPC):
            path = err.path if isinstance(err, DiskFull) else str(err.filename or "?")
            written = err.written if isinstance(err, DiskFull) else 0
            size = next((f.bytes for f in job.files if f.path == path), 0)
            out["error"] = {"kind": "enospc", "path": path, "written": written, "size": size}
        elif isinstance(err, IobenchError):
            out["error"] = {"kind": "usage", "message": err.format_message()}
        else:
            out["error"] = {"kind": "oserror" if isinstance(err, OSError) else "error",
                            "message": _describe(err)}
    return out


def open_file_w(path: str, direct: bool) -> int:
    return open_file(Path(path), write=True, direct=direct, create=True, truncate=True)


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}"
    return f"{type(e).__name__}: {e}"


def first_difference(got: memoryview, expected: bytes) -> int:
    a = np.frombuffer(got, dtype=np.uint8)
    b = np.frombuffer(expected, dtype=np.uint8)
    n = min(a.size, b.size)
    diff = np.nonzero(a[:n] != b[:n])[0]
    return int(diff[0]) if diff.size else n


def read_rank(job: RankJob, progress: Any = None) -> dict[str, Any]:
    """Read and verify the files of `job`; returns measurements and any mismatches. The
    timed read loop is iobench.engines.stream.read_lane; this thread verifies."""
    nbuf = max(2, job.staging_chunks)
    bufs = [aligned_buffer(job.chunk) for _ in range(nbuf)]
    free: queue.Queue = queue.Queue()
    for i in range(nbuf):
        free.put(i)
    full: queue.Queue = queue.Queue()
    mismatches: list[dict[str, Any]] = []
    st = StreamStats()
    start = st.start_ns
    t = stream.start(stream.read_lane, [(f.path, f.bytes) for f in job.files], full, free,
                     bufs, chunk=job.chunk, direct=job.direct, stats=st, progress=progress)
    bad_files: set[int] = set()
    try:
        while True:
            item = stream.get(full, st)
            if item is None:
                break
            if item[0] == "missing":
                f = job.files[item[1]]
                mismatches.append({"path": f.path, "offset": 0, "what": "file is missing"})
                continue
            _, fi, off, got, n, bi = item
            f = job.files[fi]
            if fi not in bad_files:
                mv = memoryview(bufs[bi])[:got]
                ci = off // job.chunk
                ok = (got == n and ci < len(f.crc32c) and crc32c.crc32c(mv) == f.crc32c[ci])
                if not ok and not (f.crc32c and ci < len(f.crc32c)) and got == n:
                    # no checksum recorded: compare with the regenerated content
                    ok = first_difference(mv, Content(job.content, job.seed, f.stream)
                                          .bytes(off, n)) == n
                if not ok:
                    bad_files.add(fi)
                    mismatches.append(_locate(job, f, mv, off, got, n))
            free.put(bi)
        while t.is_alive():
            t.join(0.2)
    except Stopped:
        pass
    except BaseException as e:  # noqa: BLE001 - reported to the parent with the others
        st.fail(e)
    finally:
        t.join(5)
    end = time.monotonic_ns()
    cur, peak = _rss()
    out: dict[str, Any] = {
        "rank": job.rank, "source_rank": job.source_rank, "bytes": st.bytes,
        "ops": st.ops, "start_ns": start, "read_end_ns": st.end_ns or end,
        "end_ns": end, "hist": st.recorder.flush().to_dict(), "files": len(job.files),
        "mismatches": mismatches, "rss_bytes": cur, "peak_rss_bytes": peak,
        "buffer_bytes": nbuf * job.chunk, "error": None,
    }
    if st.error is not None:
        err = st.error
        out["error"] = ({"kind": "usage", "message": err.format_message()}
                        if isinstance(err, IobenchError)
                        else {"kind": "error", "message": _describe(err)})
    return out


def _locate(job: RankJob, f: FileJob, mv: memoryview, off: int, got: int, n: int) -> dict[str, Any]:
    """Name the first wrong byte of a chunk whose checksum did not match."""
    expected = Content(job.content, job.seed, f.stream).bytes(off, n)
    i = first_difference(mv, expected)
    if i < got:
        return {"path": f.path, "offset": off + i, "expected": expected[i],
                "found": int(np.frombuffer(mv, dtype=np.uint8)[i]),
                "what": f"expected 0x{expected[i]:02x}, read "
                        f"0x{int(np.frombuffer(mv, dtype=np.uint8)[i]):02x}"}
    if got < n:
        return {"path": f.path, "offset": off + got,
                "what": f"file ends here, expected {f.bytes} bytes"}
    return {"path": f.path, "offset": off,
            "what": "chunk checksum differs from the manifest (the manifest may be "
                    "damaged)"}
