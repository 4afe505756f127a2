"""`tfrecord` format: the real TFRecord framing, each record a tf.train.Example.

Per record: u64 length (LE), u32 masked CRC32C of those 8 bytes, `length` bytes of data,
u32 masked CRC32C of the data; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 mod 2**32,
as TensorFlow defines it. The data is a serialized tf.train.Example with one bytes
feature "image" (the sample payload) and one int64 feature "size", encoded by hand so
no TensorFlow or protobuf package is needed.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import struct
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
    crc32c,
    record_sizes,
    writing,
)
from iobench.workload import TrainingSpec

DATA_EXT = ".tfrecord"
_MASK_DELTA = 0xA282EAD8


def masked_crc(crc: int) -> int:
    """TFRecord's masked CRC32C (tensorflow/core/lib/hash/crc32c.h: Mask)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field_no: int, payload_len: int) -> bytes:
    """Protobuf key + length of a length-delimited field."""
    return _varint(field_no << 3 | 2) + _varint(payload_len)


@functools.lru_cache(maxsize=4096)
def example_parts(payload_len: int) -> tuple[bytes, bytes]:
    """(prefix, suffix) of a tf.train.Example around `payload_len` image bytes.

    Example{features=1: Features{feature=1 map<string, Feature>}}; Feature.bytes_list=1
    BytesList{value=1}; Feature.int64_list=3 Int64List{value=1 packed}.
    """
    size = _varint(payload_len)
    int64_list = _ld(1, len(size)) + size
    feat_size = _ld(3, len(int64_list)) + int64_list
    entry_size = _ld(1, 4) + b"size" + _ld(2, len(feat_size)) + feat_size
    bytes_list_len = len(_ld(1, payload_len)) + payload_len
    feat_image_len = len(_ld(1, bytes_list_len)) + bytes_list_len
    entry_image_len = len(_ld(1, 5)) + 5 + len(_ld(2, feat_image_len)) + feat_image_len
    features_len = (len(_ld(1, entry_image_len)) + entry_image_len
                    + len(_ld(1, len(entry_size))) + len(entry_size))
    prefix = (_ld(1, features_len) + _ld(1, entry_image_len) + _ld(1, 5) + b"image"
              + _ld(2, feat_image_len) + _ld(1, bytes_list_len) + _ld(1, payload_len))
    suffix = _ld(1, len(entry_size)) + entry_size
    return prefix, suffix


def record_bytes(payload_len: int) -> int:
    prefix, suffix = example_parts(payload_len)
    return 16 + len(prefix) + payload_len + len(suffix)


def outputs(stem: str) -> list[str]:
    return [stem + DATA_EXT]


def overhead_bytes(spec: TrainingSpec) -> int:
    return 64 * spec.samples_per_file


def write_shard(job: ShardJob, buf: np.ndarray, stem: str) -> list[FileRecord]:
    """Records of the shard; `--layout dlio` differs only in where and under which name
    (DLIO's tf_reader parses the same 'image' + 'size' Example) and in one sample size
    per file (as DLIO draws them)."""
    dlio = job.spec.layout == "dlio"
    sizes = (dlio_layout.file_sizes(job.spec, job.shard) if dlio
             else record_sizes(job.spec, job.shard))
    offs = content_offsets(sizes)
    content = content_for(job.content, job.spec, job.shard)
    (name,) = outputs(stem)
    if dlio:
        dlio_layout.prepare(job.directory)
    with writing(job.directory / name, buf) as w:
        for size, coff in zip(sizes.tolist(), offs.tolist(), strict=True):
            prefix, suffix = example_parts(size)
            length = struct.pack("<Q", len(prefix) + size + len(suffix))
            w.write(length + struct.pack("<I", masked_crc(crc32c(length))) + prefix)
            crc = [crc32c(prefix)]

            def tap(mv: memoryview, crc: list[int] = crc) -> None:
                crc[0] = crc32c(mv, crc[0])

            w.stream(content, coff, size, tap)
            w.write(suffix + struct.pack("<I", masked_crc(crc32c(suffix, crc[0]))))
        rec = w.commit(len(sizes))
    return [dataclasses.replace(rec, name=name)]


def index(path: Path) -> np.ndarray:
    """(offset, length) of every whole record (framing included) by walking the file's
    length headers, as a TFRecord reader does."""
    out: list[tuple[int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            head = os.pread(fd, 12, off)
            if len(head) < 12:
                raise RunFailed(f"{path}: truncated TFRecord header at byte {off}")
            (n,) = struct.unpack("<Q", head[:8])
            if unmask_crc(struct.unpack("<I", head[8:])[0]) != crc32c(head[:8]):
                raise RunFailed(f"{path}: bad TFRecord length CRC at byte {off}")
            out.append((off, 16 + n))
            off += 16 + n
    finally:
        os.close(fd)
    if off != size:
        raise RunFailed(f"{path}: last TFRecord runs past the end of the file")
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _read_varint(b: memoryview, i: int) -> tuple[int, int]:
    shift = v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


def _fields(b: memoryview) -> dict[int, list[Any]]:
    """Decode one protobuf message level: field number -> values (bytes or ints)."""
    out: dict[int, list[Any]] = {}
    i = 0
    while i < len(b):
        key, i = _read_varint(b, i)
        fno, wt = key >> 3, key & 7
        if wt == 2:
            n, i = _read_varint(b, i)
            out.setdefault(fno, []).append(b[i : i + n])
            i += n
        elif wt == 0:
            v, i = _read_varint(b, i)
            out.setdefault(fno, []).append(v)
        else:
            raise RunFailed(f"TFRecord Example: unsupported protobuf wire type {wt}")
    return out


def parse_example(data: bytes | memoryview) -> dict[str, Any]:
    """tf.train.Example -> {feature name: bytes or list of ints}."""
    feats: dict[str, Any] = {}
    top = _fields(memoryview(data))
    for features in top.get(1, []):
        for ent in _fields(features).get(1, []):
            kv = _fields(ent)
            key = bytes(kv[1][0]).decode()
            feature = _fields(kv[2][0])
            if 1 in feature:  # bytes_list
                feats[key] = bytes(_fields(feature[1][0]).get(1, [b""])[0])
            elif 3 in feature:  # int64_list (packed or not)
                vals = _fields(feature[3][0]).get(1, [])
                ints: list[int] = []
                for v in vals:
                    if isinstance(v, int):
                        ints.append(v)
                    else:
                        j = 0
                        while j < len(v):
                            x, j = _read_varint(v, j)
                            ints.append(x)
                feats[key] = ints
    return feats


def decode(data: bytes) -> dict[str, Any]:
    """Check both CRCs of one framed record and parse its Example, as a TF reader does."""
    mv = memoryview(data)
    if len(mv) < 16:
        raise RunFailed(f"TFRecord: {len(mv)} bytes is shorter than the 16-byte framing")
    (n,) = struct.unpack_from("<Q", mv, 0)
    if unmask_crc(struct.unpack_from("<I", mv, 8)[0]) != crc32c(mv[:8]):
        raise RunFailed("TFRecord: length CRC mismatch (corrupt record)")
    if len(mv) != 16 + n:
        raise RunFailed(f"TFRecord: record says {n} data bytes, got {len(mv) - 16}")
    body = mv[12 : 12 + n]
    if unmask_crc(struct.unpack_from("<I", mv, 12 + n)[0]) != crc32c(body):
        raise RunFailed("TFRecord: data CRC mismatch (corrupt record)")
    return parse_example(body)
