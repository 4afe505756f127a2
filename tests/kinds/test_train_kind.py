"""The train kind as a library: run() without Click, its declared metrics, measured
page-cache residency, a workload that is one YAML file, v1 results."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from iobench import results, workload
from iobench.kinds import train
from iobench.kinds.base import RunOptions

PY = sys.executable


def datagen(target: Path, results_dir: Path, name: str = "tiny") -> None:
    """The data set, written by the real `iobench datagen` (datagen is its own kind)."""
    p = subprocess.run([PY, "-m", "iobench", "datagen", name, "--target", str(target),
                        "--results-dir", str(results_dir), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-kind")
    datagen(root / "t", root / "r")
    return root


def opts(root: Path) -> RunOptions:
    return RunOptions(target=root / "t", results_dir=root / "r")


def test_run_api_returns_a_result_matching_the_declarations(tiny):
    r = train.run(train.build(workload="tiny", epochs=2, cache="drop"), opts(tiny))
    assert r.status == "ok", r.reason
    assert train.METRICS.check(r) == []
    assert r.kind == "train"
    assert r.metrics["accelerators"] == 1
    assert r.metrics["samples"] == 2 * 64  # 8 files x 8 samples, two epochs
    assert r.metrics["compute_s"] == 0.01  # tiny.yaml's own h100 figure
    assert r.spec["options"]["compute_source"] == "the workload's compute_seconds_per_step"
    assert r.metrics["data_wait_p99_us"] >= r.metrics["data_wait_p50_us"] >= 0
    saved = results.load(r.run_dir)
    assert saved.to_dict() == r.to_dict()


def test_residency_is_measured_at_the_start_of_each_epoch(tiny):
    # dropped before every epoch: measured near 0 (the eviction took, no warning)
    r = train.run(train.build(workload="tiny", epochs=2, cache="drop"), opts(tiny))
    assert r.cache["resident_method"] in ("mincore", "cachestat")
    assert r.cache["resident_start_pct"] <= 1.0
    assert "resident at start" in r.cache["note"]
    epochs = [p for p in r.phases if p.name.startswith("epoch")]
    assert len(epochs) == 2
    assert all(p.metrics["resident_start_pct"] <= 1.0 for p in epochs)
    # allowed: the first epoch read everything, so the second starts fully cached
    r = train.run(train.build(workload="tiny", epochs=2, cache="allow"), opts(tiny))
    second = next(p for p in r.phases if p.name == "epoch 2")
    assert second.metrics["resident_start_pct"] == 100.0
    from rich.console import Console

    from iobench.kinds.train import render

    con = Console(width=140, record=True)
    for t in render.tables(r):
        con.print(t)
    text = con.export_text()
    assert "page cache at start (measured)" in text
    assert "cached at start" in text


def test_a_new_workload_is_one_yaml_file(tmp_path):
    """Nothing but this file: datagen writes its data set, train replays it by path, and
    its compute time per accelerator comes from the same file."""
    spec = tmp_path / "mynet.yaml"
    spec.write_text(textwrap.dedent("""\
        name: mynet
        format: npz
        record_size: 32KiB
        samples_per_file: 4
        files: 4
        batch_size: 2
        read_threads: 1
        compute_seconds_per_step:
          a100: 0.004
          h100: 0.002
    """))
    datagen_target = tmp_path / "t"
    p = subprocess.run([PY, "-m", "iobench", "datagen", str(spec), "--target",
                        str(datagen_target), "--results-dir", str(tmp_path / "r"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = train.run(train.build(workload=str(spec), accelerator="a100", cache="allow"),
                  RunOptions(target=datagen_target, results_dir=tmp_path / "r"))
    assert r.status == "ok", r.reason
    assert r.name == "mynet"
    assert r.metrics["compute_s"] == 0.004
    assert r.metrics["samples"] == 16
    assert train.METRICS.check(r) == []
    # the same through the command line, with an accelerator the file does not list
    p = subprocess.run([PY, "-m", "iobench", "train", str(spec), "--accelerator", "b200",
                        "--target", str(datagen_target), "--results-dir",
                        str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: mynet: no compute time on b200 (it has a100, h100); add "
        "compute_seconds_per_step: {b200: SECONDS} to the workload's YAML; or give "
        "--compute-time SECONDS"]


def test_the_package_exposes_the_kind_by_name():
    import iobench

    assert iobench.train is train
    assert iobench.train.run is train.run


def test_bad_values_are_one_line_usage_errors(tmp_path):
    from iobench.errors import SpecError, UsageError

    with pytest.raises(UsageError, match="--checkpoint-every needs the other"):
        train.build(workload="tiny", checkpoint_every=2)
    with pytest.raises(UsageError, match="--block-size 1000: --cache direct"):
        train.build(workload="tiny", cache="direct", block_size=1000)
    with pytest.raises(SpecError, match="unknown training preset"):
        train.build(workload="nosuch")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nformat: raw\nrecord_size: 1KiB\n"
                   "compute_seconds_per_step: {H100: 0.1}\n")
    with pytest.raises(SpecError, match="lower case"):
        workload.load_workload(str(bad))


def test_run_imports_neither_click_nor_rich():
    """run.py (and what it imports) leaves rich out; click comes in only through
    iobench.errors (its exceptions are Click's, for the command line's one-line errors)."""
    code = textwrap.dedent("""\
        import sys, builtins
        importers = set()
        real = builtins.__import__
        def spy(name, globals=None, *a, **k):
            if name.split('.')[0] == 'click' and 'click' not in sys.modules:
                importers.add((globals or {}).get('__name__'))
            return real(name, globals, *a, **k)
        builtins.__import__ = spy
        import iobench.kinds.train.run
        assert 'rich' not in sys.modules, 'rich imported'
        assert importers <= {'iobench.errors'}, importers
    """)
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert p.returncode == 0, p.stderr


def test_a_schema_1_result_loads_with_its_metrics_renamed(tiny):
    r = train.run(train.build(workload="tiny", checkpoint_every=4, checkpoint_size="256KiB",
                              cache="allow"), opts(tiny))
    assert r.status == "ok", r.reason
    assert train.METRICS.check(r) == []
    d = r.to_dict()
    d["schema_version"] = 1
    m = d["metrics"]
    m["data_wait_p99_ms"] = m.pop("data_wait_p99_us") / 1e3
    m["checkpoint_stall_s_max"] = m.pop("checkpoint_stall_max_s")
    m["au_pct_per_epoch"] = m.pop("au_per_epoch_pct")
    ck = next(p for p in d["phases"] if p["name"] == "checkpoint")
    ck["metrics"]["stall_s_mean"] = ck["metrics"].pop("stall_mean_s")
    path = tiny / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert up.schema_version == 2
    assert up.metrics["data_wait_p99_us"] == pytest.approx(r.metrics["data_wait_p99_us"])
    assert up.metrics["checkpoint_stall_max_s"] == r.metrics["checkpoint_stall_max_s"]
    assert up.metrics["au_per_epoch_pct"] == list(r.metrics["au_per_epoch_pct"])
    for old in ("data_wait_p99_ms", "checkpoint_stall_s_max", "au_pct_per_epoch"):
        assert old not in up.metrics
    upc = next(p for p in up.phases if p.name == "checkpoint")
    assert upc.metrics["stall_mean_s"] == ck["metrics"]["stall_s_mean"]
    assert train.METRICS.check(up) == []
