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
from iobench.kinds.infer_load import gguf_fmt, safetensors_fmt
from iobench.kinds.infer_load.layouts import (
    GGUF_FILE_TYPE,
    GGUF_TYPE_NAME,
    GROUP,
    StoredTensor,
    stored_tensors,
)
from iobench.kinds.infer_load.preset import InferenceModel

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
    # safetensors: config.json and generation_config.json, so the directory alone is a
    # Hugging Face model directory (transformers' from_pretrained needs config.json)
    hf_files: dict[str, dict[str, Any]] | None = field(default=None, hash=False)

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
        # weights 2: finite fp8, positive scales, g_idx, config.json (older sets rewrite)
        return {"model": self.model, "precision": self.precision, "format": self.fmt,
                "weights_version": 2,
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


HF_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp8": "bfloat16", "int8": "bfloat16",
            "int4": "float16"}


def hf_config(im: InferenceModel, precision: str) -> dict[str, Any]:
    """config.json of transformers' LlamaForCausalLM for the preset (as Llama 3's own).
    int4 says how the GPTQ tensors are packed (quantization_config, as GPTQ checkpoints
    do); fp8/int8 weights + weight_scale are described in iobench_quantization only,
    since loading them needs a quantization backend transformers does not ship."""
    m = im.arch
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": m.vocab_size, "hidden_size": m.hidden_size,
        "intermediate_size": m.intermediate_size, "num_hidden_layers": m.num_hidden_layers,
        "num_attention_heads": m.num_attention_heads,
        "num_key_value_heads": m.num_key_value_heads,
        "head_dim": m.head_dim, "hidden_act": "silu",
        "max_position_embeddings": im.context_length, "rms_norm_eps": m.rms_norm_eps,
        "rope_theta": m.rope_theta, "tie_word_embeddings": m.tie_word_embeddings,
        "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
        "bos_token_id": 1, "eos_token_id": 2, "use_cache": True,
        "torch_dtype": HF_DTYPE[precision],
    }
    if precision == "int4":
        cfg["quantization_config"] = {"quant_method": "gptq", "bits": 4,
                                      "group_size": GROUP, "desc_act": False, "sym": True,
                                      "checkpoint_format": "gptq"}
    elif precision in ("fp8", "int8"):
        cfg["iobench_quantization"] = {
            "weights": "F8_E4M3" if precision == "fp8" else "I8",
            "scales": "weight_scale: F32 per output channel"}
    return cfg


def plan(im: InferenceModel, precision: str, fmt: str) -> ModelPlan:
    items = stored_tensors(im, precision, fmt)
    m = im.arch
    if fmt == "gguf":
        kv: dict[str, Any] = {
            "general.architecture": "llama", "general.name": im.name,
            "general.file_type": GGUF_FILE_TYPE[precision],
            "general.quantization_version": 2,
            "llama.context_length": im.context_length, "llama.embedding_length": m.hidden_size,
            "llama.block_count": m.num_hidden_layers,
            "llama.feed_forward_length": m.intermediate_size,
            "llama.attention.head_count": m.num_attention_heads,
            "llama.attention.head_count_kv": m.num_key_value_heads,
            "llama.vocab_size": m.vocab_size,
            "llama.attention.layer_norm_rms_epsilon": float(m.rms_norm_eps),
            "llama.rope.dimension_count": m.head_dim, "llama.rope.freq_base": float(m.rope_theta),
            **gguf_fmt.tokenizer_kv(m.vocab_size),
            "iobench.note": "synthetic weights for storage benchmarking (placeholder "
                            "tokenizer)",
        }
        head, _ = gguf_fmt.build_header(items, kv)
        name = f"{im.name}-{GGUF_TYPE_NAME[precision]}.gguf"
        fp = FilePlan(name, head, tuple(items), len(head) + gguf_fmt.data_size(items))
        return ModelPlan(im.name, precision, fmt, (fp,))
    meta = {"format": "pt", "iobench": f"synthetic {precision} weights of {im.name}"}
    shards = _shards(items, im.shard_size)
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
    hf = {"config.json": hf_config(im, precision),
          "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2,
                                     "do_sample": False, "_from_model_config": True}}
    return ModelPlan(im.name, precision, fmt, tuple(files), index, hf)


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
               for f in p.files) and all((d / n).is_file() for n in p.hf_files or {})


def computable(kind: str, a: np.ndarray, at: int) -> None:
    """Make random bytes `a` (tensor bytes from offset `at`, a multiple of 4) values a
    loader can compute with, in place; still incompressible (a bit or a few of 8-32 lost).
    fp8: E4M3FN's NaN codes (x.1111.111) become +-448 (x.1111.110): all finite. scale32:
    F32 in [2^-8, 2^-7), random mantissa. scale16: F16 in [2^-8, 2^-7). g_idx: int32
    i // GROUP, GPTQ's in-order group of each input channel."""
    if kind == "fp8":
        nan = (a & 0x7F) == 0x7F
        a[nan] ^= 0x01
    elif kind == "scale32":
        w = a.view(np.uint32)
        w &= np.uint32(0x007FFFFF)
        w |= np.uint32((127 - 8) << 23)
    elif kind == "scale16":
        h = a.view(np.uint16)
        h &= np.uint16(0x03FF)
        h |= np.uint16((15 - 8) << 10)
    elif kind == "g_idx":
        first = at // 4
        a.view("<i4")[:] = (np.arange(first, first + a.size // 4) // GROUP).astype("<i4")


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
                gen = gens["bf16" if t.content == "bf16" else "random"]
                done = 0
                while done < t.nbytes:
                    n = min(chunk, t.nbytes - done)
                    gen.fill(arr[:n], start + done)
                    computable(t.content, arr[:n], done)
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
    for name, doc in (p.hf_files or {}).items():
        safepath.write_file(d / name, json.dumps(doc, indent=2))
    safepath.write_file(d / MANIFEST, json.dumps(p.summary(), indent=1))
    return paths(p, root)
