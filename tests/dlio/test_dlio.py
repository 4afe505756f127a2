"""DLIO / MLPerf Storage config import: DLIO-shaped YAML written here is mapped key by key,
generated with `datagen --dlio-config`, trained with `train --dlio-config` and checkpointed
with `checkpoint --dlio-config` on tiny sizes; what cannot be honoured is one warning, bad
values are one-line errors (exit 2) naming the key path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from iobench import dlio
from iobench.cli import cli
from iobench.errors import SpecError

# unet3d_h100.yaml's shape (MLPerf Storage), shrunk to KiB: npz, one sample per file,
# normal sizes, epoch-based checkpoints of model_size bytes
UNET3D = """\
model:
  name: unet3d-mini
  type: cnn
  model_size: 65536
framework: pytorch
workflow:
  generate_data: False
  train: True
  checkpoint: True
dataset:
  data_folder: data/unet3d/
  format: npz
  num_files_train: 6
  num_samples_per_file: 1
  record_length_bytes: 40960
  record_length_bytes_stdev: 8192
  record_length_bytes_resize: 2097152
reader:
  data_loader: pytorch
  batch_size: 2
  read_threads: 2
  file_shuffle: seed
  sample_shuffle: seed
train:
  epochs: 2
  computation_time: 0.003
checkpoint:
  checkpoint_folder: checkpoints/unet3d
  checkpoint_after_epoch: 1
  epochs_between_checkpoints: 1
metric:
  au: 0.70
"""

# resnet50_h100.yaml's shape: TFRecord shards of many samples, a fractional record
# length (DLIO's own config says 114660.07), evaluation keys that are inactive
RESNET = """\
model:
  name: resnet-mini
  type: cnn
framework: tensorflow
workflow:
  generate_data: False
  train: True
dataset:
  num_files_train: 3
  num_files_eval: 2
  num_samples_per_file: 8
  record_length_bytes: 3000.4
  data_folder: data/resnet50
  format: tfrecord
train:
  computation_time: 0.001
  epochs: 1
reader:
  data_loader: tensorflow
  read_threads: 3
  batch_size: 4
  batch_size_eval: 128
  sample_shuffle: seed
metric:
  au: 0.5
"""

# a tiny transformer in llama3_8b.yaml's checkpoint-only shape
LLAMA = """\
model:
  name: llama-mini
  type: transformer
  num_layers: 4
  model_datatype: fp16
  optimizer_datatype: fp32
  parallelism: {pipeline: 2, tensor: 1, zero_stage: 1, data: 1}
  transformer: {vocab_size: 512, hidden_size: 128, ffn_hidden_size: 256,
                num_attention_heads: 4, num_kv_heads: 2}
