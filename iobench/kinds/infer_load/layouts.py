"""Precision layouts: which tensors, dtypes and shapes a bf16/fp16/fp8/int8/int4 checkpoint
stores, in safetensors (Hugging Face, GPTQ-style int4) and GGUF (llama.cpp) files."""

from __future__ import annotations

from dataclasses import dataclass

from iobench.errors import UsageError, did_you_mean
from iobench.kinds.infer_load.preset import InferenceModel
from iobench.model import Tensor, tensors

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4")
FORMATS = ("safetensors", "gguf")
GROUP = 128  # int4 quantization group along the input dimension (GPTQ/AWQ default)

# bytes per element of the safetensors dtypes used here
ST_ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I8": 1, "I32": 4}

# GGML type: (id, elements per block, bytes per block), from ggml.h / gguf.constants
GGML_TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144),
    "Q6_K": (14, 256, 210), "BF16": (30, 1, 2),
}
GGUF_FILE_TYPE = {"bf16": 32, "fp16": 1, "int8": 7, "int4": 15}  # llama_ftype
GGUF_TYPE_NAME = {"bf16": "BF16", "fp16": "F16", "int8": "Q8_0", "int4": "Q4_K_M"}
GGUF_PRECISIONS = tuple(GGUF_FILE_TYPE)


@dataclass(frozen=True)
class StoredTensor:
    """A tensor as a file stores it. GGUF shapes are in GGUF order (row length first)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    # Content kind: bf16-like floats, random (quantized) bytes, or values a loader can
    # compute with: fp8 (random E4M3 bytes with the NaN codes remapped), scale32 /
    # scale16 (positive finite F32 / F16 with random mantissas), g_idx (GPTQ's
    # input-channel -> group map, i // 128)
    content: str


def check_precision(precision: str, fmt: str) -> None:
    """One line naming the precision, the format and what to use instead."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: unknown format{did_you_mean(fmt, FORMATS)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: unknown precision"
                         f"{did_you_mean(precision, PRECISIONS)}")
    if fmt == "gguf" and precision not in GGUF_PRECISIONS:
        raise UsageError(
            f"--precision {precision}: GGUF has no {precision} tensor type (llama.cpp "
            f"quantizes to Q8_0/Q4_K instead); with --format gguf use "
            f"{', '.join(GGUF_PRECISIONS)}, or use --format safetensors for {precision}")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _st(name: str, dtype: str, shape: tuple[int, ...], kind: str = "") -> StoredTensor:
    kind = kind or ("bf16" if dtype in ("BF16", "F16", "F32") else
                    "fp8" if dtype == "F8_E4M3" else "random")
    return StoredTensor(name, dtype, shape, _numel(shape) * ST_ITEMSIZE[dtype], kind)


def safetensors_tensors(m: InferenceModel, precision: str) -> list[StoredTensor]:
    """Quantized checkpoints keep embeddings, lm_head and norms in bf16, as real ones do."""
    out: list[StoredTensor] = []
    for t in tensors(m.arch):
        if precision == "fp16":
            out.append(_st(t.name, "F16", t.shape))
        elif precision == "bf16" or t.role != "linear":
            out.append(_st(t.name, "BF16", t.shape))
        elif precision in ("fp8", "int8"):
            # compressed-tensors style: 8-bit weight + one F32 scale per output channel
            out.append(_st(t.name, "F8_E4M3" if precision == "fp8" else "I8", t.shape))
            out.append(_st(t.name.removesuffix("weight") + "weight_scale", "F32",
                           (t.shape[0], 1), "scale32"))
        else:  # int4, GPTQ packing: 8 nibbles per I32 along the input dimension
            rows, cols = t.shape  # [out, in]
            base = t.name.removesuffix(".weight")
            out.append(_st(base + ".qweight", "I32", (cols // 8, rows)))
            out.append(_st(base + ".qzeros", "I32", (cols // GROUP, rows // 8)))
            out.append(_st(base + ".scales", "F16", (cols // GROUP, rows), "scale16"))
            out.append(_st(base + ".g_idx", "I32", (cols,), "g_idx"))
    return out


def _use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's rule for the Q4_K_M layers that get Q6_K (first/last eighth, every 3rd)."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _gguf_type(t: Tensor, precision: str, n_layers: int) -> str:
    if t.role == "norm":
        return "F32"
    if precision == "bf16":
        return "BF16"
    if precision == "fp16":
        return "F16"
    if precision == "int8":
        return "Q8_0"
    # Q4_K_M, as llama-quantize builds it
    if t.role == "lm_head":
        return "Q6_K"
    if t.gguf_name.endswith(("attn_v.weight", "ffn_down.weight")) and _use_more_bits(
            t.layer, n_layers):
        return "Q6_K"
    return "Q4_K"


def gguf_tensors(m: InferenceModel, precision: str) -> list[StoredTensor]:
    out: list[StoredTensor] = []
    for t in tensors(m.arch):
        ggml = _gguf_type(t, precision, m.arch.num_hidden_layers)
        _, blk, size = GGML_TYPES[ggml]
        shape = tuple(reversed(t.shape))  # GGUF: ne0 (row length) first
        if shape[0] % blk:
            raise UsageError(f"{m.name}: {t.name} row length {shape[0]} is not a multiple of "
                             f"the {ggml} block ({blk}); adjust the model's dimensions")
        nbytes = _numel(shape) // blk * size
        out.append(StoredTensor(t.gguf_name, ggml, shape, nbytes,
                                "bf16" if ggml in ("F32", "F16", "BF16") else "random"))
    return out


def stored_tensors(m: InferenceModel, precision: str, fmt: str) -> list[StoredTensor]:
    check_precision(precision, fmt)
    if fmt == "gguf":
        return gguf_tensors(m, precision)
    return safetensors_tensors(m, precision)
