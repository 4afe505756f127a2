"""Streaming, crash-safe file writing for datagen: temp name, running CRC32C, fsync, rename;
the per-shard record plan; and the resumable manifest.

Memory per worker is one buffer whatever the record size, split in two halves: payload is
generated into one half while a writer thread writes the other (double buffering, so
generation and the write system call overlap), never held whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c as _crc32c
import numpy as np

from iobench import safepath

try:  # ISA-L's CRC-32 (PCLMULQDQ): ~50 GB/s, vs ~3 GB/s for zlib's; same values
    from isal.isal_zlib import crc32 as _fast_crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _fast_crc32 = zlib.crc32

from iobench.content import BLOCK, Content
from iobench.errors import TargetError
from iobench.results import utc_now
from iobench.workload import TrainingSpec

CHUNK_BYTES = 8 << 20  # generation/write chunk: big enough for storage speed, small in RAM
WORKER_BUFFER_BYTES = 2 * CHUNK_BYTES  # one worker's buffer: two chunks, double-buffered
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
TMP_MARK = ".tmp-datagen"

# Set in each worker process by the pool initializer: a shared byte counter for progress,
# and whether the parent takes over the fsyncs (see FileWriter.commit).
_progress: Any = None
_defer_sync = False


def set_progress_counter(counter: Any, slot: int = 0, defer_sync: bool = False) -> None:
    """`counter` is a lock-free array (procpool.counter); this process adds to `slot`."""
    global _progress, _defer_sync
    _progress = (counter, slot)
    _defer_sync = defer_sync


def sync_now() -> bool:
    """Whether a worker fsyncs its own files (False: the parent does, before the manifest
    marks them complete, so workers go on generating while the device flushes)."""
    return not _defer_sync


def sync_files(directory: Path, names: list[str]) -> None:
    """fsync finished files and the directories they were renamed in (the parent's half
    of a commit; the dlio layout's files are in a subdirectory)."""
    for name in names:
        fd = os.open(directory / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for parent in sorted({(directory / name).parent for name in names}):
        fsync_dir(parent)


def _advance(n: int) -> None:
    if _progress is not None:  # no lock: a worker killed here cannot wedge the parent
        counter, slot = _progress
        counter[slot] += n


def crc32c(data: bytes | memoryview | np.ndarray, value: int = 0) -> int:
    return int(_crc32c.crc32c(data, value))  # type: ignore[arg-type]


def crc32(data: bytes | memoryview | np.ndarray, value: int = 0) -> int:
    """zlib's CRC-32 (the zip/npz checksum), computed by ISA-L when it is installed."""
    return int(_fast_crc32(data, value))


def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux sync_file_range(2) with SYNC_FILE_RANGE_WRITE: start writeback of a range
    now, without waiting for it (None where libc lacks it)."""
    if os.environ.get("IOBENCH_DATAGEN_NO_SFR"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def start(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, 2)  # SYNC_FILE_RANGE_WRITE; a failure shows at fsync

    return start


_start_writeback = _sync_file_range()


def _write_all(fd: int, mv: memoryview, offset: int = -1) -> None:
    done = 0
    while done < len(mv):
        done += os.write(fd, mv[done:])
    if offset >= 0 and _start_writeback is not None:
        # the device starts on these bytes now, while the next chunk is generated, rather
        # than when the file's fsync comes (fio's end_fsync leaves it all to the end)
        _start_writeback(fd, offset, len(mv))
    _advance(len(mv))


@dataclass(frozen=True)
class FileRecord:
    """One finished output file, as the manifest stores it."""

    name: str
    size: int
    crc32c: int
    samples: int
    role: str = "data"  # data | index (a sidecar index that readers also need)


class FileWriter:
    """Write one file to a temp name with a running CRC32C of every byte written;
    `commit()` fsyncs, renames into place and fsyncs the directory.

    Headers and payload are staged in one half of the worker's buffer and written a full
    half at a time by this file's writer thread, while the caller fills the other half;
    so a TFRecord shard of 1251 small records costs a handful of write calls, not three
    per record, and generation never waits for a write unless both halves are full. A
    buffer under 64 KiB is used whole, without the thread. Under the datagen pool the
    fsyncs move to the parent
    (`sync_files`), which runs them before the manifest marks the file complete: a file
    renamed but not yet synced when the machine dies is not in the manifest, so the next
    run rewrites it.
    """

    def __init__(self, path: Path, buf: np.ndarray) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}{TMP_MARK}")
        half = buf.size // 2 // BLOCK * BLOCK
        self._halves = [buf[:half], buf[half : 2 * half]] if half >= 8 * BLOCK else [buf]
        self._cur = 0
        self.buf = self._halves[0]
        self.fill = 0  # bytes staged in buf
        self.flushed = 0
        self.crc = 0
        self._pending: Future[None] | None = None  # the write of the other half
        # the writer thread lives as long as this file: no idle thread outlives it in a
        # process that may fork later (a fork copies a thread's locks, not the thread)
        self._exec: ThreadPoolExecutor | None = None
        self.committed = False
        self.fd = safepath.open_write(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    @property
    def pos(self) -> int:
        """Bytes written so far (the offset the next byte lands at)."""
        return self.flushed + self.fill

    def _wait(self) -> None:
        if self._pending is not None:
            fut, self._pending = self._pending, None
            fut.result()  # a write error (ENOSPC, EIO) surfaces here

    def _flush(self, last: bool = False) -> None:
        if not self.fill:
            return
        mv = memoryview(self.buf[: self.fill])  # type: ignore[arg-type]
        self.crc = crc32c(mv, self.crc)
        self._wait()  # the other half is free again once its write returned
        if last or len(self._halves) == 1:  # nothing left to overlap with
            _write_all(self.fd, mv, self.flushed)
        else:
            if self._exec is None:
                self._exec = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="datagen-write")
            self._pending = self._exec.submit(_write_all, self.fd, mv, self.flushed)
            self._cur ^= 1
            self.buf = self._halves[self._cur]
        self.flushed += self.fill
        self.fill = 0

    def _stop_thread(self) -> None:
        if self._exec is not None:
            self._exec.shutdown(wait=True)
            self._exec = None

    def write(self, data: bytes | memoryview) -> None:
        src = np.frombuffer(data, dtype=np.uint8)
        done = 0
        while done < src.size:
            n = min(src.size - done, self.buf.size - self.fill)
            self.buf[self.fill : self.fill + n] = src[done : done + n]
            self.fill += n
            done += n
            if self.fill == self.buf.size:
                self._flush()

    def stream(self, content: Content, content_offset: int, length: int,
               tap: Callable[[memoryview], None] | None = None) -> None:
        """Write `length` bytes of `content` from `content_offset`, generated straight into
        the staging buffer; `tap` sees each piece (for a format's own checksum)."""
        done = 0
        while done < length:
            n = min(length - done, self.buf.size - self.fill)
            end = content_offset + done + n
            if done + n < length and end % BLOCK and n > end % BLOCK:
                n -= end % BLOCK  # keep the next piece on the fast, block-aligned path
            view = self.buf[self.fill : self.fill + n]
            content.fill(view, content_offset + done)
            if tap is not None:
                tap(memoryview(view))  # type: ignore[arg-type]
            self.fill += n
            done += n
            if self.fill == self.buf.size:
                self._flush()

    def commit(self, samples: int, role: str = "data") -> FileRecord:
        self._flush(last=True)
        self._wait()
        self._stop_thread()
        if sync_now():
            os.fsync(self.fd)
        fd, self.fd = self.fd, -1  # forgotten before closed: abort() never closes it twice
        os.close(fd)
        safepath.replace(self.tmp, self.path)
        if sync_now():
            fsync_dir(self.path.parent)
        self.committed = True
        return FileRecord(self.path.name, self.flushed, self.crc, samples, role)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._wait()  # never close a descriptor the writer thread is using
        self._stop_thread()
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
        safepath.remove(self.tmp)


@contextlib.contextmanager
def writing(path: Path, buf: np.ndarray) -> Iterator[FileWriter]:
    """A FileWriter that is removed again if the body fails before commit."""
    w = FileWriter(path, buf)
    try:
        yield w
    finally:
        if not w.committed:  # also when commit itself was cut short (its fd already closed)
            w.abort()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_crc32c(path: Path, buf: np.ndarray | None = None) -> tuple[int, int]:
    """(size, CRC32C) of a whole file, read in bounded chunks."""
    b = buf if buf is not None else np.empty(CHUNK_BYTES, dtype=np.uint8)
    mv = memoryview(b)  # type: ignore[arg-type]
    crc = 0
    size = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            n = os.readv(fd, [mv])
            if n == 0:
                break
            crc = crc32c(mv[:n], crc)
            size += n
    finally:
        os.close(fd)
    return size, crc


# --- the record plan -------------------------------------------------------------------
def record_sizes(spec: TrainingSpec, shard: int) -> np.ndarray:
    """Sample sizes (bytes) of one shard: fixed, or normal(mean, stdev) clipped, drawn
    from a generator seeded by (seed, shard) so any shard is reproducible alone."""
    n = spec.samples_per_file
    mean = spec.mean_record_bytes
    lo, hi = spec.clip_bytes
    if spec.record_size_stdev == 0:
        return np.full(n, min(max(mean, lo), hi), dtype=np.int64)
    rng = np.random.default_rng([spec.seed, shard, 0x5123])
    s = np.rint(rng.normal(mean, spec.record_size_stdev, n))
    return np.clip(s, lo, hi).astype(np.int64)


def content_offsets(sizes: np.ndarray) -> np.ndarray:
    """Where each record's bytes start in the shard's content stream: 4 KiB aligned, so
    generation runs on the fast aligned path and no two records share content."""
    padded = (sizes + BLOCK - 1) // BLOCK * BLOCK
    out = np.zeros(sizes.size, dtype=np.int64)
    np.cumsum(padded[:-1], out=out[1:])
    return out


def content_for(kind: str, spec: TrainingSpec, shard: int) -> Content:
    # The workload name is part of the stream so two data sets with the same seed in one
    # target never share blocks (a dedup-capable array would otherwise fold them).
    return Content(kind, spec.seed, (crc32c(spec.name.encode()) << 32) | shard)


@dataclass
class ShardJob:
    """Everything a worker needs to write one shard (picklable)."""

    spec: TrainingSpec
    shard: int
    directory: Path
    content: str


# --- manifest --------------------------------------------------------------------------
def manifest_path(directory: Path) -> Path:
    return directory / MANIFEST


def load_manifest(directory: Path) -> dict[str, Any] | None:
    p = manifest_path(directory)
    if not p.exists():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a manifest is only ever replaced atomically; unreadable = start over
    if not isinstance(d, dict) or d.get("iobench_datagen") != MANIFEST_VERSION:
        return None
    check_entries(p, d.get("entries"))
    return d


# The one subdirectory a data set may have: the dlio layout's `train/` (DLIO's folder).
ENTRY_SUBDIRS = ("train",)


def _entry_name_ok(name: object) -> bool:
    """A plain file name, or `train/<plain name>` (the dlio layout); nothing else."""
    if not isinstance(name, str):
        return False
    parts = name.split("/")
    if len(parts) == 1:
        return safepath.is_name(name)
    return len(parts) == 2 and parts[0] in ENTRY_SUBDIRS and safepath.is_name(parts[1])


def check_entries(where: Path, entries: Any) -> None:
    """A manifest names only plain files of its own directory; anything else (a path, a
    `..`, a forged entry) is refused before a single file is removed or written."""
    if not isinstance(entries, dict):
        raise TargetError(f"{where}: 'entries' is not a mapping; the manifest is corrupt: "
                          "remove it (the data set is then written again)")
    for name, e in entries.items():
        if not _entry_name_ok(name) or (isinstance(e, dict) and e.get("name", name) != name):
            raise TargetError(f"{where}: entry {name!r} is not a plain file name of this data "
                              "set; the manifest is corrupt or forged: remove it (the data set "
                              "is then written again)")


def new_manifest(spec: TrainingSpec, content: str) -> dict[str, Any]:
    from iobench.spec import to_dict

    return {
        "iobench_datagen": MANIFEST_VERSION,
        "workload": spec.name,
        "format": spec.format,
        "content": content,
        "identity": spec.identity(),
        "spec": to_dict(spec),
        "files_planned": spec.files,
        "created_utc": utc_now(),
        "updated_utc": utc_now(),
        "entries": {},
        "last_run": None,
    }


def save_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomic: temp file, fsync, rename, fsync the directory."""
    from iobench import verify

    manifest["updated_utc"] = utc_now()
    with verify.untimed():  # bookkeeping, not the data set: out of the run's byte audit
        safepath.write_file(manifest_path(directory), json.dumps(manifest, indent=0,
                                                                  sort_keys=True))
    fsync_dir(directory)


def entry(rec: FileRecord, shard: int) -> dict[str, Any]:
    return {"name": rec.name, "shard": shard, "size": rec.size, "crc32c": rec.crc32c,
            "samples": rec.samples, "role": rec.role, "complete": True}
