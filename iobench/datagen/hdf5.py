"""`hdf5` format: h5py files with a chunked 1-D uint8 data set `records` holding the
samples back to back and an int64 data set `offsets` (n + 1 entries, sample i is
records[offsets[i]:offsets[i + 1]]).

Chunks are allocated early and never pre-filled, so they lie in order in the file: a
sample is one contiguous byte range a reader can pread (checked when indexing).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from iobench import safepath
from iobench.datagen import writer
from iobench.datagen.spec import TrainingSpec
from iobench.datagen.writer import (
    FileRecord,
    ShardJob,
    content_for,
    file_crc32c,
    record_sizes,
)
from iobench.errors import RunFailed

DATA_EXT = ".h5"
SIGNATURE = b"\x89HDF\r\n\x1a\n"


def outputs(stem: str) -> list[str]:
    return [stem + DATA_EXT]


def overhead_bytes(spec: TrainingSpec) -> int:
    # superblock, object headers, chunk B-tree, offsets, and the last chunk's padding
    return 64 * 1024 + spec.hdf5_chunk_bytes + 16 * spec.samples_per_file


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    import h5py

    spec = job.spec
    sizes = record_sizes(spec, job.shard)
    total = int(sizes.sum())
    chunk = min(spec.hdf5_chunk_bytes, total)
    # write whole chunks at a time so HDF5 never reads a chunk back to merge a write
    step = max(1, buf.size // chunk) * chunk
    if step > buf.size:
        buf = np.empty(step, dtype=np.uint8)
    content = content_for(job.content, spec, job.shard)
    (name,) = outputs(stem)
    final = job.directory / name
    tmp = final.with_name(f".{name}{writer.TMP_MARK}")
    offsets = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    try:
        # created here, O_NOFOLLOW and O_EXCL, so h5py opens a fresh file of ours
        safepath.remove(tmp)
        os.close(safepath.open_write(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        with h5py.File(tmp, "w", libver="latest") as f:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((chunk,))
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            space = h5py.h5s.create_simple((total,), (total,))
            h5py.h5d.create(f.id, b"records", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
            dset = f["records"]
            f.create_dataset("offsets", data=offsets)
            f.attrs["workload"] = spec.name
            f.attrs["samples"] = sizes.size
            done = 0
            while done < total:
                n = min(step, total - done)
                content.fill(buf[:n], done)
                dset[done : done + n] = buf[:n]
                writer._advance(n)
                done += n
        if writer.sync_now():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        # HDF5 writes its own metadata, so the checksum is taken from the file (it is
        # still in the page cache right after writing)
        size, crc = file_crc32c(tmp, buf)
        safepath.replace(tmp, final)
        if writer.sync_now():
            writer.fsync_dir(job.directory)
    except BaseException:
        safepath.remove(tmp)
        raise
    return [FileRecord(name, size, crc, int(sizes.size))]


def index(path: Path) -> np.ndarray:
    """(offset, length) in the file of every sample, from the chunk table."""
    import h5py

    with h5py.File(path, "r") as f:
        offsets = f["offsets"][()]
        dset = f["records"]
        (chunk,) = dset.chunks
        nchunks = dset.id.get_num_chunks()
        base = dset.id.get_chunk_info(0).byte_offset
        for k in range(nchunks):
            info = dset.id.get_chunk_info(k)
            if info.byte_offset != base + info.chunk_offset[0]:
                raise RunFailed(f"{path}: chunks of 'records' are not laid out in order; "
                                "regenerate it with iobench datagen")
    out = np.empty((offsets.size - 1, 2), dtype=np.int64)
    out[:, 0] = base + offsets[:-1]
    out[:, 1] = np.diff(offsets)
    return out


def decode(data: bytes) -> Any:
    """A sample's bytes -> uint8 array; a whole file image -> every sample, via h5py."""
    if data[:8] == SIGNATURE:
        import h5py

        with h5py.File(io.BytesIO(data), "r") as f:
            recs = f["records"][()]
            offs = f["offsets"][()]
        return [recs[offs[i] : offs[i + 1]] for i in range(offs.size - 1)]
    return np.frombuffer(data, dtype=np.uint8)
