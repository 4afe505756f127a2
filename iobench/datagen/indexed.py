"""`indexed` format: a Megatron-style token data set, `<shard>.bin` of tokens and
`<shard>.idx` of sequence sizes and byte offsets (MMapIndexedDataset layout), read by
random sequence access (mmap or pread).

.idx: magic b"MMIDIDX\\x00\\x00", u64 version 1, u8 dtype code (8 = uint16; uint32 is
tagged 4 = int32, Megatron's 4-byte code), u64 sequence count, u64 document count, then
int32 sizes (tokens), int64 pointers (byte offsets into .bin), int64 document index.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from iobench.datagen.spec import TOKEN_BYTES, TrainingSpec
from iobench.datagen.writer import FileRecord, ShardJob, content_for, record_sizes, writing
from iobench.errors import RunFailed

MAGIC = b"MMIDIDX\x00\x00"
DATA_EXT = ".bin"
DTYPE_CODES = {"uint16": 8, "uint32": 4}
CODE_DTYPES = {8: np.uint16, 4: np.int32, 1: np.uint8, 5: np.int64}


def outputs(stem: str) -> list[str]:
    return [stem + DATA_EXT, stem + ".idx"]


def overhead_bytes(spec: TrainingSpec) -> int:
    return 34 + 20 * spec.samples_per_file + 8


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    spec = job.spec
    sizes = record_sizes(spec, job.shard)  # bytes per sequence
    itemsize = TOKEN_BYTES[spec.token_dtype]
    content = content_for(job.content, spec, job.shard)
    bin_name, idx_name = outputs(stem)
    with writing(job.directory / bin_name, buf) as w:
        w.stream(content, 0, int(sizes.sum()))
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


def index(path: Path) -> np.ndarray:
    """(offset, length) in bytes of every sequence in the .bin at `path`."""
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
