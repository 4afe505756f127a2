"""`raw` format: records concatenated into a shard file, plus an index sidecar of
(offset, length) pairs so a reader can fetch any one sample with a single pread.

Index file `<shard>.idx`: magic b"IOBRAW1\\0", u64 sample count, then per sample
u64 offset and u64 length, little-endian.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from iobench.errors import RunFailed
from iobench.kinds.datagen.writer import (
    FileRecord,
    ShardJob,
    content_for,
    record_sizes,
    writing,
)
from iobench.workload import TrainingSpec

MAGIC = b"IOBRAW1\0"
DATA_EXT = ".raw"


def outputs(stem: str) -> list[str]:
    return [stem + DATA_EXT, stem + ".idx"]


def overhead_bytes(spec: TrainingSpec) -> int:
    return 16 + 16 * spec.samples_per_file


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    sizes = record_sizes(job.spec, job.shard)
    content = content_for(job.content, job.spec, job.shard)
    data_name, idx_name = outputs(stem)
    with writing(job.directory / data_name, buf) as w:
        # records are back to back, so the shard is one contiguous content stream
        w.stream(content, 0, int(sizes.sum()))
        data = w.commit(len(sizes))
    offsets = np.zeros(sizes.size, dtype=np.int64)
    np.cumsum(sizes[:-1], out=offsets[1:])
    table = np.empty((sizes.size, 2), dtype="<u8")
    table[:, 0] = offsets
    table[:, 1] = sizes
    with writing(job.directory / idx_name, buf) as w:
        w.write(MAGIC + struct.pack("<Q", sizes.size) + table.tobytes())
        idx = w.commit(len(sizes), role="index")
    return [data, idx]


def index(path: Path) -> np.ndarray:
    """(n, 2) int64 array of (offset, length) per sample of the .raw file at `path`."""
    raw = path.with_suffix(".idx").read_bytes()
    if raw[:8] != MAGIC or len(raw) < 16:
        raise RunFailed(f"{path.with_suffix('.idx')}: not an iobench raw index; "
                        "re-run iobench datagen")
    (n,) = struct.unpack_from("<Q", raw, 8)
    if len(raw) != 16 + 16 * n:
        raise RunFailed(f"{path.with_suffix('.idx')}: truncated index; re-run iobench datagen")
    return np.frombuffer(raw, dtype="<u8", offset=16).reshape(n, 2).astype(np.int64)


def decode(data: bytes) -> np.ndarray:
    """A raw sample is its bytes; frameworks view them as a uint8 array."""
    return np.frombuffer(data, dtype=np.uint8)
