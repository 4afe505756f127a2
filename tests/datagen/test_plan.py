"""Specs, presets, accelerators, record-size distribution, sizing, bounded memory and
content quality of generated files."""

from __future__ import annotations

import dataclasses
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from iobench import presets
from iobench.errors import SpecError
from iobench.kinds.datagen import plan as plan_mod
from iobench.kinds.datagen.writer import ShardJob, record_sizes
from iobench.workload import (
    compute_seconds,
    load_accelerators,
    load_workload,
)

PRESETS = ["cosmoflow", "llm-pretrain", "resnet50", "tiny", "unet3d"]


def test_presets_ship_and_load() -> None:
    assert set(PRESETS) <= set(presets.names("training"))
    specs = {n: load_workload(n) for n in PRESETS}
    u = specs["unet3d"]
    assert (u.format, u.record_size, u.record_size_stdev, u.batch_size) == (
        "npz", 146_600_628, 68_341_808, 7)
    assert specs["resnet50"].format == "tfrecord"
    assert specs["resnet50"].samples_per_file == 1251
    assert specs["cosmoflow"].au_threshold_pct == 70
    llm = specs["llm-pretrain"]
    assert (llm.format, llm.seq_len, llm.mean_record_bytes) == ("indexed", 8192, 32768)


def test_accelerators_table() -> None:
    t = load_accelerators()
    assert set(t.accelerators) == {"a100", "h100", "b200"}
    # each workload carries its own compute time per accelerator (a new workload is one file)
    assert compute_seconds("unet3d", "h100") == 0.323
    assert compute_seconds("unet3d", "A100") == 0.636
    assert compute_seconds("unet3d", "b200") == 0.162
    assert compute_seconds("resnet50", "h100") == 0.224
    assert compute_seconds("cosmoflow", "h100") == 0.0035
    assert load_workload("unet3d").compute_seconds_per_step == {
        "a100": 0.636, "h100": 0.323, "b200": 0.162}
    with pytest.raises(SpecError, match="did you mean 'h100'"):
        compute_seconds("unet3d", "h10")
    with pytest.raises(SpecError, match="cosmoflow: no compute time on b200"):
        compute_seconds("cosmoflow", "b200")
    for name in PRESETS:  # every preset has a figure for h100
        assert compute_seconds(name, "h100") > 0


def test_accelerators_yaml_describes_accelerators_only() -> None:
    import yaml

    from iobench.workload import accelerators_path

    raw = yaml.safe_load(accelerators_path().read_text())
    for a in raw["accelerators"].values():
        assert "compute_seconds_per_step" not in a
    assert "tiny" not in accelerators_path().read_text()  # no test fixture in the table


def test_record_sizes_normal_clipped_reproducible() -> None:
    u = dataclasses.replace(load_workload("unet3d"), samples_per_file=20000)
    a = record_sizes(u, 3)
    assert np.array_equal(a, record_sizes(u, 3))  # same seed and shard: same sizes
    assert not np.array_equal(a, record_sizes(u, 4))
    lo, hi = u.clip_bytes
    assert lo == 8_000_000
    assert hi == 146_600_628 + 3 * 68_341_808
    assert a.min() >= lo
    assert a.max() <= hi
    assert abs(a.mean() - 146.6e6) < 2e6
    assert abs(a.std() - 68.3e6) < 3e6
    fixed = load_workload("resnet50")
    assert set(record_sizes(fixed, 0).tolist()) == {114660}


def test_plan_bytes_and_sizing() -> None:
    tiny = load_workload("tiny")
    p = plan_mod.make_plan(tiny)
    assert p.exact
    assert p.payload_bytes == sum(int(record_sizes(tiny, s).sum()) for s in range(8))
    assert p.steps_per_epoch(1) == 16  # 64 samples / batch 4
    r = plan_mod.make_plan(dataclasses.replace(load_workload("resnet50"), files=10))
    assert r.payload_bytes == 10 * 1251 * 114660
    assert plan_mod.files_for_size(tiny, 8 * 64 * 1024 * 3 + 1) == 4
    with pytest.raises(SpecError):
        plan_mod.files_for_size(tiny, 0)


@pytest.mark.parametrize("fmt", ["npz", "tfrecord", "hdf5", "raw"])
def test_memory_bounded_for_a_big_record(tmp_path: Path, fmt: str) -> None:
    """A 48 MiB record is streamed through one 16 MiB buffer (two 8 MiB halves, one being
    written while the other is filled), never held whole."""
    spec = dataclasses.replace(load_workload("tiny"), name="big", format=fmt,
                               record_size=48 << 20, record_size_stdev=0,
                               samples_per_file=1, files=1)
    plan_mod._buf = None
    tracemalloc.start()
    try:
        plan_mod.generate_shard(ShardJob(spec, 0, tmp_path, "random"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size >= 48 << 20
    assert peak < 24 << 20, f"{fmt}: peak {peak / 2**20:.1f} MiB"
    # the writer thread ends with its file: none is left in a process that forks later
    assert not [t for t in threading.enumerate() if t.name.startswith("datagen-write")]


def test_content_incompressible_and_no_duplicate_blocks(tmp_path: Path, run) -> None:
    t = tmp_path / "t"
    assert run("tiny", "--target", str(t)).exit_code == 0
    data = b"".join(p.read_bytes() for p in sorted((t / "datagen" / "tiny").glob("*.raw")))
    assert len(zlib.compress(data, 6)) / len(data) >= 0.99
    blocks = np.frombuffer(data[: len(data) // 4096 * 4096], dtype=np.uint8).reshape(-1, 4096)
    assert len({b.tobytes() for b in blocks}) == blocks.shape[0]



def test_variable_size_shards_are_written_biggest_first() -> None:
    import importlib

    run_mod = importlib.import_module("iobench.kinds.datagen.run")
    spec = load_workload("unet3d")  # npz, 1 sample a file, stdev 68 MB
    shards = list(range(12))
    order = run_mod.largest_first(spec, shards)
    assert sorted(order) == shards
    sizes = {s: int(record_sizes(spec, s).sum()) for s in shards}
    assert [sizes[s] for s in order] == sorted(sizes.values(), reverse=True)
    fixed = load_workload("resnet50")  # every shard the same size: plan order kept
    assert run_mod.largest_first(fixed, shards) == shards
