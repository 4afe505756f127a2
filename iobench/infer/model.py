"""The model shape `infer kvcache` reads (ModelSpec: layers, KV heads, head width).

Kept only for iobench.infer.kvcache until it reads iobench.model itself: an inference
preset (workloads/inference/*.yaml, `model: llama3-8b`) is resolved through
iobench.kinds.infer_load.preset; a YAML path with the architecture written inline (the
old schema) still loads here. The tensor list and parameter count are iobench.model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from iobench import presets, safepath, spec
from iobench.errors import SpecError

if TYPE_CHECKING:
    from iobench.kinds.infer_load.preset import InferenceModel

KIND = "inference"


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only (Llama-shaped) transformer, described as its config.json does."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    description: str = ""
    context_length: int = 8192
    tie_embeddings: bool = False
    rms_norm_eps: float = 1e-5  # Llama 3's RMSNorm epsilon (config.json rms_norm_eps)
    rope_theta: float = 500000.0  # Llama 3's RoPE base (config.json rope_theta)
    shard_size: int = spec.size_field(5_000_000_000)  # Hugging Face's default max_shard_size
    reference_gb: dict[str, float] = field(default_factory=dict)
    # per-head width; 0 = hidden_size / num_heads (Llama), set it where a model differs
    head_dim: int = 0

    def __post_init__(self) -> None:
        if self.head_dim == 0 and self.num_heads > 0:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)

    def check(self, path: str) -> None:
        safepath.check_name(self.name, f"{path}.name")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                    "num_heads", "num_kv_heads", "shard_size"):
            if getattr(self, key) <= 0:
                raise SpecError(f"{path}.{key}: {getattr(self, key)} must be >= 1")
        if self.head_dim < 0:
            raise SpecError(f"{path}.head_dim: {self.head_dim} must be >= 1 (or 0: "
                            "hidden_size / num_heads)")
        if self.hidden_size % self.num_heads and \
                self.head_dim == self.hidden_size // self.num_heads:  # head_dim not given
            raise SpecError(f"{path}.hidden_size {self.hidden_size} is not a multiple of "
                            f"num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise SpecError(f"{path}.num_heads {self.num_heads} is not a multiple of "
                            f"num_kv_heads {self.num_kv_heads}")
        # int4 groups of 128 and GGUF K-quant super-blocks of 256 along every row
        for key in ("hidden_size", "intermediate_size"):
            if getattr(self, key) % 256:
                raise SpecError(f"{path}.{key} {getattr(self, key)} must be a multiple of 256 "
                                "(quantization blocks); e.g. 256, 4096, 14336")
        if self.num_heads * self.head_dim % 256:
            raise SpecError(f"{path}.head_dim {self.head_dim} x num_heads {self.num_heads} "
                            "must be a multiple of 256 (quantization blocks)")


def load(name_or_path: str) -> ModelSpec:
    path: Path = presets.find(KIND, name_or_path)
    data = spec.load_yaml(path)
    if isinstance(data, dict) and "model" in data:
        from iobench.kinds.infer_load import preset

        m = from_inference(preset.load(str(path)))
    else:
        m = spec.from_mapping(ModelSpec, data, path.stem)
    m.check(path.stem)
    return m


def from_inference(im: InferenceModel) -> ModelSpec:
    a = im.arch
    return ModelSpec(im.name, a.vocab_size, a.hidden_size, a.intermediate_size,
                     a.num_hidden_layers, a.num_attention_heads, a.num_key_value_heads,
                     im.description, im.context_length, a.tie_word_embeddings,
                     a.rms_norm_eps, a.rope_theta, im.shard_size, dict(im.reference_gb),
                     a.head_dim)


def names() -> list[str]:
    return presets.names(KIND)
