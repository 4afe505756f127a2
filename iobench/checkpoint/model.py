"""Parameters and checkpoint bytes from a transformer's architecture, sharded per rank.

Parameter count (Llama-style decoder, SwiGLU MLP, RMSNorm, grouped-query attention):
per layer 2h (two norms) + h*q + 2*h*kv + q*h (attention, q = heads*head_dim,
kv = kv_heads*head_dim) + 3*h*ffn (gate, up, down); plus vocab*h embedding, vocab*h
lm_head unless tied, and h for the final norm. This is the count DLIO (MLPerf Storage)
uses, and for Llama 3 8B it gives the published 8.03 B.

Bytes: 2 B/param of bf16 weights + 12 B/param of fp32 optimizer state (master copy, Adam
m and v). Ranks are numbered as Megatron/DeepSpeed (and DLIO) do: tp fastest, then pp,
then dp. ZeRO-3 shards weights and optimizer over dp; ZeRO-1/2 keep weights on dp rank 0
and shard the optimizer; ZeRO-0 keeps both on dp rank 0. Shares are split to the byte,
so the ranks' bytes add up exactly to the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from iobench import safepath
from iobench.errors import SpecError
from iobench.spec import size_field

Layout = Literal["deepspeed", "dcp"]


@dataclass(frozen=True)
class Architecture:
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    head_dim: int | None = None  # default hidden // heads
    tied_embeddings: bool = False


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
class ModelSpec:
    """A checkpoint preset (workloads/checkpoint/*.yaml)."""

    name: str
    architecture: Architecture
    parallelism: Parallelism = field(default_factory=Parallelism)
    description: str = ""
    layout: Layout = "deepspeed"
    weight_bytes_per_param: int = 2
    optimizer_bytes_per_param: int = 12
    # training precision: DeepSpeed names its optimizer files bf16_zero_pp_rank_* with bf16
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    # The total MLPerf Storage v2.0 (Table 2) prints for this model, and the unit it
    # really means (its "GB" are GiB: DLIO divides by 1024**3); for tests and reports.
    mlperf_total: int | None = size_field(None)


def validate(spec: ModelSpec) -> ModelSpec:
    safepath.check_name(spec.name, "model name")  # it names checkpoint/<name>/
    a, p = spec.architecture, spec.parallelism
    for key in ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab"):
        if getattr(a, key) <= 0:
            raise SpecError(f"{spec.name}: architecture.{key} = {getattr(a, key)} must be >= 1")
    if a.head_dim is not None and a.head_dim <= 0:
        raise SpecError(f"{spec.name}: architecture.head_dim = {a.head_dim} must be >= 1")
    if a.kv_heads > a.heads:
        raise SpecError(f"{spec.name}: kv_heads {a.kv_heads} > heads {a.heads}; "
                        "grouped-query attention has at most as many kv heads as heads")
    for key in ("tp", "pp", "dp"):
        if getattr(p, key) <= 0:
            raise SpecError(f"--{key} {getattr(p, key)}: must be >= 1")
    if p.zero not in (0, 1, 2, 3):
        raise SpecError(f"--zero {p.zero}: ZeRO stage must be 0, 1, 2 or 3")
    if p.pp > a.layers:
        raise SpecError(f"--pp {p.pp}: more pipeline stages than the model's {a.layers} "
                        "layers; use --pp <= layers")
    if spec.layout == "deepspeed" and p.pp > 1 and p.zero >= 2:
        # DeepSpeed's PipelineEngine asserts it: "ZeRO-2 and ZeRO-3 are incompatible with
        # pipeline parallelism"
        raise SpecError(f"{spec.name}: ZeRO-{p.zero} with pipeline parallelism (pp {p.pp}): "
                        "DeepSpeed refuses ZeRO-2/3 with pipeline parallelism; use --zero 1 "
                        "(or 0), or --pp 1")
    if spec.weight_bytes_per_param < 0 or spec.optimizer_bytes_per_param < 0:
        raise SpecError(f"{spec.name}: bytes per parameter must be >= 0")
    return spec


def head_dim(a: Architecture) -> int:
    return a.head_dim if a.head_dim is not None else a.hidden // a.heads


def layer_params(a: Architecture) -> int:
    """Parameters of one decoder layer."""
    hd = head_dim(a)
    q = a.heads * hd
    kv = a.kv_heads * hd
    return 2 * a.hidden + a.hidden * q + 2 * a.hidden * kv + q * a.hidden + 3 * a.hidden * a.ffn


def embedding_params(a: Architecture) -> int:
    return a.vocab * a.hidden


def params(a: Architecture) -> int:
    """Total parameters (embedding + layers + final norm + lm_head unless tied)."""
    lm_head = 0 if a.tied_embeddings else embedding_params(a)
    return embedding_params(a) + a.layers * layer_params(a) + a.hidden + lm_head


def stage_modules(a: Architecture, pp: int) -> list[list[tuple[int, int]]]:
    """(PipelineModule layer index, parameters) of every module of each pipeline stage:
    0 the embedding, 1..L the decoder layers, L + 1 the final norm, L + 2 the lm_head
    (untied); the stages cut the decoder layers as stage_layers does."""
    per = stage_layers(a.layers, pp)
    out: list[list[tuple[int, int]]] = []
    first = 1
    for s, n in enumerate(per):
        mods = [(0, embedding_params(a))] if s == 0 else []
        mods += [(first + i, layer_params(a)) for i in range(n)]
        first += n
        if s == pp - 1:
            mods.append((a.layers + 1, a.hidden))
            if not a.tied_embeddings:
                mods.append((a.layers + 2, embedding_params(a)))
        out.append(mods)
    return out


def stage_layers(layers: int, pp: int) -> list[int]:
    """Decoder layers per pipeline stage: the first `layers % pp` stages get one more."""
    base, rem = divmod(layers, pp)
    return [base + (1 if s < rem else 0) for s in range(pp)]


def stage_params(a: Architecture, pp: int) -> list[int]:
    """Parameters per pipeline stage: stage 0 holds the embedding, the last the final norm
    and lm_head (untied); with one stage it holds all."""
    per = stage_layers(a.layers, pp)
    out = [n * layer_params(a) for n in per]
    out[0] += embedding_params(a)
    out[-1] += a.hidden + (0 if a.tied_embeddings else embedding_params(a))
    return out


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
    a, p = spec.architecture, spec.parallelism
    stages = stage_params(a, p.pp)
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


def total_bytes(spec: ModelSpec) -> int:
    n = params(spec.architecture)
    return n * (spec.weight_bytes_per_param + spec.optimizer_bytes_per_param)
