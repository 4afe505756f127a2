"""`npz` format: what numpy's np.load opens (the unet3d format), written as a stream.

The zip is written by hand with stored (uncompressed) members so a 146 MB record never
sits in memory: each member's local header carries the sizes and a data-descriptor
flag, the .npy bytes follow chunk by chunk while CRC-32 runs over them, and the data
descriptor, central directory and end record close the file. Member i is `x{i}.npy`, a
1-D uint8 array of the sample's bytes ("x" as in DLIO's unet3d files).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from iobench.datagen.spec import TrainingSpec
from iobench.datagen.writer import (
    FileRecord,
    ShardJob,
    content_for,
    content_offsets,
    crc32,
    record_sizes,
    writing,
)
from iobench.errors import RunFailed

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


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
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
        pos = 0
        for _ in range(count):
            f = _CENTRAL.unpack_from(cd, pos)
            comp, nlen, elen, clen, local_at = f[8], f[10], f[11], f[12], f[16]
            lh = _LOCAL.unpack(os.pread(fd, _LOCAL.size, local_at))
            out.append((local_at + _LOCAL.size + lh[9] + lh[10], comp))
            pos += _CENTRAL.size + nlen + elen + clen
    finally:
        os.close(fd)
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def decode(data: bytes) -> Any:
    """One member's .npy bytes -> the array, parsed by numpy as np.load does."""
    return np.load(io.BytesIO(data), allow_pickle=False)
