"""A checkpoint preset (workloads/checkpoint/*.yaml) and its bytes, sharded per rank.

The transformer itself is iobench.model.Model (Hugging Face config.json keys,
workloads/models/*.yaml): a preset names it (`model: llama3-8b`) and adds how the job is
parallelised, the file layout and what MLPerf Storage lists for it. The parameter count is
iobench.model.parameters(); this module only splits those parameters over the ranks.

Bytes: 2 B/param of bf16 weights + 12 B/param of fp32 optimizer state (master copy, Adam
m and v). Ranks are numbered as Megatron/DeepSpeed (and DLIO) do: tp fastest, then pp,
then dp. ZeRO-3 shards weights and optimizer over dp; ZeRO-1/2 keep weights on dp rank 0
and shard the optimizer; ZeRO-0 keeps both on dp rank 0. Shares are split to the byte,
so the ranks' bytes add up exactly to the model's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from iobench import model as model_mod
from iobench import presets, safepath
from iobench import spec as spec_mod
from iobench.errors import SpecError
from iobench.model import Model
from iobench.spec import size_field

Layout = Literal["deepspeed", "dcp"]
Dtype = Literal["bf16", "fp16", "fp32"]


@dataclass(frozen=True)
class Parallelism:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    zero: int = 3

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp


@dataclass(frozen=True)
class Preset:
    """The keys of a checkpoint preset file (workloads/checkpoint/*.yaml)."""

    name: str
    model: str  # a model of workloads/models/ (`llama3-8b`) or a path to its YAML
    parallelism: Parallelism = field(default_factory=Parallelism)
    description: str = ""
    layout: Layout = "deepspeed"
    weight_bytes_per_param: int = 2
    optimizer_bytes_per_param: int = 12
    # training precision: DeepSpeed names its optimizer files bf16_zero_pp_rank_* with bf16
    dtype: Dtype = "bf16"
    # The total MLPerf Storage v2.0 (Table 2) prints for this model, and the unit it
    # really means (its "GB" are GiB: DLIO divides by 1024**3); for tests and reports.
    mlperf_total: int | None = size_field(None)


@dataclass(frozen=True)
class ModelSpec:
    """A checkpoint preset with its model resolved: what one checkpoint holds."""

    name: str
    model: Model
    parallelism: Parallelism = field(default_factory=Parallelism)
    description: str = ""
    layout: Layout = "deepspeed"
    weight_bytes_per_param: int = 2
    optimizer_bytes_per_param: int = 12
    dtype: Dtype = "bf16"
    mlperf_total: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.name
        d["config"] = dataclasses.asdict(self.model)  # the config.json keys it used
        return d


ARCHITECTURE_GONE = (
    "`architecture:` is no longer read: name the model instead (`model: llama3-8b`, one of "
    "workloads/models/, or a path to a model YAML with Hugging Face config.json keys: "
    "hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
    "num_key_value_heads, vocab_size)")


def load(name_or_path: str) -> ModelSpec:
    """A checkpoint preset by name (workloads/checkpoint/) or path, its model resolved."""
    path = presets.find("checkpoint", name_or_path)
    data = spec_mod.load_yaml(path)
    if isinstance(data, dict) and "architecture" in data:
        raise SpecError(f"{path}: {ARCHITECTURE_GONE}")
    preset = spec_mod.from_mapping(Preset, data, path.stem)
    ref = preset.model
    if ref.endswith((".yaml", ".yml")) and not Path(ref).is_absolute():
        ref = str(path.parent / ref)  # a model file beside the preset
    try:
        m = model_mod.load(ref)
    except SpecError as e:
        raise SpecError(f"{path.stem}.model: {e.format_message()}") from None
    values = {f.name: getattr(preset, f.name) for f in dataclasses.fields(Preset)}
    values["model"] = m
    return validate(ModelSpec(**values))


def validate(spec: ModelSpec) -> ModelSpec:
    safepath.check_name(spec.name, "model name")  # it names checkpoint/<name>/
    m, p = spec.model, spec.parallelism
    for key in ("tp", "pp", "dp"):
        if getattr(p, key) <= 0:
            raise SpecError(f"--{key} {getattr(p, key)}: must be >= 1")
    if p.zero not in (0, 1, 2, 3):
        raise SpecError(f"--zero {p.zero}: ZeRO stage must be 0, 1, 2 or 3")
    if p.pp > m.num_hidden_layers:
        raise SpecError(f"--pp {p.pp}: more pipeline stages than the model's "
                        f"{m.num_hidden_layers} layers; use --pp <= layers")
    if spec.layout == "deepspeed" and p.pp > 1 and p.zero >= 2:
        # DeepSpeed's PipelineEngine asserts it: "ZeRO-2 and ZeRO-3 are incompatible with
        # pipeline parallelism"
        raise SpecError(f"{spec.name}: ZeRO-{p.zero} with pipeline parallelism (pp {p.pp}): "
                        "DeepSpeed refuses ZeRO-2/3 with pipeline parallelism; use --zero 1 "
                        "(or 0), or --pp 1")
    if spec.weight_bytes_per_param < 0 or spec.optimizer_bytes_per_param < 0:
        raise SpecError(f"{spec.name}: bytes per parameter must be >= 0")
    return spec


def _embedding(m: Model) -> int:
    """One embedding table (the input embedding; the lm_head unless tied is another)."""
    return m.vocab_size * m.hidden_size


def _head(m: Model) -> int:
    return 0 if m.tie_word_embeddings else _embedding(m)


def stage_modules(m: Model, pp: int) -> list[list[tuple[int, int]]]:
    """(PipelineModule layer index, parameters) of every module of each pipeline stage:
    0 the embedding, 1..L the decoder layers, L + 1 the final norm, L + 2 the lm_head
    (untied); the stages cut the decoder layers as stage_layers does."""
    layers = m.num_hidden_layers
    per = stage_layers(layers, pp)
    lp = model_mod.layer_parameters(m)
    out: list[list[tuple[int, int]]] = []
    first = 1
    for s, n in enumerate(per):
        mods = [(0, _embedding(m))] if s == 0 else []
        mods += [(first + i, lp) for i in range(n)]
        first += n
        if s == pp - 1:
            mods.append((layers + 1, m.hidden_size))
            if not m.tie_word_embeddings:
                mods.append((layers + 2, _head(m)))
        out.append(mods)
    return out


def stage_layers(layers: int, pp: int) -> list[int]:
    """Decoder layers per pipeline stage: the first `layers % pp` stages get one more."""
    base, rem = divmod(layers, pp)
    return [base + (1 if s < rem else 0) for s in range(pp)]


def stage_params(m: Model, pp: int) -> list[int]:
    """Parameters per pipeline stage (they add up to iobench.model.parameters())."""
    return [sum(n for _, n in mods) for mods in stage_modules(m, pp)]


def split(total: int, n: int) -> list[int]:
    """Split `total` into n integer parts that differ by at most 1 and add up exactly."""
    base, rem = divmod(total, n)
    return [base + (1 if i < rem else 0) for i in range(n)]


@dataclass(frozen=True)
class RankShare:
    """What one world rank holds in a checkpoint."""

    rank: int
    tp: int
    pp: int
    dp: int
    mp: int  # model-parallel rank: pp * tp_size + tp
    model_bytes: int
    optim_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.optim_bytes


def rank_coords(rank: int, p: Parallelism) -> tuple[int, int, int, int]:
    """(tp, pp, dp, mp) of a world rank: tp fastest, then pp, then dp."""
    tp = rank % p.tp
    pp = (rank // p.tp) % p.pp
    dp = rank // (p.tp * p.pp)
    return tp, pp, dp, pp * p.tp + tp


def shares(spec: ModelSpec) -> list[RankShare]:
    """Bytes of model and optimizer state of every world rank (exact, to the byte)."""
    p = spec.parallelism
    stages = stage_params(spec.model, p.pp)
    slice_params = {(s, t): n for s, sp in enumerate(stages) for t, n in enumerate(split(sp, p.tp))}
    out: list[RankShare] = []
    for r in range(p.world):
        tp, pp, dp, mp = rank_coords(r, p)
        n = slice_params[(pp, tp)]
        w = n * spec.weight_bytes_per_param
        o = n * spec.optimizer_bytes_per_param
        if p.zero == 3:
            mb, ob = split(w, p.dp)[dp], split(o, p.dp)[dp]
        elif p.zero in (1, 2):
            mb, ob = (w if dp == 0 else 0), split(o, p.dp)[dp]
        else:
            mb, ob = (w, o) if dp == 0 else (0, 0)
        out.append(RankShare(r, tp, pp, dp, mp, mb, ob))
    return out


def params(spec: ModelSpec) -> int:
    """The model's parameters (iobench.model.parameters: the one count)."""
    return model_mod.parameters(spec.model)


def total_bytes(spec: ModelSpec) -> int:
    return params(spec) * (spec.weight_bytes_per_param + spec.optimizer_bytes_per_param)
