"""The storage tier's on-disk layouts and the chunk format.

- file-per-chunk (LMCache's local disk): one file per chunk, in hashed two-level
  directories (ab/cd/abcd....kv), opened per read or write, removed on eviction.
- slab (Dynamo-style): large preallocated files; a chunk is a slot (file, offset); an
  evicted slot is reused.

Every open is relative to a directory descriptor and uses O_NOFOLLOW (a symlink planted
in the tree is refused, never followed); data moves with O_DIRECT into page-aligned
buffers. A chunk is incompressible, non-dedupable random content (iobench.content, a
distinct stream offset per chunk and write generation) whose first 64 bytes are a header:
magic, chunk id, generation, payload length and the CRC-32C of the rest of the payload.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
import threading
from pathlib import Path

import crc32c
import numpy as np

from iobench.content import Content
from iobench.engines.native import O_DIRECT, pread_full, pwrite_full
from iobench.errors import RunFailed, UsageError
from iobench.kinds.kvcache.geometry import Geometry

MAGIC = b"IOBKVC01"
HEADER = struct.Struct("<8sQQQI")
HEADER_BYTES = 64
LAYOUTS = ("file-per-chunk", "slab")
SLAB_TARGET = 1 << 30  # bytes per slab file (a whole number of chunks, at least one)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Test hook: after this many chunk writes, the next one writes half its bytes and fails
# with ENOSPC, as a full filesystem would mid-run. Never set outside tests.
ENOSPC_ENV = "IOBENCH_TEST_KV_ENOSPC_AFTER"
_DIRFLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW


class ChunkCodec:
    """Fills and checks chunk buffers; thread-safe (Content.fill is)."""

    def __init__(self, geom: Geometry, seed: int, rank: int) -> None:
        self.geom = geom
        self.content = Content("random", seed, stream=rank)
        self._blocks = geom.chunk_bytes // 4096

    def fill(self, arr: np.ndarray, uid: int, gen: int) -> None:
        # content offset unique per (chunk, generation): no 4 KiB block repeats anywhere
        self.content.fill(arr, ((uid << 16) | (gen & 0xFFFF)) * self.geom.chunk_bytes)
        payload = self.geom.payload_bytes
        crc = crc32c.crc32c(arr[HEADER_BYTES:payload].data) if payload > HEADER_BYTES else 0
        arr[:HEADER_BYTES] = 0
        HEADER.pack_into(arr.data, 0, MAGIC, uid, gen, payload, crc)

    def check(self, arr: np.ndarray, uid: int, gen: int | None, full: bool) -> str | None:
        """None when the chunk is the one expected (and, with `full`, intact)."""
        magic, got_uid, got_gen, payload, crc = HEADER.unpack_from(arr.data, 0)
        if magic != MAGIC:
            return "no chunk header (bad magic)"
        if got_uid != uid or (gen is not None and got_gen != gen):
            return f"holds chunk {got_uid} gen {got_gen}, expected {uid} gen {gen}"
        if payload != self.geom.payload_bytes:
            return f"payload length {payload} != {self.geom.payload_bytes}"
        if full and payload > HEADER_BYTES and \
                crc32c.crc32c(arr[HEADER_BYTES:payload].data) != crc:
            return "CRC-32C mismatch"
        return None


def _open_dir(name: str, dir_fd: int, create: bool) -> int:
    if create:
        try:
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        except FileExistsError:
            pass
    return os.open(name, _DIRFLAGS, dir_fd=dir_fd)


def _disk_full(e: OSError) -> RunFailed:
    return RunFailed("disk full while writing a KV chunk; the partial chunk was removed: "
                     "free space or give a smaller --capacity")


class Store:
    """Base: a root directory (opened once, O_NOFOLLOW) holding this rank's chunks."""

    layout = ""

    def __init__(self, root: Path, geom: Geometry, slots: int) -> None:
        self.root = root
        self.geom = geom
        self.slots = slots
        root.mkdir(parents=True, exist_ok=True)
        self.root_fd = os.open(root, _DIRFLAGS)
        self._probe_direct()
        fail = os.environ.get(ENOSPC_ENV)
        self._fail_after = int(fail) if fail else None
        self._writes = 0
        self._wlock = threading.Lock()

    def _pwrite(self, fd: int, buf: memoryview, offset: int) -> None:
        if self._fail_after is not None:
            with self._wlock:
                self._writes += 1
                fail = self._writes > self._fail_after
            if fail:
                pwrite_full(fd, buf[:len(buf) // 2], offset)
                raise OSError(errno.ENOSPC, "No space left on device (test hook)")
        pwrite_full(fd, buf, offset)

    def _probe_direct(self) -> None:
        name = ".o_direct_probe"
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | O_DIRECT | _NOFOLLOW, 0o644,
                         dir_fd=self.root_fd)
        except OSError as e:
            self._close_root()
            if e.errno == errno.EINVAL:
                raise UsageError(f"--target: {self.root} is on a filesystem that refuses "
                                 "O_DIRECT (e.g. tmpfs); KV chunks move with O_DIRECT: give "
                                 "a target on real storage") from None
            raise
        os.close(fd)
        os.unlink(name, dir_fd=self.root_fd)

    def need_bytes(self) -> int:
        """Bytes the layout may still take on the filesystem (for the space check)."""
        return self.slots * self.geom.chunk_bytes

    def read(self, uid: int, gen: int, slot: int, buf: memoryview) -> int:
        raise NotImplementedError

    def open_read(self, uid: int, gen: int, slot: int) -> tuple[int, int, bool]:
        """(fd, offset, the caller closes fd) of a chunk, for an asynchronous read."""
        raise NotImplementedError

    def write(self, uid: int, gen: int, slot: int, buf: memoryview, sync: bool) -> None:
        raise NotImplementedError

    def remove(self, uid: int, gen: int) -> None:
        """Drop an evicted chunk (file-per-chunk unlinks; a slab slot is simply reused)."""

    def sync(self, slots: set[int]) -> int:
        """Make the given slots' writes durable (slab: fdatasync their files); returns
        the number of syncs issued."""
        return 0

    def fio_files(self, chunks: list[tuple[int, int, int]]) -> tuple[list[Path], int]:
        """(files, bytes per file) that hold exactly these (uid, gen, slot) chunks."""
        raise NotImplementedError

    def _close_root(self) -> None:
        fd, self.root_fd = self.root_fd, -1  # forgotten before closed: never closed twice
        if fd >= 0:
            os.close(fd)

    def close(self, keep: bool) -> None:
        self._close_root()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


class FilePerChunk(Store):
    layout = "file-per-chunk"

    def __init__(self, root: Path, geom: Geometry, slots: int) -> None:
        super().__init__(root, geom, slots)
        self._l1: dict[str, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def name(uid: int, gen: int) -> tuple[str, str, str]:
        # the generation is in the name: a late unlink of an evicted copy never removes
        # the chunk's next copy
        h = hashlib.blake2b(uid.to_bytes(8, "little"), digest_size=8).hexdigest()
        return h[:2], h[2:4], f"{h}-{uid:x}-{gen}.kv"

    def path(self, uid: int, gen: int) -> Path:
        a, b, n = self.name(uid, gen)
        return self.root / a / b / n

    def _dir(self, uid: int, gen: int, create: bool) -> tuple[int, str]:
        a, b, n = self.name(uid, gen)
        with self._lock:
            fd1 = self._l1.get(a)
            if fd1 is None:
                fd1 = self._l1[a] = _open_dir(a, self.root_fd, create=True)
        return _open_dir(b, fd1, create), n

    def read(self, uid: int, gen: int, slot: int, buf: memoryview) -> int:
        d, n = self._dir(uid, gen, create=False)
        try:
            fd = os.open(n, os.O_RDONLY | O_DIRECT | _NOFOLLOW, dir_fd=d)
        finally:
            os.close(d)
        try:
            return pread_full(fd, buf, 0)
        finally:
            os.close(fd)

    def open_read(self, uid: int, gen: int, slot: int) -> tuple[int, int, bool]:
        d, n = self._dir(uid, gen, create=False)
        try:
            return os.open(n, os.O_RDONLY | O_DIRECT | _NOFOLLOW, dir_fd=d), 0, True
        finally:
            os.close(d)

    def write(self, uid: int, gen: int, slot: int, buf: memoryview, sync: bool) -> None:
        d, n = self._dir(uid, gen, create=True)
        try:
            fd = os.open(n, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_DIRECT | _NOFOLLOW,
                         0o644, dir_fd=d)
            try:
                self._pwrite(fd, buf, 0)
                if sync:
                    os.fsync(fd)
            except OSError as e:
                fd, closing = -1, fd  # forgotten before closed: the finally skips it
                os.close(closing)
                os.unlink(n, dir_fd=d)  # a partial chunk never stays behind
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise _disk_full(e) from None
                raise
            finally:
                if fd >= 0:
                    os.close(fd)
        finally:
            os.close(d)

    def remove(self, uid: int, gen: int) -> None:
        d, n = self._dir(uid, gen, create=False)
        try:
            os.unlink(n, dir_fd=d)
        except FileNotFoundError:
            pass
        finally:
            os.close(d)

    def fio_files(self, chunks: list[tuple[int, int, int]]) -> tuple[list[Path], int]:
        return [self.path(u, g) for u, g, _ in chunks], self.geom.chunk_bytes

    def close(self, keep: bool) -> None:
        while self._l1:  # each forgotten before closed: a second close() never repeats one
            os.close(self._l1.popitem()[1])
        super().close(keep)


class Slab(Store):
    layout = "slab"

    def __init__(self, root: Path, geom: Geometry, slots: int) -> None:
        super().__init__(root, geom, slots)
        self.per_file = max(1, SLAB_TARGET // geom.chunk_bytes)
        self.nfiles = -(-slots // self.per_file)
        self.fds: list[int] = []

    def file_bytes(self, i: int) -> int:
        n = min(self.per_file, self.slots - i * self.per_file)
        return n * self.geom.chunk_bytes

    def file_name(self, i: int) -> str:
        return f"slab-{i:03d}.kv"

    def need_bytes(self) -> int:
        need = 0
        for i in range(self.nfiles):
            try:
                have = os.stat(self.file_name(i), dir_fd=self.root_fd,
                               follow_symlinks=False).st_blocks * 512
            except FileNotFoundError:
                have = 0
            need += max(0, self.file_bytes(i) - have)
        return need

    def open(self) -> None:
        """Create (preallocated with posix_fallocate) or reuse the slab files."""
        for i in range(self.nfiles):
            size = self.file_bytes(i)
            fd = os.open(self.file_name(i), os.O_RDWR | os.O_CREAT | O_DIRECT | _NOFOLLOW,
                         0o644, dir_fd=self.root_fd)
            self.fds.append(fd)
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, 0)
                try:
                    os.posix_fallocate(fd, 0, size)
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise _disk_full(e) from None
                    if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    os.ftruncate(fd, size)  # no fallocate here: a sparse file

    def where(self, slot: int) -> tuple[int, int]:
        f, i = divmod(slot, self.per_file)
        return self.fds[f], i * self.geom.chunk_bytes

    def read(self, uid: int, gen: int, slot: int, buf: memoryview) -> int:
        fd, off = self.where(slot)
        return pread_full(fd, buf, off)

    def open_read(self, uid: int, gen: int, slot: int) -> tuple[int, int, bool]:
        fd, off = self.where(slot)
        return fd, off, False

    def write(self, uid: int, gen: int, slot: int, buf: memoryview, sync: bool) -> None:
        fd, off = self.where(slot)
        try:
            self._pwrite(fd, buf, off)
            if sync:
                os.fdatasync(fd)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(e) from None
            raise

    def sync(self, slots: set[int]) -> int:
        files = {s // self.per_file for s in slots}
        for f in files:
            os.fdatasync(self.fds[f])
        return len(files)

    def fio_files(self, chunks: list[tuple[int, int, int]]) -> tuple[list[Path], int]:
        slots = [s for _, _, s in chunks]
        if sorted(slots) != list(range(len(slots))) or len(slots) > self.per_file:
            raise UsageError("internal: the fio comparison set must be slots 0..n-1 of slab 0")
        return [self.root / self.file_name(0)], len(slots) * self.geom.chunk_bytes

    def close(self, keep: bool) -> None:
        while self.fds:  # each forgotten before closed: a second close() never repeats one
            os.close(self.fds.pop())
        super().close(keep)


def make(layout: str, root: Path, geom: Geometry, slots: int) -> Store:
    if layout == "slab":
        return Slab(root, geom, slots)
    return FilePerChunk(root, geom, slots)
