"""File sizes and tensor counts from the plans, against REFERENCE.md section 6 (no writing)."""

from __future__ import annotations

import pytest

from iobench import model
from iobench.kinds.infer_load import files, preset
from iobench.kinds.infer_load.layouts import stored_tensors

# REFERENCE.md section 6, Llama 3.x table (GB = 10^9 B). fp16 is bf16's size; int8 has
# fp8's bytes per weight; GGUF int8 is Q8_0 and GGUF int4 is Q4_K_M.
REF_8B = {("safetensors", "bf16"): 16.1, ("safetensors", "fp16"): 16.1,
          ("safetensors", "fp8"): 9.1, ("safetensors", "int8"): 9.1,
          ("safetensors", "int4"): 5.7, ("gguf", "bf16"): 16.1, ("gguf", "fp16"): 16.1,
          ("gguf", "int8"): 8.5, ("gguf", "int4"): 4.9}
REF_70B = {("safetensors", "bf16"): 141, ("safetensors", "fp8"): 72.7,
           ("safetensors", "int4"): 39.8, ("gguf", "int8"): 75, ("gguf", "int4"): 43.1}


@pytest.mark.parametrize(("fmt", "precision"), sorted(REF_8B))
def test_llama3_8b_sizes_within_3_percent(fmt: str, precision: str) -> None:
    p = files.plan(preset.load("llama3-8b"), precision, fmt)
    ref = REF_8B[(fmt, precision)] * 1e9
    assert abs(p.total_bytes - ref) / ref <= 0.03, (p.total_bytes, ref)


@pytest.mark.parametrize(("fmt", "precision"), sorted(REF_70B))
def test_llama3_70b_sizes_within_3_percent(fmt: str, precision: str) -> None:
    p = files.plan(preset.load("llama3-70b"), precision, fmt)
    ref = REF_70B[(fmt, precision)] * 1e9
    assert abs(p.total_bytes - ref) / ref <= 0.03, (p.total_bytes, ref)


def test_parameter_count_matches_llama3_8b() -> None:
    assert model.parameters(preset.load("llama3-8b").arch) == 8_030_261_248


def test_preset_reference_figures_match_reference_md() -> None:
    m = preset.load("llama3-8b")
    assert m.reference_gb["bf16"] == 16.1
    assert m.reference_gb["int4"] == 5.7
    assert m.reference_gb["gguf-int4"] == 4.9
    assert m.reference_gb["gguf-int8"] == 8.5


def test_bf16_shards_like_hugging_face() -> None:
    p = files.plan(preset.load("llama3-8b"), "bf16", "safetensors")
    # meta-llama/Meta-Llama-3-8B ships 4 shards of 4.98, 5.00, 4.92 and 1.17 GB
    assert [f.name for f in p.files] == [f"model-0000{i}-of-00004.safetensors"
                                         for i in range(1, 5)]
    assert [round(f.size / 1e9, 2) for f in p.files] == [4.98, 5.0, 4.92, 1.17]
    assert all(f.size <= 5e9 + len(f.header) for f in p.files)
    assert p.index is not None
    assert p.index["metadata"]["total_size"] == sum(f.size - len(f.header) for f in p.files)
    assert len(p.index["weight_map"]) == 291


def test_quantized_tensor_counts_and_layouts() -> None:
    m = preset.load("llama3-8b")
    counts = {pr: files.plan(m, pr, "safetensors").tensor_count
              for pr in ("bf16", "fp8", "int4")}
    assert counts == {"bf16": 291, "fp8": 515, "int4": 963}
    # GPTQ: qweight, qzeros, scales and g_idx for each of the 224 linears, 67 kept bf16
    assert counts["int4"] == 224 * 4 + 67
    int4 = {t.name: t for t in stored_tensors(m, "int4", "safetensors")}
    q = "model.layers.0.mlp.down_proj"  # [out 4096, in 14336]
    assert (int4[q + ".qweight"].dtype, int4[q + ".qweight"].shape) == ("I32", (1792, 4096))
    assert (int4[q + ".scales"].dtype, int4[q + ".scales"].shape) == ("F16", (112, 4096))
    assert (int4[q + ".qzeros"].dtype, int4[q + ".qzeros"].shape) == ("I32", (112, 512))
    assert (int4[q + ".g_idx"].dtype, int4[q + ".g_idx"].shape) == ("I32", (14336,))
    assert int4["model.embed_tokens.weight"].dtype == "BF16"
    assert int4["lm_head.weight"].dtype == "BF16"
    fp8 = {t.name: t for t in stored_tensors(m, "fp8", "safetensors")}
    assert fp8["model.layers.3.self_attn.q_proj.weight"].dtype == "F8_E4M3"
    assert fp8["model.layers.3.self_attn.q_proj.weight_scale"].shape == (4096, 1)
    i8 = {t.name: t for t in stored_tensors(m, "int8", "safetensors")}
    assert i8["model.layers.3.mlp.up_proj.weight"].dtype == "I8"


def test_gguf_q4_k_m_mix() -> None:
    m = preset.load("llama3-8b")
    g = {t.name: t.dtype for t in stored_tensors(m, "int4", "gguf")}
    assert g["output.weight"] == "Q6_K"
    assert g["token_embd.weight"] == "Q4_K"
    assert g["blk.0.ffn_down.weight"] == "Q6_K"
    assert g["blk.4.ffn_down.weight"] == "Q4_K"
    assert g["blk.0.attn_q.weight"] == "Q4_K"
    assert g["blk.0.attn_norm.weight"] == "F32"
    q8 = {t.name: t.dtype for t in stored_tensors(m, "int8", "gguf")}
    assert set(q8.values()) == {"Q8_0", "F32"}