framework: pytorch
workflow: {generate_data: False, train: False, checkpoint: True}
checkpoint:
  checkpoint_folder: checkpoints/llama
  time_between_checkpoints: 5
  num_checkpoints_write: 2
  num_checkpoints_read: 2
  fsync: True
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Nothing a test runs may leave results/ in the checkout."""
    monkeypatch.chdir(tmp_path)


def write(tmp: Path, name: str, text: str, **changes: object) -> Path:
    """The YAML `text` with `changes` ("section.key": value, None deletes) applied."""
    data = yaml.safe_load(text)
    for path, value in changes.items():
        sec, key = path.split(".", 1)
        if value is None:
            data[sec].pop(key)
        else:
            data.setdefault(sec, {})[key] = value
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def invoke(*args: str, code: int = 0):
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == code, (res.output, res.stderr)
    return res


def run_json(*args: str) -> dict:
    return json.loads(invoke(*args, "--json").stdout)


@pytest.fixture(scope="module")
def unet3d(tmp_path_factory):
    """unet3d-like config generated once: (config, target, results, datagen result)."""
    root = tmp_path_factory.mktemp("dlio")
    cfg = write(root, "unet3d_mini", UNET3D)
    target = root / "t"
    d = run_json("datagen", "--dlio-config", str(cfg), "--target", str(target),
                 "--results-dir", str(root / "res"), "--jobs", "2")
    return cfg, target, root / "res", d


def test_datagen_writes_the_configs_data_set_and_records_the_mapping(unet3d):
    cfg, target, _, d = unet3d
    s = d["spec"]
    assert d["name"] == "unet3d-mini"
    assert (s["format"], s["files"], s["samples_per_file"]) == ("npz", 6, 1)
    assert (s["record_size"], s["record_size_stdev"]) == (40960, 8192)
    assert d["metrics"]["files_total"] == 6
    # DLIO's layout by default under --dlio-config: train/img_I_of_N.npz
    assert len(list((target / "datagen" / "unet3d-mini" / "train").glob("img_?_of_6.npz"))) == 6
    rec = s["dlio"]
    assert rec["config"] == str(cfg.resolve())
    assert rec["mapped"]["dataset.num_files_train"] == {"iobench": "files", "value": 6}
    assert rec["mapped"]["dataset.record_length_bytes"]["value"] == 40960
    # datagen lists only dataset keys it cannot honour; training keys are train's
    assert d["warnings"] == [
        "DLIO config unet3d_mini.yaml: 2 keys not honoured: dataset.data_folder = "
        "'data/unet3d/' (data goes under --target/datagen/NAME; train replays a DLIO "
        "folder with --data-folder); "
        "dataset.record_length_bytes_resize = 2097152 (no resize step: iobench reads "
        "the bytes only)"]
    assert "train.computation_time" in rec["other_commands"]


def test_train_runs_the_equivalent_workload_on_the_generated_data(unet3d):
    cfg, target, res, _ = unet3d
    d = run_json("train", "--dlio-config", str(cfg), "--target", str(target),
                 "--results-dir", str(res), "--cache", "allow")
    s, o = d["spec"], d["spec"]["options"]
    assert (s["batch_size"], s["read_threads"], s["epochs"]) == (2, 2, 2)
    assert s["shuffle"] == "sample"
    assert s["au_threshold_pct"] == 70.0
    assert (o["compute_s"], o["compute_source"]) == (0.003, "DLIO train.computation_time")
    assert (o["epochs"], o["read_threads"]) == (2, 2)
    # every epoch (after_epoch 1, between 1) = 6 samples / batch 2 = 3 steps
    assert (o["checkpoint_every"], o["checkpoint_size"]) == (3, 65536)
    assert d["metrics"]["checkpoints"] == 2
    assert d["metrics"]["au_threshold_pct"] == 70.0
    assert d["metrics"]["samples"] == 12  # 6 samples x 2 epochs
    assert s["dataset"]["files"] == 6
    assert s["dlio"]["checkpoint_every_epochs"] == 1
    assert len(d["warnings"]) >= 1
    w = d["warnings"][0]
    assert w.startswith("DLIO config unet3d_mini.yaml: 3 keys not honoured: ")
    assert "checkpoint.checkpoint_folder" in w
    assert "record_length_bytes_resize" in w


def test_au_verdict_is_mlperfs_with_the_stall_inclusive_au_beside_it(unet3d):
    """DLIO ends each AU block before the checkpoint: the verdict excludes the stalls."""
    cfg, target, res, _ = unet3d
    d = run_json("train", "--dlio-config", str(cfg), "--target", str(target),
                 "--results-dir", str(res), "--cache", "allow", "--epochs", "1")
    mt = d["metrics"]
    assert mt["checkpoints"] == 1
    assert mt["au_pct"] == mt["au_without_checkpoint_stalls_pct"]
    assert mt["au_pass"] == (mt["au_pct"] >= 70.0)
    assert "au_with_checkpoint_stalls_pct" in mt
    assert mt["au_with_checkpoint_stalls_pct"] <= mt["au_pct"] + 1e-9
    assert mt["au_basis"].startswith("MLPerf Storage (checkpoint stalls excluded")
    from rich.console import Console

    from iobench.kinds.train.render import summary_table
    from iobench.results import Result

    con = Console(width=200, record=True)
    con.print(summary_table(Result.from_dict(d)))
    text = con.export_text()
    assert "AU, MLPerf (checkpoint stalls excluded)" in text
    assert "AU with the checkpoint stalls" in text


def test_dlio_2_checkpoint_keys_size_the_checkpoints_written(unet3d, tmp_path):
    """checkpoint.model_size / optimization_groups / num_layers / layer_parameters (DLIO
    2.0.0) with type all_ranks: every accelerator writes model + optimizer + layers."""
    _, target, res, _ = unet3d
    cfg = write(tmp_path, "unet3d_mini", UNET3D, **{
        "model.model_size": None, "checkpoint.model_size": 1000,
        "checkpoint.optimization_groups": [100, 50, 0], "checkpoint.num_layers": 2,
        "checkpoint.layer_parameters": [10, 20], "checkpoint.type": "all_ranks"})
    d = run_json("train", "--dlio-config", str(cfg), "--target", str(target),
                 "--results-dir", str(res), "--cache", "allow", "--epochs", "1",
                 "--accelerators", "2")
    per_rank = 1000 + 3 * 150 + 2 * (10 + 20)
    assert d["spec"]["options"]["checkpoint_size"] == 2 * per_rank
    ck = next(p for p in d["phases"] if p["name"] == "checkpoint")
    assert ck["bytes"] == 2 * per_rank
    sz = d["spec"]["dlio"]["checkpoint_sizing"]
    assert sz["rank0_files"] == {"model": 1000, "optimizer": 450, "layer-0": 30,
                                 "layer-1": 30}
    assert "not a DLIO key" not in " ".join(d["warnings"])


def test_no_empty_checkpoint_phase_when_none_fired(unet3d):
    cfg, target, res, _ = unet3d
    d = run_json("train", "--dlio-config", str(cfg), "--target", str(target),
                 "--results-dir", str(res), "--cache", "allow", "--epochs", "1",
                 "--checkpoint-every", "100")
    assert "checkpoint" not in [p["name"] for p in d["phases"]]
    assert "checkpoints" not in d["metrics"]


def test_command_line_options_win_over_the_config(unet3d):
    cfg, target, res, _ = unet3d
    d = run_json("train", "--dlio-config", str(cfg), "--target", str(target),
                 "--results-dir", str(res), "--cache", "allow", "--compute-time", "0",
                 "--epochs", "1", "--checkpoint-every", "2")
    o = d["spec"]["options"]
    assert (o["compute_s"], o["compute_source"]) == (0.0, "--compute-time")
    assert o["epochs"] == 1
    assert o["checkpoint_every"] == 2
    assert o["checkpoint_size"] == 65536  # still the config's
    assert d["metrics"]["checkpoints"] == 1  # 3 steps, every 2


def test_resnet50_like_tfrecord_end_to_end(tmp_path):
    cfg = write(tmp_path, "resnet_mini", RESNET)
    t, res = str(tmp_path / "t"), str(tmp_path / "res")
    g = run_json("datagen", "--dlio-config", str(cfg), "--target", t, "--results-dir", res)
    assert (g["spec"]["format"], g["spec"]["record_size"]) == ("tfrecord", 3000)
    train = tmp_path / "t" / "datagen" / "resnet-mini" / "train"
    assert len(list(train.glob("img_?_of_3.tfrecord"))) == 3
    # datagen: eval files are not generated -> listed
    assert "dataset.num_files_eval = 2" in g["warnings"][0]
    d = run_json("train", "--dlio-config", str(cfg), "--target", t, "--results-dir", res,
                 "--cache", "allow")
    s = d["spec"]
    assert (s["files"], s["samples_per_file"], s["batch_size"]) == (3, 8, 4)
    assert s["read_threads"] == 3
    assert s["options"]["compute_s"] == 0.001
    assert d["metrics"]["samples"] == 24
    assert d["metrics"]["au_threshold_pct"] == 50.0
    # evaluation is off: its keys are inactive, as DLIO ignores them, not listed
    assert set(s["dlio"]["inactive"]) == {"reader.batch_size_eval", "dataset.num_files_eval"}
    assert "batch_size_eval" not in " ".join(d["warnings"])


def test_unsupported_keys_are_one_warning_line_on_stderr(tmp_path):
    cfg = write(tmp_path, "odd", RESNET, **{
        "reader.computation_threads": 8, "reader.shuffle_size": 2, "dataset.record_len": 5,
        "train.computation_time_stdev": 0.01, "dataset.compression": "gzip"})
    imp = dlio.load(cfg, "train")
    w = imp.warning()
    assert w is not None
    assert "\n" not in w
    assert w.startswith("DLIO config odd.yaml: 6 keys not honoured: ")
    for part in ("train.computation_time_stdev = 0.01 (iobench sleeps the fixed mean",
                 "reader.computation_threads = 8 (preprocessing is not emulated)",
                 "reader.shuffle_size = 2", "dataset.compression = 'gzip'",
                 "dataset.record_len (not a DLIO key",
                 "dataset.data_folder"):
        assert part in w, part
    res = CliRunner().invoke(cli, ["datagen", "--dlio-config", str(cfg), "--what-if",
                                   "--target", str(tmp_path / "t"), "--json",
                                   "--results-dir", str(tmp_path / "res")])
    assert res.exit_code == 0, res.output
    lines = [x for x in res.stderr.splitlines() if x.startswith("warning: DLIO config")]
    assert len(lines) == 1
    assert "dataset.compression" in lines[0]
    assert "reader.shuffle_size" not in lines[0]  # train's key, not datagen's


@pytest.mark.parametrize(("change", "message"), [
    ({"dataset.num_files_train": "many"},
     "error: bad.yaml: dataset.num_files_train: expected an integer, got str 'many'"),
    ({"reader.batch_size": 2.5},
     "error: bad.yaml: reader.batch_size: expected an integer, got float 2.5"),
    ({"dataset.format": "jpeg"}, "error: bad.yaml: dataset.format: 'jpeg' has no iobench"),
    ({"dataset.format": "tfrecords"},
     "error: bad.yaml: dataset.format: 'tfrecords' is not a DLIO value (did you mean "
     "'tfrecord'?)"),
    ({"metric.au": 90}, "error: bad.yaml: metric.au: 90 must be a fraction in (0, 1]"),
    ({"train.computation_time": {"mean": "x"}},
     "error: bad.yaml: train.computation_time.mean: expected a number >= 0, got 'x'"),
    ({"train.computation_time": "fast"},
     "error: bad.yaml: train.computation_time: expected seconds per step"),
    ({"reader.sample_shuffle": "yes"},
     "error: bad.yaml: reader.sample_shuffle: 'yes' is not a DLIO value"),
    ({"dataset.record_length_bytes": -5},
     "error: bad.yaml: dataset.record_length_bytes: -5 must be > 0 bytes"),
    ({"dataset.record_length": 4096},
     "error: bad.yaml: dataset.record_length: given together with "
     "dataset.record_length_bytes; keep one"),
])
def test_bad_values_are_one_line_errors_naming_the_key_path(tmp_path, change, message):
    cfg = write(tmp_path, "bad", RESNET, **change)
    # datagen reads the dataset, reader, train.epochs/seed and metric keys; the rest are
    # train's (each command checks the keys it maps)
    both = not any(k.startswith("train.computation") for k in change)
    for cmd in ("datagen", "train") if both else ("train",):
        res = CliRunner().invoke(cli, [cmd, "--dlio-config", str(cfg), "--target",
                                       str(tmp_path / "t"), "--results-dir",
                                       str(tmp_path / "res")])
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith(message), res.stderr
        assert res.stderr.count("\n") == 1


def test_bad_inputs_around_the_option(tmp_path):
    res = invoke("train", "--target", str(tmp_path), code=2)
    assert "missing WORKLOAD: give a preset name or YAML file, or --dlio-config" in res.stderr
    res = invoke("datagen", "--dlio-config", str(tmp_path / "nope.yaml"), "--target",
                 str(tmp_path), code=2)
    assert "nope.yaml" in res.stderr
    cfg = write(tmp_path, "gen", RESNET, **{"workflow.train": False})
    res = invoke("train", "--dlio-config", str(cfg), "--target", str(tmp_path), code=2)
    assert "workflow.train is false" in res.stderr
    # the unet3d model is sized by model_size: iobench checkpoint refuses in one line
    cfg = write(tmp_path, "u", UNET3D)
    res = invoke("checkpoint", "--dlio-config", str(cfg), "--target", str(tmp_path / "c"),
                 code=2)
    assert "the model is sized by model.model_size" in res.stderr
    assert res.stderr.count("\n") == 1
    cfg = write(tmp_path, "s3", RESNET, **{"storage.storage_type": "s3"})
    res = invoke("datagen", "--dlio-config", str(cfg), "--target", str(tmp_path), code=2)
    assert "storage.storage_type: s3: iobench measures a file system" in res.stderr


def test_workload_argument_names_the_imported_workload(tmp_path):
    cfg = write(tmp_path, "resnet_mini", RESNET)
    imp = dlio.load(cfg, "datagen", "my-resnet")
    assert imp.name == "my-resnet"
    assert imp.spec is not None
    assert imp.spec.name == "my-resnet"
    with pytest.raises(SpecError, match="WORKLOAD 'a/b' cannot name"):
        dlio.load(cfg, "datagen", "a/b")


def test_checkpoint_runs_a_transformer_config(tmp_path):
    cfg = write(tmp_path, "llama_mini", LLAMA)
    d = run_json("checkpoint", "--dlio-config", str(cfg), "--target", str(tmp_path / "t"),
                 "--results-dir", str(tmp_path / "res"), "--cache", "allow")
    m, plan = d["spec"]["model"], d["spec"]["plan"]
    assert m["config"]["num_hidden_layers"] == 4
    assert m["config"]["hidden_size"] == 128
    assert m["parallelism"] == {"tp": 1, "pp": 2, "dp": 1, "zero": 1}
    assert (m["weight_bytes_per_param"], m["optimizer_bytes_per_param"]) == (2, 12)
    assert plan["count"] == 2
    assert plan["ranks"] == 2
    assert d["spec"]["options"]["read"] is True
    assert [p["name"] for p in d["phases"]].count("read-2") == 1
    w = d["warnings"][0]
    assert "checkpoint.time_between_checkpoints = 5" in w
    assert "checkpoint.checkpoint_folder" in w


def test_epoch_checkpoint_placement_follows_dlio():
    def period(after: int, between: int, epochs: int) -> tuple[int, list[str]]:
        k = dlio._Keys({"checkpoint": {"checkpoint_after_epoch": after,
                                       "epochs_between_checkpoints": between}}, "x.yaml")
        from iobench.workload import TrainingSpec

        spec = TrainingSpec(name="x", format="npz", record_size=1, epochs=epochs)
        opts: dict = {}
        return dlio._train_checkpoints(k, opts, spec), k.notes

    assert period(5, 2, 5) == (5, [])  # MLPerf unet3d: one checkpoint, after epoch 5
    assert period(1, 1, 3) == (1, [])
    assert period(2, 2, 6) == (2, [])
    p, notes = period(2, 3, 8)  # DLIO: 2, 5, 8 -> no single period; every 3 from the start
    assert p == 3
    assert "checkpoint_after_epoch = 2" in notes[0]
    p, notes = period(6, 1, 5)  # after the last epoch: none, as in DLIO
    assert p == 0
    assert "no checkpoint is written" in notes[0]


@pytest.mark.parametrize(("value", "mean", "noted"), [
    (0.5, 0.5, False),
    ({"mean": 0.2}, 0.2, False),
    ({"mean": 0.2, "stdev": 0.05}, 0.2, True),
    ({"type": "uniform", "min": 0.1, "max": 0.3}, 0.2, True),
    ({"type": "gamma", "shape": 2.0, "scale": 0.1}, 0.2, True),
])
def test_computation_time_distributions_map_to_their_mean(value, mean, noted):
    k = dlio._Keys({"train": {"computation_time": value}}, "x.yaml")
    assert dlio._compute_time(k) == pytest.approx(mean)
    assert bool(k.notes) == noted


def test_record_dims_win_over_record_length_and_indexed_binary_maps_to_tokens(tmp_path):
    cfg = write(tmp_path, "dims", RESNET, **{"dataset.record_dims": [16, 16, 3],
                                             "dataset.record_element_type": "float32"})
    imp = dlio.load(cfg, "datagen")
    assert imp.spec is not None
    assert imp.spec.record_size == 16 * 16 * 3 * 4
    assert "dataset.record_length_bytes (record_dims takes precedence" in imp.warning()
    cfg = write(tmp_path, "tok", RESNET, **{"dataset.format": "mmap_indexed_binary",
                                            "dataset.record_length_bytes": 4096})
    imp = dlio.load(cfg, "datagen")
    assert imp.spec is not None
    assert (imp.spec.format, imp.spec.seq_len, imp.spec.token_dtype) == ("indexed", 2048,
                                                                          "uint16")


def test_a_composed_hydra_workload_mapping_is_unwrapped(tmp_path):
    p = tmp_path / "composed.yaml"
    p.write_text(yaml.safe_dump({"workload": yaml.safe_load(RESNET)}))
    imp = dlio.load(p, "train")
    assert imp.spec is not None
    assert imp.spec.files == 3


def test_a_suite_step_runs_datagen_and_train_from_a_dlio_config(tmp_path):
    write(tmp_path, "resnet_mini", RESNET)
    suite = tmp_path / "mini.yaml"
    suite.write_text(
        "name: mini\nsteps:\n"
        "  - command: datagen\n    params:\n      dlio-config: ${suite_dir}/resnet_mini.yaml\n"
        "  - command: train\n    params:\n      dlio-config: ${suite_dir}/resnet_mini.yaml\n"
        "      cache: allow\n    criteria: [samples_per_s > 0]\n")
    res = CliRunner().invoke(cli, ["run", str(suite), "--target", str(tmp_path / "t"),
                                   "--results-dir", str(tmp_path / "res"), "--json"])
    assert res.exit_code == 0, (res.output, res.stderr)
    steps = json.loads(res.stdout)["metrics"]["steps"]
    assert [(s["id"], s["state"]) for s in steps] == [("datagen", "ok"), ("train", "ok")]
    train = json.loads(Path(steps[1]["result_path"]).read_text())
    assert train["spec"]["dlio"]["config"] == str(tmp_path / "resnet_mini.yaml")
    assert train["metrics"]["samples"] == 24
