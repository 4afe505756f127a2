"""Model-weight file sets: plan (names, headers, sizes) without writing, then stream them
to disk with memory bounded by one chunk, whatever the model size."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iobench import safepath
from iobench.content import Content
from iobench.engines.native import aligned_buffer, pwrite_full
from iobench.errors import RunFailed
from iobench.infer import gguf_fmt, safetensors_fmt
from iobench.infer.layouts import GGUF_FILE_TYPE, GGUF_TYPE_NAME, StoredTensor, stored_tensors
from iobench.infer.model import ModelSpec

MANIFEST = ".iobench-model.json"
INDEX = "model.safetensors.index.json"
WRITE_CHUNK = 8 << 20


@dataclass(frozen=True)
class FilePlan:
    name: str
    header: bytes
    tensors: tuple[StoredTensor, ...]
    size: int


@dataclass(frozen=True)
class ModelPlan:
    model: str
    precision: str
    fmt: str
    files: tuple[FilePlan, ...]
    index: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def tensor_count(self) -> int:
        return sum(len(f.tensors) for f in self.files)

    @property
    def dirname(self) -> str:
        return f"{self.fmt}-{self.precision}"

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "precision": self.precision, "format": self.fmt,
                "files": [{"name": f.name, "bytes": f.size, "tensors": len(f.tensors)}
                          for f in self.files],
                "tensors": self.tensor_count, "bytes": self.total_bytes}


def _shards(items: list[StoredTensor], max_bytes: int) -> list[list[StoredTensor]]:
    """Hugging Face's rule: start a new shard when the next tensor would pass the limit."""
    shards: list[list[StoredTensor]] = [[]]
    size = 0
    for t in items:
        if shards[-1] and size + t.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


def plan(m: ModelSpec, precision: str, fmt: str) -> ModelPlan:
    items = stored_tensors(m, precision, fmt)
    if fmt == "gguf":
        kv: dict[str, Any] = {
            "general.architecture": "llama", "general.name": m.name,
            "general.file_type": GGUF_FILE_TYPE[precision],
            "general.quantization_version": 2,
            "llama.context_length": m.context_length, "llama.embedding_length": m.hidden_size,
            "llama.block_count": m.num_layers, "llama.feed_forward_length": m.intermediate_size,
            "llama.attention.head_count": m.num_heads,
            "llama.attention.head_count_kv": m.num_kv_heads, "llama.vocab_size": m.vocab_size,
            "iobench.note": "synthetic weights for storage benchmarking (no tokenizer)",
        }
        head, _ = gguf_fmt.build_header(items, kv)
        name = f"{m.name}-{GGUF_TYPE_NAME[precision]}.gguf"
        fp = FilePlan(name, head, tuple(items), len(head) + gguf_fmt.data_size(items))
        return ModelPlan(m.name, precision, fmt, (fp,))
    meta = {"format": "pt", "iobench": f"synthetic {precision} weights of {m.name}"}
    shards = _shards(items, m.shard_size)
    n = len(shards)
    files = []
    for i, sh in enumerate(shards):
        name = "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        head = safetensors_fmt.build_header(sh, meta)
        files.append(FilePlan(name, head, tuple(sh), len(head) + sum(t.nbytes for t in sh)))
    index = None
    if n > 1:
        index = {"metadata": {"total_size": sum(t.nbytes for t in items)},
                 "weight_map": {t.name: f.name for f in files for t in f.tensors}}
    return ModelPlan(m.name, precision, fmt, tuple(files), index)


def paths(p: ModelPlan, root: Path) -> list[Path]:
    return [root / p.dirname / f.name for f in p.files]


def is_complete(p: ModelPlan, root: Path) -> bool:
    """The set was fully written for this exact plan (manifest + sizes match)."""
    d = root / p.dirname
    try:
        man = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if man != p.summary():
        return False
    return all((d / f.name).is_file() and (d / f.name).stat().st_size == f.size
               for f in p.files)


def write(p: ModelPlan, root: Path, seed: int = 0, progress: Any = None,
          chunk: int = WRITE_CHUNK) -> list[Path]:
    """Write the set (unless complete): each file via .part + rename, the manifest last.

    Memory: one `chunk` buffer. Contents: bf16-like values for float tensors, random bytes
    for quantized ones, each reproducible from (seed, file, offset).
    """
    d = root / p.dirname
    if is_complete(p, root):
        return paths(p, root)
    safepath.makedirs(d)
    safepath.remove(d / MANIFEST)
    buf = aligned_buffer(chunk)
    arr = np.frombuffer(buf, dtype=np.uint8)
    for fi, f in enumerate(p.files):
        gens = {k: Content(k, seed, stream=fi) for k in ("bf16", "random")}
        tmp = d / (f.name + ".part")
        fd = safepath.open_write(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            pwrite_full(fd, memoryview(f.header), 0)
            off = len(f.header)
            if p.fmt == "gguf":
                _, offsets = gguf_fmt.build_header(f.tensors, {})
                starts = [len(f.header) + o for o in offsets]
            else:
                starts = []
                for t in f.tensors:
                    starts.append(off)
                    off += t.nbytes
            for t, start in zip(f.tensors, starts, strict=False):
                gen = gens[t.content]
                done = 0
                while done < t.nbytes:
                    n = min(chunk, t.nbytes - done)
                    gen.fill(arr[:n], start + done)
                    pwrite_full(fd, memoryview(buf)[:n], start + done)
                    done += n
                    if progress is not None:
                        progress.advance(n)
            os.ftruncate(fd, f.size)  # GGUF: a last tensor ending unaligned keeps the size
            os.fsync(fd)
        except OSError as e:
            raise RunFailed(f"{tmp}: writing the model failed ({e.strerror}); free space "
                            "or choose a smaller model/precision") from None
        finally:
            os.close(fd)
        safepath.replace(tmp, d / f.name)
    if p.index is not None:
        safepath.write_file(d / INDEX, json.dumps(p.index, indent=2))
    safepath.write_file(d / MANIFEST, json.dumps(p.summary(), indent=1))
    return paths(p, root)
