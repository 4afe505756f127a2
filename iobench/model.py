"""One description of a transformer, in Hugging Face config.json key names, shared by the
checkpoint and inference presets (`model: llama3-8b`), and the one parameter count.

Presets live in workloads/models/<name>.yaml; a path to a YAML file works too. The keys are
config.json's, so a real model's config can be copied in (unknown keys are refused: keep
the ones below). Derived figures:

- tensors(): the state dict in the order transformers' LlamaForCausalLM produces it
  (Llama-style decoder: SwiGLU MLP, RMSNorm, grouped-query attention);
- parameters(): their sum: per layer 2h (two norms) + h*q + 2*h*kv + q*h (attention,
  q = heads*head_dim, kv = kv_heads*head_dim) + 3*h*ffn; plus vocab*h embedding, vocab*h
  lm_head unless tied, and h for the final norm. This is the count DLIO (MLPerf Storage)
  uses; Llama 3 8B gives the published 8.03 B;
- kv_bytes_per_token(): 2 x layers x kv_heads x head_dim x bytes per element.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iobench import presets, safepath, spec
from iobench.errors import SpecError

KIND = "models"


@dataclass(frozen=True)
class Model:
    """A decoder-only (Llama-shaped) transformer, as its config.json describes it."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int = 0  # 0 = hidden_size / num_attention_heads (Llama)
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 8192
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.head_dim == 0 and self.num_attention_heads > 0:
            object.__setattr__(self, "head_dim",
                               self.hidden_size // self.num_attention_heads)

    def check(self, path: str) -> Model:
        safepath.check_name(self.name, f"{path}.name")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads",
                    "max_position_embeddings"):
            if getattr(self, key) <= 0:
                raise SpecError(f"{path}.{key}: {getattr(self, key)} must be >= 1")
        if self.head_dim < 0:
            raise SpecError(f"{path}.head_dim: {self.head_dim} must be >= 1 (or 0: "
                            "hidden_size / num_attention_heads)")
        if self.head_dim == 0:
            raise SpecError(f"{path}.hidden_size {self.hidden_size} is smaller than "
                            f"num_attention_heads {self.num_attention_heads}; give head_dim")
        if self.num_attention_heads % self.num_key_value_heads:
            raise SpecError(f"{path}.num_attention_heads {self.num_attention_heads} is not a "
                            f"multiple of num_key_value_heads {self.num_key_value_heads}")
        return self


@dataclass(frozen=True)
class Tensor:
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


def load(name_or_path: str) -> Model:
    path: Path = presets.find(KIND, name_or_path)
    return spec.load(Model, path).check(path.stem)


def names() -> list[str]:
    return presets.names(KIND)


def tensors(m: Model) -> list[Tensor]:
    """The state dict in the order transformers' LlamaForCausalLM produces it."""
    h, i, hd = m.hidden_size, m.intermediate_size, m.head_dim
    q_out, kv_out = m.num_attention_heads * hd, m.num_key_value_heads * hd
    out = [Tensor("model.embed_tokens.weight", (m.vocab_size, h), "embed",
                  gguf_name="token_embd.weight")]
    for n in range(m.num_hidden_layers):
        p = f"model.layers.{n}."
        g = f"blk.{n}."
        out += [
            Tensor(p + "self_attn.q_proj.weight", (q_out, h), "linear", n, g + "attn_q.weight"),
            Tensor(p + "self_attn.k_proj.weight", (kv_out, h), "linear", n, g + "attn_k.weight"),
            Tensor(p + "self_attn.v_proj.weight", (kv_out, h), "linear", n, g + "attn_v.weight"),
            Tensor(p + "self_attn.o_proj.weight", (h, q_out), "linear", n,
                   g + "attn_output.weight"),
            Tensor(p + "mlp.gate_proj.weight", (i, h), "linear", n, g + "ffn_gate.weight"),
            Tensor(p + "mlp.up_proj.weight", (i, h), "linear", n, g + "ffn_up.weight"),
            Tensor(p + "mlp.down_proj.weight", (h, i), "linear", n, g + "ffn_down.weight"),
            Tensor(p + "input_layernorm.weight", (h,), "norm", n, g + "attn_norm.weight"),
            Tensor(p + "post_attention_layernorm.weight", (h,), "norm", n,
                   g + "ffn_norm.weight"),
        ]
    out.append(Tensor("model.norm.weight", (h,), "norm", gguf_name="output_norm.weight"))
    if not m.tie_word_embeddings:
        out.append(Tensor("lm_head.weight", (m.vocab_size, h), "lm_head",
                          gguf_name="output.weight"))
    return out


def layer_parameters(m: Model) -> int:
    """Parameters of one decoder layer."""
    h, hd = m.hidden_size, m.head_dim
    q, kv = m.num_attention_heads * hd, m.num_key_value_heads * hd
    return 2 * h + h * q + 2 * h * kv + q * h + 3 * h * m.intermediate_size


def embedding_parameters(m: Model) -> int:
    """Embedding (and lm_head unless tied)."""
    return m.vocab_size * m.hidden_size * (1 if m.tie_word_embeddings else 2)


def parameters(m: Model) -> int:
    """The model's parameter count (equal to the sum over tensors())."""
    return m.num_hidden_layers * layer_parameters(m) + embedding_parameters(m) + m.hidden_size


def kv_bytes_per_token(m: Model, bytes_per_element: int, tensor_parallel: int = 1) -> int:
    """KV-cache bytes one token takes on one tensor-parallel rank."""
    total = 2 * m.num_hidden_layers * m.num_key_value_heads * m.head_dim * bytes_per_element
    return total // tensor_parallel
