"""The safetensors format: build a header, and parse one strictly, naming what is wrong.

Layout: u64 little-endian N, N bytes of JSON header (space-padded to a multiple of 8, as
the reference writer does), then the tensor bytes; data_offsets are relative to 8 + N.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench.errors import RunFailed
from iobench.kinds.infer_load.layouts import ST_ITEMSIZE, StoredTensor

MAX_HEADER = 100_000_000  # the library refuses larger headers
KNOWN_DTYPES = {**ST_ITEMSIZE, "F64": 8, "I64": 8, "U64": 8, "U32": 4, "I16": 2, "U16": 2,
                "U8": 1, "BOOL": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1,
                "F6_E3M2": 1, "C64": 8}


@dataclass(frozen=True)
class Entry:
    """One tensor of a file: absolute byte range [begin, end) in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def build_header(items: Sequence[StoredTensor], metadata: dict[str, str]) -> bytes:
    """The 8-byte length + padded JSON header for tensors laid out in order, no holes."""
    hdr: dict[str, Any] = {"__metadata__": metadata}
    off = 0
    for t in items:
        hdr[t.name] = {"dtype": t.dtype, "shape": list(t.shape),
                       "data_offsets": [off, off + t.nbytes]}
        off += t.nbytes
    text = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


class HeaderError(RunFailed):
    """A safetensors file whose header is truncated or corrupt (exit 1: bad data found)."""


def parse_header(path: Path) -> tuple[list[Entry], dict[str, str], int]:
    """Read and validate a file's header: (entries by offset, metadata, data start).

    Checks what the library checks (length, JSON, dtypes, shapes vs byte counts, no holes
    or overlaps, data within the file), so a damaged file is named with its fault before
    any load is timed.
    """
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise HeaderError(f"{path}: truncated safetensors file: {size} bytes, fewer "
                                  "than the 8-byte header length; regenerate it (delete the "
                                  "model directory)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                raise HeaderError(f"{path}: corrupt safetensors header: header length {n} "
                                  f"exceeds the {MAX_HEADER}-byte limit")
            if 8 + n > size:
                raise HeaderError(f"{path}: truncated safetensors header: it declares {n} "
                                  f"bytes but the file has only {size - 8} after the length")
            raw = f.read(n)
    except OSError as e:
        raise RunFailed(f"{path}: cannot read it ({e.strerror})") from None
    try:
        hdr = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        why = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8"
        raise HeaderError(f"{path}: corrupt safetensors header: not valid JSON ({why})") from None
    if not isinstance(hdr, dict):
        raise HeaderError(f"{path}: corrupt safetensors header: JSON is not an object")
    meta = hdr.pop("__metadata__", {}) or {}
    start = 8 + n
    entries: list[Entry] = []
    for name, info in hdr.items():
        try:
            dtype = info["dtype"]
            shape = tuple(int(d) for d in info["shape"])
            b, end = (int(x) for x in info["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise HeaderError(f"{path}: corrupt safetensors header: tensor {name!r} lacks a "
                              "valid dtype, shape or data_offsets") from None
        if dtype not in KNOWN_DTYPES:
            raise HeaderError(f"{path}: corrupt safetensors header: tensor {name!r} has "
                              f"unknown dtype {dtype!r}")
        numel = 1
        for d in shape:
            numel *= d
        if end - b != numel * KNOWN_DTYPES[dtype] or b < 0:
            raise HeaderError(f"{path}: corrupt safetensors header: tensor {name!r} "
                              f"{dtype}{list(shape)} needs {numel * KNOWN_DTYPES[dtype]} bytes "
                              f"but data_offsets span {end - b}")
        entries.append(Entry(name, dtype, shape, start + b, start + end))
    entries.sort(key=lambda x: (x.begin, x.end))
    pos = start
    for ent in entries:
        if ent.begin != pos:
            what = "overlaps the previous one" if ent.begin < pos else "leaves a hole before it"
            raise HeaderError(f"{path}: corrupt safetensors header: tensor {ent.name!r} {what} "
                              f"(offset {ent.begin - start}, expected {pos - start})")
        pos = ent.end
    if pos > size:
        raise HeaderError(f"{path}: truncated safetensors file: tensors end at byte {pos} but "
                          f"the file has {size}; regenerate it (delete the model directory)")
    return entries, {str(k): str(v) for k, v in meta.items()}, start
