"""Heavy optional checks with the real loaders (`make test-integration`, pytest -m
integration): llama.cpp (llama-cpp-python, built from source: ~20 min on 2 cores) loads
and evaluates every GGUF iobench writes; transformers builds the config (and, where torch
is installed, the model) from a safetensors directory alone. Each test skips with the
reason when its library is absent; the default suite keeps the key-set and layout checks
(tests/infer/test_fidelity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iobench import model
from iobench.kinds.infer_load import files, preset
from iobench.kinds.infer_load.layouts import GGUF_PRECISIONS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny() -> preset.InferenceModel:
    return preset.load("tiny")


@pytest.mark.parametrize("precision", GGUF_PRECISIONS)
def test_llama_cpp_loads_and_evaluates_the_gguf(tmp_path: Path, tiny, precision: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    (path,) = files.write(files.plan(tiny, precision, "gguf"), tmp_path)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, verbose=False)
    assert llm.n_vocab() == tiny.arch.vocab_size
    tokens = llm.tokenize(b"hello\n")
    assert tokens[0] == 1  # <s>, add_bos_token
    llm.eval(tokens)  # the weights are garbage, but a forward pass runs


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp8", "int8", "int4"])
def test_transformers_reads_the_config_from_the_directory(tmp_path: Path, tiny,
                                                          precision: str) -> None:
    transformers = pytest.importorskip("transformers")
    paths = files.write(files.plan(tiny, precision, "safetensors"), tmp_path)
    d = paths[0].parent
    cfg = transformers.AutoConfig.from_pretrained(str(d))
    assert cfg.model_type == "llama"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads) == (
        tiny.arch.hidden_size, tiny.arch.num_hidden_layers, tiny.arch.num_key_value_heads)
    gen = transformers.GenerationConfig.from_pretrained(str(d))
    assert gen.eos_token_id == 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_transformers_builds_the_model_from_the_directory(tmp_path: Path, tiny,
                                                          precision: str) -> None:
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    d = files.write(files.plan(tiny, precision, "safetensors"), tmp_path)[0].parent
    m = transformers.AutoModelForCausalLM.from_pretrained(str(d))
    n = sum(p.numel() for p in m.parameters())
    assert n == model.parameters(tiny.arch)
    want = torch.bfloat16 if precision == "bf16" else torch.float16
    assert next(m.parameters()).dtype == want
    index = json.loads((d / files.INDEX).read_text())
    assert set(index["weight_map"]) == set(m.state_dict())
