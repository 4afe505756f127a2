"""DLIO 2.0.0 / MLPerf Storage configs mean what they mean in DLIO: checkpoint sizing from
DLIO's formulas for every shipped config, planning in O(files) memory, refusing a config
with no data set, and iobench's presets against the configs' numbers.

The configs' values are copies (tests/data/dlio/*.json, each naming its source); the
expected checkpoint bytes are computed here from DLIO 2.0.0's checkpointing code
(dlio_benchmark/checkpointing/base_checkpointing.py: __init__ builds model_state
{"a": tensor(model_size)}, optimization_state {"i": {"a", "b"}} per positive group plus
"combined" of their sum, layer_state one tensor per positive layer parameter; checkpoint()
saves model and optimizer on every writing rank and the layer state num_layers (+ tp when
tp > 1) times on ranks divisible by pipeline_parallelism; pytorch_checkpointing.get_tensor:
int8, one byte an element; tf_checkpointing.get_tensor: int32 of int(size / 4) elements).
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from iobench import dlio
from iobench.cli import cli
from iobench.errors import SpecError
from iobench.kinds.datagen.plan import make_plan
from iobench.workload import compute_seconds, load_workload

DATA = Path(__file__).parent.parent / "data" / "dlio"
DLIO = json.loads((DATA / "dlio_2.0.0_workloads.json").read_text())
MLPERF = json.loads((DATA / "mlperf_storage_workloads.json").read_text())


def dlio_bytes(cfg: dict, ranks: int) -> int:
    """One checkpoint's bytes as DLIO 2.0.0 writes it with `ranks` ranks (see above)."""
    d = DLIO["defaults"]
    ck = cfg.get("checkpoint") or {}
    fw = cfg.get("framework", d["framework"])

    def tensor(n: int) -> int:
        return n if fw == "pytorch" else int(n / 4) * 4

    model = ck.get("model_size", d["model_size"])
    groups = [g for g in ck.get("optimization_groups", d["optimization_groups"]) if g > 0]
    layers = ck.get("num_layers", d["num_layers"])
    params = [p for p in ck.get("layer_parameters", d["layer_parameters"]) if p > 0]
    tp = ck.get("tensor_parallelism", d["tensor_parallelism"])
    pp = ck.get("pipeline_parallelism", d["pipeline_parallelism"])
    writers = range(ranks) if ck.get("type", d["checkpoint_type"]) == "all_ranks" else [0]
    total = 0
    for rank in writers:
        total += tensor(model) if model > 0 else 0
        if groups:
            total += sum(2 * tensor(g) for g in groups) + tensor(sum(groups))
        if rank % pp == 0 and params and layers > 0:
            total += (layers + (tp if tp > 1 else 0)) * sum(tensor(p) for p in params)
    return total


def write_cfg(tmp: Path, name: str, cfg: dict) -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


CHECKPOINTING = [n for n, c in DLIO["configs"].items()
                 if (c.get("workflow") or {}).get("checkpoint")]


def test_the_copied_configs_are_all_fourteen():
    assert len(DLIO["configs"]) == 14
    assert sorted(CHECKPOINTING) == ["bert_v100.yaml", "megatron_deepspeed.yaml",
                                     "unet3d_a100.yaml", "unet3d_h100.yaml",
                                     "unet3d_v100.yaml"]


@pytest.mark.parametrize("name", CHECKPOINTING)
def test_checkpoint_bytes_follow_dlio_2_0_0_for_every_shipped_config(tmp_path, name):
    cfg = DLIO["configs"][name]
    imp = dlio.load(write_cfg(tmp_path, name, cfg), "train")
    assert imp.options["checkpoint_size"] == dlio_bytes(cfg, 1)
    assert imp.checkpoint_sizing is not None
    for ranks in (1, 4, 8):
        assert imp.checkpoint_sizing.total_bytes(ranks) == dlio_bytes(cfg, ranks)
    assert "checkpoint.optimization_groups" not in " ".join(imp.not_honoured)
    assert "not a DLIO key" not in " ".join(imp.not_honoured)


def test_the_issue_figures():
    """megatron_deepspeed: 30,102 + 3 x sum(groups) + 44 x sum(layer params); unet3d: its
    model_size plus DLIO's default layer file (num_layers 1, [17371, 24740228])."""
    meg = dlio_bytes(DLIO["configs"]["megatron_deepspeed.yaml"], 1)
    assert meg == 12_257_642_902
    unet = dlio_bytes(DLIO["configs"]["unet3d_h100.yaml"], 1)
    assert unet == 499_153_191 + 24_757_599
    s = dlio.CheckpointSizing(model_size=0, framework="pytorch")
    assert s.files(0) == {"layer-0": 24_757_599}


def test_megatron_all_ranks_writes_on_every_accelerator(tmp_path):
    cfg = DLIO["configs"]["megatron_deepspeed.yaml"]
    imp = dlio.load(write_cfg(tmp_path, "m.yaml", cfg), "train")
    s = imp.checkpoint_sizing
    assert s is not None
    assert s.all_ranks
    one = s.total_bytes(1)
    assert s.total_bytes(3) == 3 * one  # pipeline_parallelism 1: every rank has the layers
    pp = dlio.CheckpointSizing(**{**s.__dict__, "pipeline_parallelism": 4})
    layers = 44 * (129761280 + 20971520)
    assert pp.total_bytes(8) == 8 * (one - layers) + 2 * layers  # ranks 0 and 4


