"""The GGUF v3 format (llama.cpp): build a header with tensor infos, and parse one.

Layout: magic 'GGUF', u32 version 3, u64 tensor count, u64 key/value count, key/values,
tensor infos (name, n_dims, dims with the row length first, ggml type, offset relative to
the data section), padding to `general.alignment` (32), then the data, each tensor
starting on an aligned offset.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iobench.errors import RunFailed
from iobench.kinds.infer_load.layouts import GGML_TYPES, StoredTensor
from iobench.kinds.infer_load.safetensors_fmt import Entry

MAGIC = b"GGUF"
VERSION = 3
ALIGNMENT = 32
_U8, _I32, _U32, _F32, _BOOL, _STR, _ARR, _U64 = 0, 5, 4, 6, 7, 8, 9, 10
_ID_TO_TYPE = {v[0]: k for k, v in GGML_TYPES.items()}
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _array(items: Sequence[Any]) -> bytes:
    """A GGUF array value (after its key and type 9): item type, count, items. Strings,
    f32 (Python floats) or i32 (ints) - what the tokenizer arrays need."""
    first = items[0] if items else ""
    if isinstance(first, str):
        return struct.pack("<IQ", _STR, len(items)) + b"".join(_str(s) for s in items)
    if isinstance(first, float):
        return struct.pack(f"<IQ{len(items)}f", _F32, len(items), *items)
    return struct.pack(f"<IQ{len(items)}i", _I32, len(items), *items)


def _kv(key: str, value: Any) -> bytes:
    if isinstance(value, list | tuple):
        return _str(key) + struct.pack("<I", _ARR) + _array(value)
    if isinstance(value, str):
        return _str(key) + struct.pack("<I", _STR) + _str(value)
    if isinstance(value, bool):
        return _str(key) + struct.pack("<I?", _BOOL, value)
    if isinstance(value, int):
        return _str(key) + struct.pack("<II", _U32, value)
    if isinstance(value, float):
        return _str(key) + struct.pack("<If", _F32, value)
    raise TypeError(f"GGUF value of type {type(value).__name__}")


# llama.cpp's llama_token_type (llama.h): what tokenizer.ggml.token_type holds
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6


def tokenizer_kv(vocab_size: int) -> dict[str, Any]:
    """A minimal SentencePiece-style ('llama') tokenizer of exactly `vocab_size` tokens,
    as llama.cpp's vocab loader needs it: tokenizer.ggml.model, .tokens (one per row of
    token_embd), .scores and .token_type, <unk>/<s>/</s> (ids 0, 1, 2) and the 256 byte
    tokens <0x00>..<0xFF> (its SPM path looks up <0x0A> for the newline token); the rest
    are placeholder pieces. Enough to load and tokenize, not a real vocabulary."""
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    if vocab_size < len(specials) + len(byte_tokens):
        raise ValueError(f"vocab_size {vocab_size}: a llama tokenizer needs >= 259 tokens")
    rest = vocab_size - len(specials) - len(byte_tokens)
    tokens = specials + byte_tokens + [f"\u2581t{i}" for i in range(rest)]
    types = ([TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL] + [TOKEN_BYTE] * 256
             + [TOKEN_NORMAL] * rest)
    scores = [0.0] * 259 + [-float(i + 1) for i in range(rest)]
    return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.scores": scores, "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.add_bos_token": True,
            "tokenizer.ggml.add_eos_token": False}


def _pad(n: int, align: int = ALIGNMENT) -> int:
    return -n % align


def build_header(items: Sequence[StoredTensor], kv: dict[str, Any]) -> tuple[bytes, list[int]]:
    """Header bytes up to the (aligned) data section, and each tensor's data offset."""
    kv = {"general.alignment": ALIGNMENT, **kv}
    parts = [MAGIC, struct.pack("<IQQ", VERSION, len(items), len(kv))]
    parts += [_kv(k, v) for k, v in kv.items()]
    offsets: list[int] = []
    off = 0
    for t in items:
        off += _pad(off)
        offsets.append(off)
        parts.append(_str(t.name) + struct.pack("<I", len(t.shape))
                     + struct.pack(f"<{len(t.shape)}Q", *t.shape)
                     + struct.pack("<IQ", GGML_TYPES[t.dtype][0], off))
        off += t.nbytes
    head = b"".join(parts)
    return head + b"\0" * _pad(len(head)), offsets


def data_size(items: Sequence[StoredTensor]) -> int:
    """Bytes of the data section: tensors, each padded to the alignment but the last."""
    off = 0
    for t in items:
        off += _pad(off) + t.nbytes
    return off


class _Reader:
    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data, self.pos = path, data, 0

    def take(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        if self.pos + n > len(self.data):
            raise EOFError
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += n
        return v if len(v) > 1 else v[0]

    def string(self) -> str:
        n = self.take("<Q")
        if n > 1 << 24 or self.pos + n > len(self.data):
            raise EOFError
        s = self.data[self.pos:self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype: int) -> Any:
        if vtype == _STR:
            return self.string()
        if vtype == _ARR:
            itype, count = self.take("<I"), self.take("<Q")
            return [self.value(itype) for _ in range(count)]
        if vtype not in _SCALAR:
            raise ValueError(f"unknown value type {vtype}")
        return self.take(_SCALAR[vtype])


def parse(path: Path, max_header: int = 64 << 20) -> tuple[list[Entry], dict[str, Any], int]:
    """Entries (absolute byte ranges), key/values and data start of a GGUF file."""
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            data = f.read(min(size, max_header))
    except OSError as e:
        raise RunFailed(f"{path}: cannot read it ({e.strerror})") from None
    r = _Reader(path, data)
    try:
        if r.take("<4s") != MAGIC:
            raise RunFailed(f"{path}: not a GGUF file (no 'GGUF' magic)")
        version, n_tensors, n_kv = r.take("<IQQ")
        if version not in (2, 3):
            raise RunFailed(f"{path}: GGUF version {version}; iobench reads versions 2 and 3")
        kv = {}
        for _ in range(n_kv):
            key = r.string()
            kv[key] = r.value(r.take("<I"))
        infos = []
        for _ in range(n_tensors):
            name = r.string()
            nd = r.take("<I")
            dims = tuple(struct.unpack_from(f"<{nd}Q", data, r.pos))
            r.pos += 8 * nd
            gtype, off = r.take("<IQ")
            infos.append((name, dims, gtype, off))
    except (EOFError, struct.error, ValueError):
        raise RunFailed(f"{path}: truncated or corrupt GGUF header; regenerate it") from None
    align = int(kv.get("general.alignment", ALIGNMENT))
    start = r.pos + _pad(r.pos, align)
    entries = []
    for name, dims, gtype, off in infos:
        if gtype not in _ID_TO_TYPE:
            raise RunFailed(f"{path}: tensor {name!r} has ggml type {gtype}, which iobench "
                            "does not size")
        tname = _ID_TO_TYPE[gtype]
        _, blk, bsize = GGML_TYPES[tname]
        numel = 1
        for d in dims:
            numel *= d
        b = start + off
        entries.append(Entry(name, tname, dims, b, b + numel // blk * bsize))
    entries.sort(key=lambda e: e.begin)
    if entries and entries[-1].end > size:
        raise RunFailed(f"{path}: truncated GGUF file: tensors end at byte {entries[-1].end} "
                        f"but the file has {size}; regenerate it")
    return entries, kv, start
