"""Streaming sample decoders for the training replay's `--decode`.

A whole-sample decoder (iobench.kinds.datagen.reader.decode) needs the sample contiguous in
memory, so each reader thread held a buffer as big as the largest sample (unet3d: up to
~350 MB, times 4 threads) and copied every sample twice more (`bytes(...)`, then np.load's
own read). A stream decoder instead sees the sample piece by piece as the reader's
block-sized buffer fills, and does the work np.load does on an npz member:

- the .npy header, parsed by numpy's own reader (`np.lib.format.read_magic`,
  `read_array_header_1_0/2_0`): magic, version, dtype, shape, order; an object dtype is
  refused (np.load's allow_pickle=False);
- the payload length against the header (dtype x shape);
- the zip member's CRC-32 over every byte, against the CRC in the zip's central
  directory (read once per file with `zipfile`, as np.load opens an npz): what
  `zipfile.ZipExtFile` checks when np.load reads a member to its end.

When the whole sample arrives in one piece (a sample no bigger than --block-size), the
stream also builds the decoded array itself, a zero-copy view of the reader's buffer
(`array`): reused buffers, no allocation per sample. Memory per reader thread is one
block, as with --no-decode. The CRC and copy loops release the GIL (ISA-L, preadv), so
reader threads do not serialise on the interpreter lock.
"""

from __future__ import annotations

import io
import struct
import threading
import zipfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from iobench.errors import RunFailed
from iobench.kinds.datagen.writer import crc32

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # zip local file header, 30 bytes
_NPY_MAGIC = b"\x93NUMPY"


class SampleStream(Protocol):
    """One sample being decoded: `feed` each piece in order, then `finish`."""

    def feed(self, piece: memoryview) -> None: ...

    def finish(self) -> None: ...


def npz_members(path: Path) -> dict[int, tuple[int, int, str]]:
    """{data offset: (CRC-32, stored size, member name)} of every stored member of an npz,
    from its central directory (zipfile) and each local header (the data offset)."""
    out: dict[int, tuple[int, int, str]] = {}
    with open(path, "rb") as f, zipfile.ZipFile(f) as z:
        for info in z.infolist():
            f.seek(info.header_offset)
            lh = _LOCAL.unpack(f.read(_LOCAL.size))
            if lh[0] != 0x04034B50:
                raise RunFailed(f"{path}: bad zip local header for {info.filename}")
            data_at = info.header_offset + _LOCAL.size + lh[9] + lh[10]
            out[data_at] = (info.CRC, info.compress_size, info.filename)
    return out


class NpyStream:
    """Decode one .npy member (header + array) of an npz as its pieces arrive."""

    def __init__(self, where: str, length: int, crc: int | None) -> None:
        self.where = where
        self.length = length
        self.want_crc = crc
        self.crc = 0
        self.seen = 0
        self.head = bytearray()  # the header, until it is complete (it is ~128 bytes)
        self.header_len = 0  # > 0 once parsed
        self.dtype: np.dtype[Any] | None = None
        self.shape: tuple[int, ...] = ()
        self.fortran = False
        self.array: np.ndarray | None = None  # set when the sample came in one piece

    def _parse_header(self) -> bool:
        h = bytes(self.head)
        if len(h) < 10:
            return False
        if h[:6] != _NPY_MAGIC:
            raise RunFailed(f"{self.where}: not a .npy member (bad magic)")
        major = h[6]
        size_len = 2 if major == 1 else 4
        if major not in (1, 2, 3):
            raise RunFailed(f"{self.where}: unsupported .npy version {major}")
        if len(h) < 8 + size_len:
            return False
        (hlen,) = struct.unpack_from("<H" if size_len == 2 else "<I", h, 8)
        total = 8 + size_len + hlen
        if len(h) < total:
            return False
        f = io.BytesIO(h[:total])
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as e:
            raise RunFailed(f"{self.where}: bad .npy header ({e})") from None
        if dtype.hasobject:
            raise RunFailed(f"{self.where}: .npy holds Python objects (np.load would need "
                            "allow_pickle=True)")
        count = 1
        for d in shape:
            count *= d
        if total + count * dtype.itemsize != self.length:
            raise RunFailed(f"{self.where}: .npy header says {shape} x {dtype} = "
                            f"{count * dtype.itemsize} bytes, the member holds "
                            f"{self.length - total}")
        self.header_len, self.dtype, self.shape, self.fortran = total, dtype, shape, fortran
        return True

    def feed(self, piece: memoryview) -> None:
        if self.seen == 0 and len(piece) == self.length:
            self.head += piece[: min(len(piece), 4096)]
            if not self._parse_header():
                raise RunFailed(f"{self.where}: .npy header runs past the member")
            assert self.dtype is not None
            self.array = np.frombuffer(piece, dtype=self.dtype, offset=self.header_len).reshape(
                self.shape, order="F" if self.fortran else "C")
        elif not self.header_len:
            self.head += piece[: max(0, 65536 - len(self.head))]
            self._parse_header()
        self.crc = crc32(piece, self.crc)
        self.seen += len(piece)

    def finish(self) -> None:
        if self.seen != self.length:
            raise RunFailed(f"{self.where}: got {self.seen} of {self.length} bytes")
        if not self.header_len:
            raise RunFailed(f"{self.where}: .npy header runs past the member")
        if self.want_crc is not None and self.crc != self.want_crc:
            raise RunFailed(f"{self.where}: CRC-32 {self.crc:08x} does not match the zip's "
                            f"{self.want_crc:08x} (corrupt member)")


class _Bytes:
    """A sample that is not a whole npz member (a slice of one): its length is checked."""

    def __init__(self, where: str, length: int) -> None:
        self.where, self.length, self.seen = where, length, 0

    def feed(self, piece: memoryview) -> None:
        self.seen += len(piece)

    def finish(self) -> None:
        if self.seen != self.length:
            raise RunFailed(f"{self.where}: got {self.seen} of {self.length} bytes")


class NpzStreams:
    """Stream decoders for the samples of a set of npz files; each file's member table is
    read once, on its first sample, by whichever reader thread gets there."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self._members: dict[int, dict[int, tuple[int, int, str]]] = {}
        self._lock = threading.Lock()

    def members(self, file_index: int) -> dict[int, tuple[int, int, str]]:
        m = self._members.get(file_index)
        if m is None:
            m = npz_members(self.files[file_index])
            with self._lock:
                self._members[file_index] = m
        return m

    def __call__(self, file_index: int, offset: int, length: int) -> SampleStream:
        entry = self.members(file_index).get(offset)
        if entry is None:
            return _Bytes(f"sample at offset {offset}", length)
        crc, size, name = entry
        if size != length:
            raise RunFailed(f"member {name}: the index says {length} bytes, the zip {size}")
        return NpyStream(f"member {name}", length, crc)
