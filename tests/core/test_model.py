"""The one model description (Hugging Face keys) and the one parameter count."""

import pytest

from iobench import model
from iobench.errors import SpecError


def test_llama3_8b_published_figures():
    m = model.load("llama3-8b")
    assert model.parameters(m) == 8_030_261_248  # "8.03 B"
    assert model.kv_bytes_per_token(m, 2) == 131_072  # 128 KiB per token in bf16
    assert model.kv_bytes_per_token(model.load("llama3-70b"), 2) == 327_680


@pytest.mark.parametrize("name", model.names())
def test_the_count_is_the_sum_over_the_tensors(name):
    m = model.load(name)
    assert model.parameters(m) == sum(t.numel for t in model.tensors(m))


def test_a_config_json_key_that_is_wrong_is_one_line(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("name: m\nvocab_size: 10\nhidden_size: 64\nintermediate_size: 64\n"
                 "num_hidden_layers: 1\nnum_attention_heads: 6\nnum_key_value_heads: 4\n")
    with pytest.raises(SpecError, match="num_attention_heads 6 is not a multiple"):
        model.load(str(p))
    p.write_text("name: m\nnum_layers: 1\n")
    with pytest.raises(SpecError, match="num_layers: unknown key"):
        model.load(str(p))
