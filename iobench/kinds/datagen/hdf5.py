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
from iobench.errors import RunFailed
from iobench.kinds.datagen import dlio as dlio_layout
from iobench.kinds.datagen import writer
from iobench.kinds.datagen.writer import (
    FileRecord,
    ShardJob,
    content_for,
    file_crc32c,
    record_sizes,
)
from iobench.workload import TrainingSpec

DATA_EXT = ".h5"
SIGNATURE = b"\x89HDF\r\n\x1a\n"


def outputs(stem: str) -> list[str]:
    return [stem + DATA_EXT]


def overhead_bytes(spec: TrainingSpec) -> int:
    # superblock, object headers, chunk B-tree, offsets, and the last chunk's padding
    return 64 * 1024 + spec.hdf5_chunk_bytes + 16 * spec.samples_per_file


def _write_dlio(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    """DLIO's hdf5: `records` (samples, d1, d2) uint8 and `labels` (int64 zeros), as
    DLIO's hdf5_generator writes them (contiguous: DLIO's enable_chunking default off).
    h5py creates the file with the records' space allocated; the payload then goes into
    that one contiguous byte range with plain writes (what HDF5 itself would write)."""
    import h5py

    spec = job.spec
    sizes = dlio_layout.file_sizes(spec, job.shard)
    n, size = int(sizes.size), int(sizes[0])
    d1, d2 = dlio_layout.dims(size)
    content = content_for(job.content, spec, job.shard)
    (name,) = dlio_layout.outputs(spec, stem)
    dlio_layout.prepare(job.directory)
    final = job.directory / name
    tmp = final.with_name(f".{final.name}{writer.TMP_MARK}")
    try:
        # created here first, exclusively and without following links, so h5py (which
        # opens by path) writes only a fresh file of ours
        safepath.remove(tmp)
        os.close(safepath.open_write(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        with h5py.File(tmp, "w") as f:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.CONTIGUOUS)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            space = h5py.h5s.create_simple((n, d1, d2))
            h5py.h5d.create(f.id, b"records", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
            f.create_dataset("labels", data=np.zeros(n, dtype=np.int64))
            at = f["records"].id.get_offset()
        if at is None:
            raise RunFailed(f"{tmp}: HDF5 did not allocate the records data set")
        total = n * size
        fd = safepath.open_write(tmp, os.O_WRONLY)
        try:
            done = 0
            while done < total:
                k = min(buf.size, total - done)
                content.fill(buf[:k], done)
                mv = memoryview(buf[:k])  # type: ignore[arg-type]
                w = 0
                while w < k:
                    w += os.pwrite(fd, mv[w:], at + done + w)
                writer._advance(k)
                done += k
            if writer.sync_now():
                os.fsync(fd)
        finally:
            os.close(fd)
        fsize, crc = file_crc32c(tmp, buf)
        writer._advance(fsize - total)  # HDF5's own metadata counts as bytes written
        safepath.replace(tmp, final)
        if writer.sync_now():
            writer.fsync_dir(final.parent)
    except BaseException:
        safepath.remove(tmp)
        raise
    return [FileRecord(name, fsize, crc, n)]


def _dlio_index(f: Any, path: Path) -> np.ndarray:
    """DLIO's hdf5 (`records` (samples, ...), no `offsets`): sample i is records[i], one
    contiguous range when the data set is contiguous (DLIO's default)."""
    dset = f["records"]
    at = dset.id.get_offset()
    if at is None or dset.chunks is not None or dset.compression is not None:
        raise RunFailed(f"{path}: 'records' is chunked or compressed (DLIO "
                        "enable_chunking/compression): iobench replays contiguous, "
                        "uncompressed DLIO hdf5 files only")
    n = int(dset.shape[0])
    per = int(np.prod(dset.shape[1:], dtype=np.int64)) * dset.dtype.itemsize
    out = np.empty((n, 2), dtype=np.int64)
    out[:, 0] = at + np.arange(n, dtype=np.int64) * per
    out[:, 1] = per
    return out


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    import h5py

    if job.spec.layout == "dlio":
        return _write_dlio(job, buf, stem)
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
        writer._advance(size - total)  # HDF5's own metadata counts as bytes written
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
        if "offsets" not in f and "records" in f:
            return _dlio_index(f, path)
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
