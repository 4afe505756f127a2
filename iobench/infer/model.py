"""Model architectures (workloads/inference/*.yaml) and the tensors a real checkpoint holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iobench import presets, safepath, spec
from iobench.errors import SpecError

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


@dataclass(frozen=True)
class BaseTensor:
    """One tensor of the unquantized model, in Hugging Face naming and shape ([out, in])."""

    name: str
    shape: tuple[int, ...]
    role: str  # embed | lm_head | linear | norm
    layer: int = -1
    gguf_name: str = ""

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def load(name_or_path: str) -> ModelSpec:
    path: Path = presets.find(KIND, name_or_path)
    m = spec.load(ModelSpec, path)
    m.check(path.stem)
    return m


def names() -> list[str]:
    return presets.names(KIND)


def tensors(m: ModelSpec) -> list[BaseTensor]:
    """The state dict in the order transformers' LlamaForCausalLM produces it."""
    h, i, hd = m.hidden_size, m.intermediate_size, m.head_dim
    q_out, kv_out = m.num_heads * hd, m.num_kv_heads * hd
    out = [BaseTensor("model.embed_tokens.weight", (m.vocab_size, h), "embed",
                      gguf_name="token_embd.weight")]
    for n in range(m.num_layers):
        p = f"model.layers.{n}."
        g = f"blk.{n}."
        out += [
            BaseTensor(p + "self_attn.q_proj.weight", (q_out, h), "linear", n,
                       g + "attn_q.weight"),
            BaseTensor(p + "self_attn.k_proj.weight", (kv_out, h), "linear", n,
                       g + "attn_k.weight"),
            BaseTensor(p + "self_attn.v_proj.weight", (kv_out, h), "linear", n,
                       g + "attn_v.weight"),
            BaseTensor(p + "self_attn.o_proj.weight", (h, q_out), "linear", n,
                       g + "attn_output.weight"),
            BaseTensor(p + "mlp.gate_proj.weight", (i, h), "linear", n, g + "ffn_gate.weight"),
            BaseTensor(p + "mlp.up_proj.weight", (i, h), "linear", n, g + "ffn_up.weight"),
            BaseTensor(p + "mlp.down_proj.weight", (h, i), "linear", n, g + "ffn_down.weight"),
            BaseTensor(p + "input_layernorm.weight", (h,), "norm", n, g + "attn_norm.weight"),
            BaseTensor(p + "post_attention_layernorm.weight", (h,), "norm", n,
                       g + "ffn_norm.weight"),
        ]
    out.append(BaseTensor("model.norm.weight", (h,), "norm", gguf_name="output_norm.weight"))
    if not m.tie_embeddings:
        out.append(BaseTensor("lm_head.weight", (m.vocab_size, h), "lm_head",
                              gguf_name="output.weight"))
    return out


def parameters(m: ModelSpec) -> int:
    return sum(t.numel for t in tensors(m))