def test_tensor_parallelism_adds_layer_files():
    s = dlio.CheckpointSizing(model_size=0, num_layers=4, layer_parameters=(10,),
                              tensor_parallelism=2, framework="pytorch")
    assert sorted(s.files(0)) == [f"layer-{i}" for i in range(6)]


def test_dlio_refuses_layers_not_a_multiple_of_pipeline(tmp_path):
    cfg = dict(DLIO["configs"]["megatron_deepspeed.yaml"])
    cfg["checkpoint"] = {**cfg["checkpoint"], "pipeline_parallelism": 5}
    with pytest.raises(SpecError, match="checkpoint.num_layers: 44 is not a multiple of "
                                        "checkpoint.pipeline_parallelism 5"):
        dlio.load(write_cfg(tmp_path, "m.yaml", cfg), "train")


def test_a_bad_group_list_is_one_line(tmp_path):
    cfg = dict(DLIO["configs"]["megatron_deepspeed.yaml"])
    cfg["checkpoint"] = {**cfg["checkpoint"], "optimization_groups": [1, "x"]}
    with pytest.raises(SpecError, match="checkpoint.optimization_groups: expected a list"):
        dlio.load(write_cfg(tmp_path, "m.yaml", cfg), "train")


def test_every_shipped_config_imports_for_datagen_and_train(tmp_path):
    for name, cfg in {**DLIO["configs"], **MLPERF["configs"]}.items():
        p = write_cfg(tmp_path, name, cfg)
        wf = cfg.get("workflow") or {}
        if "dataset" in cfg:
            assert dlio.load(p, "datagen").spec is not None, name
        else:
            with pytest.raises(SpecError, match="no dataset section"):
                dlio.load(p, "datagen")
        if wf.get("train"):
            assert dlio.load(p, "train").spec is not None, name


def test_datagen_refuses_a_config_without_a_data_set(tmp_path):
    p = write_cfg(tmp_path, "llama3_8b.yaml", MLPERF["configs"]["llama3_8b.yaml"])
    res = CliRunner().invoke(cli, ["datagen", "--dlio-config", str(p), "--target",
                                   str(tmp_path / "t"), "--what-if"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: llama3_8b.yaml: no dataset "
                                                   "section")
    assert "iobench checkpoint --dlio-config llama3_8b.yaml" in lines[0]
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("name", ["dlrm.yaml", "megatron_deepspeed.yaml"])
def test_planning_is_o_files_in_memory(tmp_path, name):
    """dlrm: 4.2e9 samples in one file (one int64 each would be 31 GiB)."""
    imp = dlio.load(write_cfg(tmp_path, name, DLIO["configs"][name]), "datagen")
    assert imp.spec is not None
    tracemalloc.start()
    try:
        plan = make_plan(imp.spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    ds = DLIO["configs"][name]["dataset"]
    assert plan.samples == ds["num_files_train"] * ds["num_samples_per_file"]
    assert plan.payload_bytes == plan.samples * ds["record_length"]


# --- presets against the configs ---------------------------------------------------------
def _rec(ds: dict, key: str) -> float:
    """DLIO 2.0.0 says record_length(_stdev), MLPerf record_length_bytes(_stdev)."""
    return ds.get(key.replace("record_length", "record_length_bytes"), ds.get(key, 0))


PRESETS = {  # preset -> (DLIO 2.0.0 config, MLPerf config) for the h100 numbers
    "unet3d": ("unet3d_h100.yaml", "unet3d_h100.yaml"),
    "resnet50": ("resnet50_h100.yaml", "resnet50_h100.yaml"),
    "cosmoflow": ("cosmoflow_h100.yaml", "cosmoflow_h100.yaml"),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_carry_the_configs_numbers(preset):
    spec = load_workload(preset)
    for cfg in (DLIO["configs"][PRESETS[preset][0]], MLPERF["configs"][PRESETS[preset][1]]):
        ds, rd, tr = cfg["dataset"], cfg["reader"], cfg["train"]
        assert spec.record_size == round(_rec(ds, "record_length"))
        assert spec.record_size_stdev == _rec(ds, "record_length_stdev")
        assert spec.files == ds["num_files_train"]
        assert spec.samples_per_file == ds["num_samples_per_file"]
        assert spec.batch_size == rd["batch_size"]
        assert spec.read_threads == rd["read_threads"]
        assert spec.epochs == tr["epochs"]
        shuffled = rd.get("sample_shuffle", "off") != "off"
        assert spec.shuffle == ("sample" if shuffled else "none")
    assert spec.au_threshold_pct == round(MLPERF["configs"][PRESETS[preset][1]]["metric"]
                                          ["au"] * 100)
    assert spec.format == {"npz": "npz", "tfrecord": "tfrecord"}[cfg["dataset"]["format"]]


@pytest.mark.parametrize(("preset", "accel"), [
    ("unet3d", "a100"), ("unet3d", "h100"), ("resnet50", "a100"), ("resnet50", "h100"),
    ("cosmoflow", "a100"), ("cosmoflow", "h100")])
def test_accelerator_compute_times_are_the_configs(preset, accel):
    dl = DLIO["configs"][f"{preset}_{accel}.yaml"]["train"]["computation_time"]
    mp = MLPERF["configs"][f"{preset}_{accel}.yaml"]["train"]["computation_time"]
    assert dl == mp
    assert compute_seconds(preset, accel) == dl
