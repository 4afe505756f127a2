"""The infer-load kind as a library: run() without Click, its declared metrics, measured
residency at the start of each load, v1 results, and a click-free run module."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import iobench
from iobench import results
from iobench.errors import SpecError, UsageError
from iobench.kinds import infer_load
from iobench.kinds.base import RunOptions
from iobench.kinds.infer_load import preset


def tiny(tmp_path: Path, **kw):
    values = {"model": "tiny", "precisions": "bf16", "methods": "pread,mmap", "chunk": "256k",
              "threads": 2, **kw}
    return infer_load.run(infer_load.build(**values),
                          RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r"))


def test_run_api_returns_a_result_matching_the_declarations(tmp_path):
    r = tiny(tmp_path)
    assert r.status == "ok", r.reason
    assert infer_load.METRICS.check(r) == []
    assert [p.name for p in r.phases] == ["load bf16 pread cold", "load bf16 pread warm",
                                          "load bf16 mmap cold", "load bf16 mmap warm"]
    assert r.metrics["load_s"] == r.metrics["load.bf16.pread.cold.load_s"] == \
        r.phases[0].seconds
    assert r.metrics["load_gb_per_s"] > 0
    assert results.load(r.run_dir).to_dict() == r.to_dict()
    assert iobench.infer_load is infer_load


def test_residency_at_the_start_of_each_load_is_measured(tmp_path):
    r = tiny(tmp_path)
    by_name = {p.name: p.metrics["resident_start_pct"] for p in r.phases}
    if r.cache["residency"][0]["method"] == "unavailable":
        pytest.skip("neither cachestat nor mincore works here")
    # a warm load starts with every page cached (the untimed pass just read them); the
    # cold one after an eviction with (almost) none: per-file fadvise, then measured
    assert by_name["load bf16 pread warm"] == 100.0
    assert by_name["load bf16 pread cold"] < 50.0
    assert [e["phase"] for e in r.cache["residency"]] == [p.name for p in r.phases]
    assert r.cache["resident_start_pct"] == by_name["load bf16 pread cold"]


def test_replicas_carry_their_residency_and_fleet_metrics(tmp_path):
    r = tiny(tmp_path, methods="pread", cold=True, replicas=2)
    assert r.status == "ok", r.reason
    assert infer_load.METRICS.check(r) == []
    rep = r.phases[-1]
    assert rep.name == "load bf16 pread x2 replicas cold"
    assert "resident_start_pct" in rep.metrics
    assert r.metrics["load.bf16.pread.replicas2.ready_p99_s"] > 0


def test_a_schema_1_result_loads_with_its_metrics_renamed(tmp_path):
    r = tiny(tmp_path, methods="pread", cold=True)
    d = r.to_dict()
    d["schema_version"] = 1
    new = dict(d["metrics"])
    d["metrics"] = {k.replace(".load_s", ".seconds"): v for k, v in new.items()}
    d["metrics"]["load.seconds"] = d["metrics"].pop("load_s")
    d["metrics"]["load.gb_per_s"] = d["metrics"].pop("load_gb_per_s")
    for p in d["phases"]:
        p["iops"] = p.pop("ops_per_s")
        p["metrics"]["bytes_read"] = p["metrics"].pop("read_bytes")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert dict(up.metrics) == new
    assert up.phases[0].metrics["read_bytes"] == r.phases[0].metrics["read_bytes"]
    assert infer_load.METRICS.check(up) == []


def test_the_preset_names_the_one_model_description():
    m = preset.load("llama3-8b")
    assert m.arch.name == "llama3-8b"
    assert (m.arch.num_hidden_layers, m.shard_size, m.context_length) == (32, 5_000_000_000,
                                                                           8192)


def test_an_old_inline_preset_is_refused_with_the_fix(tmp_path):
    y = tmp_path / "old.yaml"
    y.write_text("name: old\nvocab_size: 1024\nhidden_size: 256\nintermediate_size: 768\n"
                 "num_layers: 2\nnum_heads: 4\nnum_kv_heads: 2\n")
    with pytest.raises(SpecError, match="give `model: <name or path>`"):
        preset.load(str(y))


def test_the_quantization_block_rule_is_an_inference_check(tmp_path):
    arch = tmp_path / "odd.yaml"
    arch.write_text("name: odd\nvocab_size: 1024\nhidden_size: 320\nintermediate_size: 768\n"
                    "num_hidden_layers: 2\nnum_attention_heads: 4\nnum_key_value_heads: 2\n")
    y = tmp_path / "odd-inference.yaml"
    y.write_text(f"name: odd\nmodel: {arch}\n")
    with pytest.raises(SpecError, match="hidden_size 320 must be a multiple of 256"):
        preset.load(str(y))


@pytest.mark.parametrize(("values", "message"), [
    ({"format": "gguf", "precisions": "fp8"}, "GGUF has no fp8 tensor type"),
    ({"methods": "mmapp"}, "did you mean 'mmap'"),
    ({"threads": 0}, "--threads 0"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, values, message):
    with pytest.raises(UsageError, match=message):
        infer_load.build(model="tiny", **values)
    assert not (tmp_path / "t").exists()


def test_the_run_module_imports_neither_click_nor_rich():
    code = ("import sys, iobench.kinds.infer_load.run, iobench.kinds.infer_load; "
            "bad = [m for m in ('click', 'rich') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
