"""Inference presets (workloads/inference/*.yaml): which model (`model: llama3-8b`, one
description in workloads/models/, iobench.model) and the settings of its weight files.

    name: llama3-8b
    model: llama3-8b          # a preset of workloads/models/ or a path to one
    shard_size: 5GB           # Hugging Face's default max_shard_size
    reference_gb: {bf16: 16.1, ...}   # public checkpoints' sizes, shown by --what-if
    context_length: 8192      # optional: the model's max_position_embeddings otherwise

The architecture is never repeated here; the quantization-block rule (int4 groups of 128,
GGUF K-quant super-blocks of 256 along every row) is an inference check of the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iobench import model as model_mod
from iobench import presets, safepath, spec
from iobench.errors import SpecError

KIND = "inference"
QUANT_BLOCK = 256  # GGUF K-quant super-block (and a multiple of the int4 group, 128)
# config.json keys the old inline presets carried (refused with a pointer to `model:`)
_ARCHITECTURE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                      "num_heads", "num_kv_heads", "head_dim", "tie_embeddings")


@dataclass(frozen=True)
class Preset:
    """The YAML of an inference preset."""

    name: str
    model: str  # a workloads/models/ preset name or a path to a model YAML
    description: str = ""
    shard_size: int = spec.size_field(5_000_000_000)
    reference_gb: dict[str, float] = field(default_factory=dict)
    context_length: int = 0  # 0: the model's max_position_embeddings


@dataclass(frozen=True)
class InferenceModel:
    """A model as `infer load` writes it: the architecture and its files' settings."""

    name: str  # the preset's name: the weight directory and general.name
    arch: model_mod.Model
    shard_size: int
    context_length: int
    reference_gb: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def check(self, path: str) -> InferenceModel:
        safepath.check_name(self.name, f"{path}.name")
        if self.shard_size <= 0:
            raise SpecError(f"{path}.shard_size: {self.shard_size} must be >= 1")
        if self.context_length <= 0:
            raise SpecError(f"{path}.context_length: {self.context_length} must be >= 1")
        a = self.arch
        for key in ("hidden_size", "intermediate_size"):
            if getattr(a, key) % QUANT_BLOCK:
                raise SpecError(f"{path}: model {a.name}: {key} {getattr(a, key)} must be a "
                                f"multiple of {QUANT_BLOCK} (quantization blocks); e.g. 256, "
                                "4096, 14336")
        if a.num_attention_heads * a.head_dim % QUANT_BLOCK:
            raise SpecError(f"{path}: model {a.name}: head_dim {a.head_dim} x "
                            f"num_attention_heads {a.num_attention_heads} must be a multiple "
                            f"of {QUANT_BLOCK} (quantization blocks)")
        return self

    def to_dict(self) -> dict[str, object]:
        """What a result records (`model_spec`): the settings and the architecture."""
        import dataclasses

        return {"name": self.name, "description": self.description,
                "shard_size": self.shard_size, "context_length": self.context_length,
                "reference_gb": dict(self.reference_gb),
                "model": dataclasses.asdict(self.arch)}


def from_preset(p: Preset, path: str) -> InferenceModel:
    arch = model_mod.load(p.model)
    return InferenceModel(p.name, arch, p.shard_size,
                          p.context_length or arch.max_position_embeddings,
                          dict(p.reference_gb), p.description or arch.description).check(path)


def load(name_or_path: str) -> InferenceModel:
    """An inference preset by name (workloads/inference/) or YAML path."""
    path: Path = presets.find(KIND, name_or_path)
    data = spec.load_yaml(path)
    if isinstance(data, Mapping) and "model" not in data:
        old = [k for k in _ARCHITECTURE_KEYS if k in data]
        if old:
            raise SpecError(f"{path}: {old[0]}: the architecture is described once, in "
                            "workloads/models/ (Hugging Face config.json keys); give "
                            "`model: <name or path>` and keep only name, shard_size, "
                            "reference_gb, context_length here")
    return from_preset(spec.from_mapping(Preset, data, path.stem), path.stem)


def names() -> list[str]:
    return presets.names(KIND)
