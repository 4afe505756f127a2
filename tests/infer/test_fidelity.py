"""Weight files load in the loaders people use: every key llama.cpp's loader requires
(checked with the gguf reader; tests/data/formats/llama_cpp_llama_keys.json names the
source), Hugging Face config.json / generation_config.json, values a loader can compute
with (finite fp8, positive scales, GPTQ g_idx) that stay incompressible, and a library
load phase whose clock starts after the library is imported."""

from __future__ import annotations

import json
import time
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from iobench.kinds.infer_load import files, load
from iobench.kinds.infer_load.layouts import GGUF_PRECISIONS, GROUP

gguf = pytest.importorskip("gguf")
KEYS = json.loads((Path(__file__).parent.parent / "data" / "formats" /
                   "llama_cpp_llama_keys.json").read_text())


def _field(r, key):
    f = r.fields[key]
    if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode() for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[-1]).decode()
    return f.parts[-1][0].item()


@pytest.mark.parametrize("precision", GGUF_PRECISIONS)
def test_gguf_has_every_key_llama_cpp_requires(tiny, tiny_root: Path, precision: str) -> None:
    from gguf import GGUFReader

    (path,) = files.paths(files.plan(tiny, precision, "gguf"), tiny_root)
    r = GGUFReader(str(path))
    missing = [k for k in KEYS["required"] if k not in r.fields]
    assert missing == []
    assert _field(r, "general.architecture") == "llama"
    assert _field(r, "tokenizer.ggml.model") == "llama"
    eps = _field(r, "llama.attention.layer_norm_rms_epsilon")
    assert r.fields["llama.attention.layer_norm_rms_epsilon"].types == [
        gguf.GGUFValueType.FLOAT32]
    assert eps == pytest.approx(tiny.arch.rms_norm_eps)
    assert _field(r, "llama.rope.dimension_count") == tiny.arch.head_dim  # llama.cpp checks n_rot
    tokens = _field(r, "tokenizer.ggml.tokens")
    types = _field(r, "tokenizer.ggml.token_type")
    scores = _field(r, "tokenizer.ggml.scores")
    embd = next(t for t in r.tensors if t.name == "token_embd.weight")
    assert len(tokens) == len(types) == len(scores) == tiny.arch.vocab_size == embd.shape[1]
    assert len(set(tokens)) == len(tokens)
    for t in KEYS["spm_needs_tokens"]:
        assert types[tokens.index(t)] == KEYS["token_type_values"]["byte"]
    assert set(types) <= set(KEYS["token_type_values"].values())
    for key, want in (("tokenizer.ggml.bos_token_id", "<s>"),
                      ("tokenizer.ggml.eos_token_id", "</s>"),
                      ("tokenizer.ggml.unknown_token_id", "<unk>")):
        assert tokens[_field(r, key)] == want
    # iobench's own parser still finds every tensor after the larger header
    ours = files.gguf_fmt.parse(path)[0]
    assert len(ours) == len(r.tensors)


def test_hf_directory_has_config_and_generation_config(tiny, tiny_root: Path) -> None:
    for precision in ("bf16", "fp8", "int4"):
        d = tiny_root / files.plan(tiny, precision, "safetensors").dirname
        cfg = json.loads((d / "config.json").read_text())
        gen = json.loads((d / "generation_config.json").read_text())
        assert cfg["architectures"] == ["LlamaForCausalLM"]
        assert cfg["model_type"] == "llama"
        assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]) \
            == (tiny.arch.hidden_size, tiny.arch.intermediate_size,
                tiny.arch.num_hidden_layers, tiny.arch.num_attention_heads,
                tiny.arch.num_key_value_heads, tiny.arch.vocab_size)
        assert cfg["tie_word_embeddings"] is tiny.arch.tie_word_embeddings
        assert gen["bos_token_id"] == cfg["bos_token_id"]
        if precision == "int4":
            assert cfg["quantization_config"]["quant_method"] == "gptq"
            assert cfg["quantization_config"]["group_size"] == GROUP


def _tensors(tiny, tiny_root: Path, precision: str) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    load._numpy_extra_dtypes()
    out = {}
    for path in files.paths(files.plan(tiny, precision, "safetensors"), tiny_root):
        with safe_open(str(path), framework="np") as f:
            for k in f.keys():  # noqa: SIM118 - safe_open is not a dict
                out[k] = f.get_tensor(k)
    return out


def test_fp8_weights_are_finite_and_scales_positive(tiny, tiny_root: Path) -> None:
    t = _tensors(tiny, tiny_root, "fp8")
    w = t["model.layers.0.mlp.up_proj.weight"]
    assert str(w.dtype) == "float8_e4m3fn"
    assert np.isfinite(w.astype(np.float32)).all()
    raw = w.view(np.uint8)
    assert zlib.compress(raw.tobytes(), 6).__len__() > 0.98 * raw.nbytes  # incompressible
    assert len(np.unique(raw)) == 254  # every finite code is used: only the 2 NaNs are gone
    for name, a in t.items():
        if name.endswith("weight_scale"):
            assert a.dtype == np.float32
            assert np.isfinite(a).all()
            assert (a > 0).all()


def test_int8_scales_positive(tiny, tiny_root: Path) -> None:
    t = _tensors(tiny, tiny_root, "int8")
    scales = [a for n, a in t.items() if n.endswith("weight_scale")]
    assert scales
    assert all((a > 0).all() and np.isfinite(a).all() for a in scales)


def test_gptq_has_g_idx_and_positive_scales(tiny, tiny_root: Path) -> None:
    t = _tensors(tiny, tiny_root, "int4")
    q = "model.layers.1.mlp.down_proj"  # in = intermediate_size
    g = t[q + ".g_idx"]
    assert g.dtype == np.int32
    assert g.tolist() == (np.arange(tiny.arch.intermediate_size) // GROUP).tolist()
    s = t[q + ".scales"]
    assert s.dtype == np.float16
    assert np.isfinite(s).all()
    assert (s > 0).all()
    qw = t[q + ".qweight"].view(np.uint8)
    assert len(zlib.compress(qw.tobytes(), 6)) > 0.98 * qw.nbytes
    linears = [n for n in t if n.endswith(".qweight")]
    assert all(n.removesuffix(".qweight") + ".g_idx" in t for n in linears)


@pytest.mark.parametrize(("method", "fmt", "precision"), [
    ("safetensors", "safetensors", "fp8"), ("gguf", "gguf", "bf16")])
def test_library_is_imported_before_the_clock_starts(tiny, tiny_root, monkeypatch, method,
                                                      fmt, precision) -> None:
    """The first library-method phase must not count Python's import of the library."""
    events: list[str] = []
    real_import, real_clock = load.import_library, load.time.monotonic_ns

    def imp(m: str):
        events.append("import")
        return real_import(m)

    def clock() -> int:
        events.append("clock")
        return real_clock()

    monkeypatch.setattr(load, "import_library", imp)
    monkeypatch.setattr(load, "time", types.SimpleNamespace(monotonic_ns=clock,
                                                            process_time=time.process_time))
    paths = files.paths(files.plan(tiny, precision, fmt), tiny_root)
    opts = load.LoadOptions()
    first = load.load(method, paths, fmt, opts)
    assert events[0] == "import"
    assert events.index("clock") > events.index("import")
    second = load.load(method, paths, fmt, opts)
    # warm files: the first and a repeated phase agree in everything but time
    assert (first.bytes, first.ops, first.latency.count) == \
        (second.bytes, second.ops, second.latency.count)
