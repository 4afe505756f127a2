"""`indexed` format: a Megatron-style token data set, `<shard>.bin` of tokens and
`<shard>.idx` of sequence sizes and byte offsets (MMapIndexedDataset layout), read by
random sequence access (mmap or pread).

.idx: magic b"MMIDIDX\\x00\\x00", u64 version 1, u8 dtype code, u64 sequence count, u64
document count, then int32 sizes (tokens), int64 pointers (byte offsets into .bin), int64
document index.

Dtype codes are Megatron's (megatron/core/datasets/indexed_dataset.py DType: 1 uint8,
2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16). Megatron has no
uint32 code: its own preprocessing stores a vocabulary over 65,500 tokens as int32 (code
4, best_fitting_dtype). So do the uint32 sets here, and every token's top bit is cleared
as it is generated: each reads as a non-negative int32, a valid token id, in Megatron.

`--layout dlio` writes DLIO's indexed_binary instead: the data file F plus F.off.idx and
F.sz.idx, num_samples_per_file native uint64 byte offsets and sizes each (DLIO's
indexed_binary_generator / indexed_binary_reader).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from iobench.errors import RunFailed
from iobench.kinds.datagen import dlio as dlio_layout
from iobench.kinds.datagen.writer import FileRecord, ShardJob, content_for, record_sizes, writing
from iobench.workload import TOKEN_BYTES, TrainingSpec

MAGIC = b"MMIDIDX\x00\x00"
DATA_EXT = ".bin"
DTYPE_CODES = {"uint16": 8, "uint32": 4}
CODE_DTYPES = {8: np.uint16, 4: np.int32, 1: np.uint8, 5: np.int64}


def outputs(stem: str) -> list[str]:
    return [stem + DATA_EXT, stem + ".idx"]


def overhead_bytes(spec: TrainingSpec) -> int:
    return 34 + 20 * spec.samples_per_file + 8


def positive_int32(pos: list[int]) -> Callable[[memoryview], None]:
    """A stream tap clearing bit 31 of every little-endian 4-byte token (the byte at
    offset 3 mod 4 of the stream), so uint32 tokens tagged int32 read non-negative."""

    def tap(mv: memoryview) -> None:
        a = np.frombuffer(mv, dtype=np.uint8)
        a[(3 - pos[0]) % 4::4] &= 0x7F
        pos[0] += a.size

    return tap


def _write_dlio(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    spec = job.spec
    sizes = dlio_layout.file_sizes(spec, job.shard)
    content = content_for(job.content, spec, job.shard)
    data_name, off_name, sz_name = dlio_layout.outputs(spec, stem)
    dlio_layout.prepare(job.directory)
    with writing(job.directory / data_name, buf) as w:
        w.stream(content, 0, int(sizes.sum()))
        data = dataclasses.replace(w.commit(len(sizes)), name=data_name)
    offsets = np.zeros(sizes.size, dtype="<u8")
    np.cumsum(sizes[:-1], out=offsets[1:])
    out = [data]
    for name, arr in ((off_name, offsets), (sz_name, sizes.astype("<u8"))):
        with writing(job.directory / name, buf) as w:
            w.write(arr.tobytes())
            out.append(dataclasses.replace(w.commit(len(sizes), role="index"), name=name))
    return out


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    if job.spec.layout == "dlio":
        return _write_dlio(job, buf, stem)
    spec = job.spec
    sizes = record_sizes(spec, job.shard)  # bytes per sequence
    itemsize = TOKEN_BYTES[spec.token_dtype]
    content = content_for(job.content, spec, job.shard)
    bin_name, idx_name = outputs(stem)
    with writing(job.directory / bin_name, buf) as w:
        w.stream(content, 0, int(sizes.sum()),
                 positive_int32([0]) if spec.token_dtype == "uint32" else None)
        data = w.commit(len(sizes))
    pointers = np.zeros(sizes.size, dtype="<i8")
    np.cumsum(sizes[:-1], out=pointers[1:])
    tokens = (sizes // itemsize).astype("<i4")
    doc_idx = np.arange(sizes.size + 1, dtype="<i8")  # one document per sequence
    with writing(job.directory / idx_name, buf) as w:
        w.write(MAGIC + struct.pack("<Q", 1) + struct.pack("<B", DTYPE_CODES[spec.token_dtype])
                + struct.pack("<Q", sizes.size) + struct.pack("<Q", doc_idx.size))
        w.write(tokens.tobytes())
        w.write(pointers.tobytes())
        w.write(doc_idx.tobytes())
        idx = w.commit(len(sizes), role="index")
    return [data, idx]


def read_idx(path: Path) -> tuple[np.dtype, np.ndarray, np.ndarray]:
    """(token dtype, sizes in tokens, byte pointers) from a Megatron .idx file."""
    raw = path.read_bytes()
    if raw[:9] != MAGIC:
        raise RunFailed(f"{path}: not a Megatron indexed data set index (bad magic)")
    (version,) = struct.unpack_from("<Q", raw, 9)
    code = raw[17]
    if version != 1 or code not in CODE_DTYPES:
        raise RunFailed(f"{path}: unsupported .idx version {version} or dtype code {code}")
    n, _ndocs = struct.unpack_from("<QQ", raw, 18)
    sizes = np.frombuffer(raw, dtype="<i4", count=n, offset=34)
    pointers = np.frombuffer(raw, dtype="<i8", count=n, offset=34 + 4 * n)
    return np.dtype(CODE_DTYPES[code]), sizes, pointers


def dlio_index(path: Path) -> np.ndarray:
    """(offset, length) of every sample of a DLIO indexed_binary data file, from its
    .off.idx and .sz.idx sidecars (native uint64 each, as DLIO reads them)."""
    off_p = Path(str(path) + dlio_layout.OFF_IDX)
    sz_p = Path(str(path) + dlio_layout.SZ_IDX)
    try:
        offs = np.fromfile(off_p, dtype=np.int64)
        szs = np.fromfile(sz_p, dtype=np.int64)
    except FileNotFoundError as e:
        raise RunFailed(f"{path}: DLIO index sidecar missing ({Path(e.filename).name})") \
            from None
    if offs.size != szs.size or (offs < 0).any() or (szs < 0).any():
        raise RunFailed(f"{path}: .off.idx and .sz.idx disagree ({offs.size} offsets, "
                        f"{szs.size} sizes) or hold negative values")
    out = np.empty((offs.size, 2), dtype=np.int64)
    out[:, 0] = offs
    out[:, 1] = szs
    return out


def index(path: Path) -> np.ndarray:
    """(offset, length) in bytes of every sequence in the .bin at `path` (or, for any
    other name, of DLIO's indexed_binary file with its .off.idx / .sz.idx)."""
    if path.suffix != DATA_EXT:
        return dlio_index(path)
    dtype, sizes, pointers = read_idx(path.with_suffix(".idx"))
    out = np.empty((sizes.size, 2), dtype=np.int64)
    out[:, 0] = pointers
    out[:, 1] = sizes.astype(np.int64) * dtype.itemsize
    return out


def decode(data: bytes, token_dtype: str = "uint16") -> np.ndarray:
    """One sequence's bytes -> its tokens, as Megatron's reader views them."""
    dt = np.uint16 if token_dtype == "uint16" else np.uint32
    if len(data) % np.dtype(dt).itemsize:
        raise RunFailed(f"indexed: {len(data)} bytes is not a whole number of {token_dtype}")
    return np.frombuffer(data, dtype=dt)
