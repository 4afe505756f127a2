"""`npz` format: what numpy's np.load opens (the unet3d format), written as a stream.

The zip is written by hand with stored (uncompressed) members so a 146 MB record never
sits in memory: each member's local header carries the sizes and a data-descriptor
flag, the .npy bytes follow chunk by chunk while CRC-32 runs over them, and the data
descriptor, central directory and end record close the file. Member i is `x{i}.npy`, a
1-D uint8 array of the sample's bytes ("x" as in DLIO's unet3d files).
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from iobench.errors import RunFailed
from iobench.kinds.datagen import dlio as dlio_layout
from iobench.kinds.datagen.writer import (
    FileRecord,
    ShardJob,
    content_for,
    content_offsets,
    crc32,
    record_sizes,
    writing,
)
from iobench.workload import TrainingSpec

DATA_EXT = ".npz"
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header, 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header, 46 bytes
_END = struct.Struct("<IHHHHIIH")  # end of central directory, 22 bytes
_DESC = struct.Struct("<IIII")  # data descriptor with signature, 16 bytes
_FLAG_DESCRIPTOR = 0x08
_DOS_DATE = (2026 - 1980) << 9 | 1 << 5 | 1  # a fixed date keeps files reproducible


def npy_header(n: int) -> bytes:
    """The .npy v1.0 header of a 1-D uint8 array of n elements (numpy's own writer)."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|u1", "fortran_order": False, "shape": (n,)})
    return f.getvalue()


def member_name(i: int) -> str:
    return f"x{i}.npy"


def outputs(stem: str) -> list[str]:
    return [stem + DATA_EXT]


def overhead_bytes(spec: TrainingSpec) -> int:
    return 22 + (256 + 30 + 46 + 16) * spec.samples_per_file


def npy_header_nd(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": descr, "fortran_order": False, "shape": shape})
    return f.getvalue()


def _member(w: Any, central: list[bytes], name: str, header: bytes,
            body: Callable[[Callable[[memoryview], None]], None], size: int) -> None:
    """One stored zip member `name` (.npy header + `size` bytes that `body(tap)` writes)."""
    fname = name.encode()
    total = len(header) + size
    local_at = w.pos
    w.write(_LOCAL.pack(0x04034B50, 20, _FLAG_DESCRIPTOR, 0, 0, _DOS_DATE, 0,
                        total, total, len(fname), 0) + fname + header)
    crc = [zlib.crc32(header)]

    def tap(mv: memoryview, crc: list[int] = crc) -> None:
        crc[0] = zlib.crc32(mv, crc[0])

    body(tap)
    w.write(_DESC.pack(0x08074B50, crc[0], total, total))
    central.append(_CENTRAL.pack(0x02014B50, 20, 20, _FLAG_DESCRIPTOR, 0, 0,
                                 _DOS_DATE, crc[0], total, total, len(fname), 0, 0,
                                 0, 0, 0o644 << 16, local_at) + fname)


def _write_dlio(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    """DLIO's npz: `x` of shape (d1, d2, samples) uint8 and `y` the int64 labels (zeros),
    as np.savez(x=records, y=record_labels) in DLIO's npz_generator; read by np.load."""
    sizes = dlio_layout.file_sizes(job.spec, job.shard)
    n, size = int(sizes.size), int(sizes[0])
    d1, d2 = dlio_layout.dims(size)
    content = content_for(job.content, job.spec, job.shard)
    (name,) = dlio_layout.outputs(job.spec, stem)
    dlio_layout.prepare(job.directory)
    central: list[bytes] = []
    labels = np.zeros(n, dtype="<i8").tobytes()
    with writing(job.directory / name, buf) as w:
        _member(w, central, "x.npy", npy_header_nd((d1, d2, n)),
                lambda tap: w.stream(content, 0, size * n, tap), size * n)

        def write_labels(tap: Callable[[memoryview], None]) -> None:
            tap(memoryview(labels))
            w.write(labels)

        _member(w, central, "y.npy", npy_header_nd((n,), "<i8"), write_labels, len(labels))
        cd_at = w.pos
        cd = b"".join(central)
        w.write(cd + _END.pack(0x06054B50, 0, 0, len(central), len(central), len(cd), cd_at, 0))
        rec = w.commit(n)
    return [dataclasses.replace(rec, name=name)]


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    if job.spec.layout == "dlio":
        return _write_dlio(job, buf, stem)
    sizes = record_sizes(job.spec, job.shard)
    offs = content_offsets(sizes)
    content = content_for(job.content, job.spec, job.shard)
    (name,) = outputs(stem)
    central: list[bytes] = []
    with writing(job.directory / name, buf) as w:
        for i, (size, coff) in enumerate(zip(sizes.tolist(), offs.tolist(), strict=True)):
            fname = member_name(i).encode()
            header = npy_header(size)
            total = len(header) + size
            local_at = w.pos
            w.write(_LOCAL.pack(0x04034B50, 20, _FLAG_DESCRIPTOR, 0, 0, _DOS_DATE, 0,
                                total, total, len(fname), 0) + fname + header)
            crc = [zlib.crc32(header)]

            def tap(mv: memoryview, crc: list[int] = crc) -> None:
                crc[0] = crc32(mv, crc[0])  # ISA-L: zlib's own was 1/4 of the write time

            w.stream(content, coff, size, tap)
            w.write(_DESC.pack(0x08074B50, crc[0], total, total))
            central.append(_CENTRAL.pack(0x02014B50, 20, 20, _FLAG_DESCRIPTOR, 0, 0,
                                         _DOS_DATE, crc[0], total, total, len(fname), 0, 0,
                                         0, 0, 0o644 << 16, local_at) + fname)
        cd_at = w.pos
        cd = b"".join(central)
        w.write(cd + _END.pack(0x06054B50, 0, 0, len(central), len(central), len(cd), cd_at, 0))
        return [w.commit(len(sizes))]


def index(path: Path) -> np.ndarray:
    """(offset, length) of each member's .npy bytes (header + array), read from the
    central directory and local headers as a zip reader does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        end = os.pread(fd, _END.size, size - _END.size)
        if len(end) != _END.size or end[:4] != b"PK\x05\x06":
            raise RunFailed(f"{path}: no zip end record (not written by iobench datagen?)")
        _, _, _, _, count, cd_len, cd_at, _ = _END.unpack(end)
        cd = os.pread(fd, cd_len, cd_at)
        out: list[tuple[int, int]] = []
        names: list[bytes] = []
        pos = 0
        for _ in range(count):
            f = _CENTRAL.unpack_from(cd, pos)
            comp, nlen, elen, clen, local_at = f[8], f[10], f[11], f[12], f[16]
            if f[4] != 0:
                raise RunFailed(f"{path}: member {cd[pos + 46:pos + 46 + nlen]!r} is "
                                "compressed; iobench replays stored (np.savez) npz files")
            lh = _LOCAL.unpack(os.pread(fd, _LOCAL.size, local_at))
            names.append(bytes(cd[pos + _CENTRAL.size:pos + _CENTRAL.size + nlen]))
            out.append((local_at + _LOCAL.size + lh[9] + lh[10], comp))
            pos += _CENTRAL.size + nlen + elen + clen
        if b"x.npy" in names:  # DLIO's layout: the samples are x[..., i]
            return _dlio_index(fd, path, *out[names.index(b"x.npy")])
    finally:
        os.close(fd)
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _dlio_index(fd: int, path: Path, at: int, length: int) -> np.ndarray:
    """DLIO's npz: one array x of shape (..., samples); np.load reads it whole, and
    sample i is x[..., i]. For the replay the array's bytes are split into `samples`
    equal ranges (same bytes per file and per epoch as DLIO reads, at sample grain)."""
    head = io.BytesIO(os.pread(fd, min(length, 65536), at))
    try:
        version = np.lib.format.read_magic(head)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(head) if version[0] == 1
                                 else np.lib.format.read_array_header_2_0(head))
    except ValueError as e:
        raise RunFailed(f"{path}: x.npy has no valid .npy header ({e})") from None
    if not shape:
        raise RunFailed(f"{path}: x.npy is a scalar, not DLIO's (d1, d2, samples) array")
    n = int(shape[-1])
    per = int(np.prod(shape[:-1], dtype=np.int64)) * dtype.itemsize
    start = at + head.tell()
    if start + n * per > at + length:
        raise RunFailed(f"{path}: x.npy is shorter than its shape {shape}")
    out = np.empty((n, 2), dtype=np.int64)
    out[:, 0] = start + np.arange(n, dtype=np.int64) * per
    out[:, 1] = per
    return out


def decode(data: bytes) -> Any:
    """One member's .npy bytes -> the array, parsed by numpy as np.load does."""
    return np.load(io.BytesIO(data), allow_pickle=False)
