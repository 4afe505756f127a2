"""KV bytes per token (iobench.model: Hugging Face config keys) and chunk geometry.

bytes per token = 2 (K and V) x layers x kv_heads x head_dim x bytes per element, with
kv_heads divided by the tensor-parallel degree per rank (vLLM replicates a KV head when
TP exceeds kv_heads, so a rank never holds less than one head). Llama 3 8B bf16: 131,072 B;
Llama 3 70B bf16: 327,680 B.
"""

from __future__ import annotations

from dataclasses import dataclass

from iobench.errors import UsageError
from iobench.model import Model, kv_bytes_per_token

KV_DTYPES = {"bf16": 2, "fp16": 2, "fp8": 1}
ALIGN = 4096  # O_DIRECT: a chunk occupies a whole number of 4 KiB blocks on storage


def kv_heads_per_rank(m: Model, tp: int) -> int:
    if tp < 1:
        raise UsageError(f"--tp {tp}: must be >= 1")
    if m.num_key_value_heads % tp and tp % m.num_key_value_heads:
        raise UsageError(f"--tp {tp}: {m.name} has {m.num_key_value_heads} KV heads; give a TP "
                         "degree that divides it or that it divides (e.g. 1, 2, 8)")
    return max(1, m.num_key_value_heads // tp)


def bytes_per_token(m: Model, dtype: str = "bf16", tp: int = 1) -> int:
    if dtype not in KV_DTYPES:
        raise UsageError(f"--kv-dtype {dtype!r}: use one of {', '.join(KV_DTYPES)}")
    # iobench.model.kv_bytes_per_token over the heads this rank holds
    heads = kv_heads_per_rank(m, tp)
    return kv_bytes_per_token(m, KV_DTYPES[dtype]) * heads // m.num_key_value_heads


@dataclass(frozen=True)
class Geometry:
    bytes_per_token: int
    chunk_tokens: int

    @property
    def payload_bytes(self) -> int:
        """KV bytes one chunk holds."""
        return self.bytes_per_token * self.chunk_tokens

    @property
    def chunk_bytes(self) -> int:
        """Bytes one chunk occupies and moves on storage (payload rounded up to 4 KiB)."""
        return -(-self.payload_bytes // ALIGN) * ALIGN

    def chunks(self, tokens: int) -> int:
        """Full chunks in a context of `tokens` (a partial tail chunk is not stored)."""
        return tokens // self.chunk_tokens


def geometry(m: Model, chunk_tokens: int, dtype: str = "bf16", tp: int = 1) -> Geometry:
    if chunk_tokens < 1:
        raise UsageError(f"--chunk-tokens {chunk_tokens}: must be >= 1 (256 as LMCache, "
                         "16 as vLLM blocks, 512 as Mooncake)")
    return Geometry(bytes_per_token(m, dtype, tp), chunk_tokens)
