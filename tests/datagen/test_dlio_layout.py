"""Data sets interchange with DLIO 2.0.0 both ways.

iobench -> DLIO: `datagen --layout dlio` files are read here with DLIO 2.0.0's own read
calls, replicated line for line with numpy/h5py (dlio_benchmark itself needs TensorFlow,
PyTorch and DALI to import, too heavy for this suite):
- file discovery, main.py initialize (2.0.0 lines 176-196): os.listdir(DATA/train), keep
  the names ending in the format, sorted;
- npz, reader/npz_reader.py:38 np.load(f, allow_pickle=True)['x'] and :47 [..., i];
- hdf5, reader/hdf5_reader.py:38 h5py.File(f, 'r') and :47 ['records'][i];
- indexed_binary, reader/indexed_binary_reader.py:47-62 read_longs (np.empty(n, int64) +
  readinto) of F.off.idx and F.sz.idx, :94-96 seek(offset) + readinto(size bytes);
- tfrecord, reader/tf_reader.py:59-70 parses an Example with FixedLenFeature 'image'
  (bytes) and 'size' (int64): checked with iobench's independent TFRecord parser.

DLIO -> iobench: folders written the way DLIO 2.0.0's generators write them
(data_generator/npz_generator.py np.savez(x=(d1, d2, n) uint8, y=labels),
hdf5_generator.py records (n, d1, d2) + labels, indexed_binary_generator.py struct 'Q'
offsets and sizes) are replayed by `train --dlio-config --data-folder`.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from iobench.cli import cli
from iobench.kinds.datagen import tfrecord
from iobench.kinds.datagen.indexed import read_idx
from iobench.kinds.datagen.reader import open_dataset

DLIO_FORMAT = {"npz": "npz", "hdf5": "hdf5", "tfrecord": "tfrecord",
               "indexed": "indexed_binary"}


def config(tmp: Path, fmt: str, *, files: int = 3, spf: int = 4, rec: int = 3000,
           stdev: int = 0, name: str = "mini") -> Path:
    ds = {"data_folder": "data/x", "format": fmt, "num_files_train": files,
          "num_samples_per_file": spf, "record_length": rec}
    if stdev:
        ds["record_length_stdev"] = stdev
    cfg = {"model": name, "framework": "pytorch",
           "workflow": {"generate_data": False, "train": True},
           "dataset": ds,
           "reader": {"data_loader": "pytorch", "batch_size": 2, "read_threads": 1},
           "train": {"epochs": 1, "computation_time": 0.0}}
    p = tmp / f"{name}_{fmt}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def cli_json(*args: str) -> dict:
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, (res.output, res.stderr)
    return json.loads(res.stdout)


def dlio_train_files(folder: Path, fmt: str) -> list[str]:
    """main.py initialize: listdir(DATA/train), names ending in the format, sorted."""
    train = folder / "train"
    return sorted(str(train / e) for e in os.listdir(train) if e.endswith(fmt))


def read_longs(f, n: int) -> np.ndarray:  # indexed_binary_reader.read_longs
    a = np.empty(n, dtype=np.int64)
    f.readinto(a)
    return a


def dlio_samples(path: str, fmt: str, n: int) -> list[np.ndarray]:
    """Every sample of one file, read as DLIO 2.0.0's reader of `fmt` reads it."""
    if fmt == "npz":
        x = np.load(path, allow_pickle=True)["x"]
        return [x[..., i] for i in range(n)]
    if fmt == "hdf5":
        with h5py.File(path, "r") as f:
            return [f["records"][i] for i in range(n)]
    if fmt in ("indexed_binary", "mmap_indexed_binary"):
        with open(path + ".off.idx", "rb") as f:
            offsets = read_longs(f, n)
        with open(path + ".sz.idx", "rb") as f:
            sizes = read_longs(f, n)
        out = []
        with open(path, "rb") as file:
            for i in range(n):
                file.seek(offsets[i])
                image = np.empty(sizes[i], dtype=np.uint8)
                file.readinto(image)
                out.append(image)
        return out
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["npz", "hdf5", "indexed_binary", "mmap_indexed_binary",
                                 "tfrecord"])
def test_dlio_reads_what_datagen_writes(tmp_path, fmt):
    cfg = config(tmp_path, fmt, stdev=600)
    t = tmp_path / "t"
    d = cli_json("datagen", "--dlio-config", str(cfg), "--target", str(t),
                 "--results-dir", str(tmp_path / "r"), "--jobs", "1")
    assert d["spec"]["layout"] == "dlio"  # the default under --dlio-config
    folder = t / "datagen" / "mini"
    files = dlio_train_files(folder, fmt)
    assert [Path(f).name.rsplit(".", 1)[0] for f in files] == \
        [f"img_{i}_of_3" for i in range(3)]
    ds = open_dataset(t, "mini")
    for i, path in enumerate(files):
        assert Path(path) == ds.files[i]
        if fmt == "tfrecord":
            table = ds.samples(i)
            assert table.shape[0] == 4
            for j in range(4):
                ex = tfrecord.decode(ds.read_sample(i, j))  # CRCs checked
                assert set(ex) == {"image", "size"}
                assert len(ex["image"]) == int(table[0, 1]) - 16 - (
                    tfrecord.record_bytes(len(ex["image"])) - 16 - len(ex["image"]))
            continue
        samples = dlio_samples(path, fmt, 4)
        assert all(s.dtype == np.uint8 for s in samples)
        assert len({s.nbytes for s in samples}) == 1  # DLIO: one size per file
        if fmt in ("npz", "hdf5"):
            assert samples[0].ndim == 2  # a (d1, d2) image, as DLIO's generators shape it
        # what DLIO reads is the bytes iobench's sample table points at
        ours = b"".join(ds.read_sample(i, j) for j in range(4))
        if fmt == "npz":  # x is (d1, d2, n): samples interleave; the array is the same
            x = np.load(path)["x"]
            assert ours == x.tobytes()
            assert np.load(path)["y"].tolist() == [0] * 4
        else:
            assert ours == b"".join(s.tobytes() for s in samples)
    assert d["metrics"]["bytes"] == sum(p.stat().st_size for p in folder.rglob("*")
                                        if p.is_file() and p.name != "manifest.json")


def test_sizes_follow_the_configs_distribution_per_file(tmp_path):
    cfg = config(tmp_path, "hdf5", files=6, spf=2, rec=4000, stdev=1500)
    t = tmp_path / "t"
    cli_json("datagen", "--dlio-config", str(cfg), "--target", str(t), "--results-dir",
             str(tmp_path / "r"), "--jobs", "1")
    sizes = set()
    for path in dlio_train_files(t / "datagen" / "mini", "hdf5"):
        with h5py.File(path, "r") as f:
            sizes.add(f["records"][0].nbytes)
            assert f["records"].shape[0] == 2
    assert len(sizes) > 1  # drawn per file


def dlio_generate(folder: Path, fmt: str, files: int, n: int, dims: list[tuple[int, int]]
                  ) -> None:
    """A data folder written the way DLIO 2.0.0's generators write it."""
    train = folder / "train"
    train.mkdir(parents=True)
    nd = len(str(files))
    rng = np.random.default_rng(10)
    for i in range(files):
        d1, d2 = dims[i]
        spec = str(train / f"img_{str(i).rjust(nd, '0')}_of_{files}.{fmt}")
        if fmt == "npz":  # npz_generator.py
            records = rng.integers(0, 255, size=(d1, d2, n), dtype=np.uint8)
            np.savez(spec, x=records, y=[0] * n)
        elif fmt == "hdf5":  # hdf5_generator.py
            with h5py.File(spec, "w") as hf:
                dset = hf.create_dataset("records", (n, d1, d2), dtype=np.uint8)
                dset[:] = rng.integers(0, 255, size=(n, d1, d2), dtype=np.uint8)
                hf.create_dataset("labels", data=[0] * n)
        else:  # indexed_binary_generator.py (single-rank branch)
            size = d1 * d2
            with open(spec, "wb") as f:
                f.write(rng.integers(0, 255, size=size * n, dtype=np.uint8).tobytes())
            with open(spec + ".off.idx", "wb") as f:
                f.write(struct.pack("Q" * n, *range(0, size * n, size)))
            with open(spec + ".sz.idx", "wb") as f:
                f.write(struct.pack("Q" * n, *([size] * n)))


@pytest.mark.parametrize("fmt", ["npz", "hdf5", "indexed_binary"])
def test_train_replays_a_folder_dlio_generated(tmp_path, fmt):
    folder = tmp_path / "dlio-data"
    dims = [(40, 50), (30, 31), (45, 45)]
    dlio_generate(folder, fmt, 3, 4, dims)
    before = sorted(p.name for p in folder.rglob("*"))
    cfg = config(tmp_path, fmt, files=3, spf=4, rec=2000)
    t = tmp_path / "t"
    t.mkdir()
    d = cli_json("train", "--dlio-config", str(cfg), "--target", str(t), "--data-folder",
                 str(folder), "--results-dir", str(tmp_path / "r"), "--cache", "allow")
    assert d["metrics"]["samples"] == 12
    assert d["metrics"]["payload_bytes"] == sum(4 * a * b for a, b in dims)
    assert d["spec"]["dataset"]["directory"] == str(folder)
    assert not (t / "datagen").exists()
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing added there


def test_train_replays_iobenchs_own_dlio_layout_through_data_folder(tmp_path):
    cfg = config(tmp_path, "npz", files=2, spf=2, rec=1000)
    t = tmp_path / "t"
    cli_json("datagen", "--dlio-config", str(cfg), "--target", str(t), "--results-dir",
             str(tmp_path / "r"), "--jobs", "1")
    d = cli_json("train", "--dlio-config", str(cfg), "--target", str(t), "--data-folder",
                 str(t / "datagen" / "mini"), "--results-dir", str(tmp_path / "r"),
                 "--cache", "allow")
    assert d["metrics"]["samples"] == 4


def test_data_folder_errors_are_one_line(tmp_path):
    cfg = config(tmp_path, "npz", files=3)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "t").mkdir()
    for args, msg in (
            (["train", "tiny", "--data-folder", str(tmp_path)], "only with --dlio-config"),
            (["train", "--dlio-config", str(cfg), "--data-folder", str(tmp_path / "no")],
             "not a directory"),
            (["train", "--dlio-config", str(cfg), "--data-folder", str(tmp_path)],
             "no train/ folder"),
            (["train", "--dlio-config", str(cfg), "--data-folder", str(tmp_path / "empty")],
             "0 *.npz files")):
        res = CliRunner().invoke(cli, [*args, "--target", str(tmp_path / "t")])
        assert res.exit_code == 2, res.output
        errors = [x for x in res.stderr.strip().splitlines() if x.startswith("error:")]
        assert len(errors) == 1
        assert msg in errors[0]


def test_layout_option_and_raw_refused(tmp_path, spec_file):
    p = spec_file(tmp_path, "lay", "npz", files=2, samples_per_file=2,
                  record_size_stdev=0)
    t = tmp_path / "t"
    d = cli_json("datagen", str(p), "--target", str(t), "--layout", "dlio",
                 "--results-dir", str(tmp_path / "r"), "--jobs", "1")
    assert d["spec"]["layout"] == "dlio"
    assert len(dlio_train_files(t / "datagen" / "lay", "npz")) == 2
    raw = spec_file(tmp_path, "rawl", "raw")
    res = CliRunner().invoke(cli, ["datagen", str(raw), "--target", str(t), "--layout",
                                   "dlio", "--force"])
    assert res.exit_code == 2
    assert "DLIO has no raw format" in res.stderr


def test_megatron_uint32_tokens_read_non_negative(tmp_path, spec_file):
    p = spec_file(tmp_path, "tok", "indexed", token_dtype="uint32", seq_len=4096,
                  samples_per_file=4)
    t = tmp_path / "t"
    cli_json("datagen", str(p), "--target", str(t), "--results-dir", str(tmp_path / "r"),
             "--jobs", "1")
    ds = open_dataset(t, "tok")
    dtype, sizes, pointers = read_idx(ds.files[0].with_suffix(".idx"))
    assert dtype == np.int32  # Megatron's code 4: it has no uint32 code
    tokens = np.fromfile(ds.files[0], dtype="<i4")
    assert tokens.size == int(sizes.sum())
    assert (tokens >= 0).all()
    assert len(np.unique(tokens)) > tokens.size * 0.99  # still random, not a pattern


@pytest.mark.parametrize(("name", "ok"), [
    ("img_0_of_3.npz", True), ("train/img_0_of_3.npz", True),
    ("train/../x", False), ("../x", False), ("/etc/passwd", False), ("other/img.npz", False),
    ("train/sub/img.npz", False), ("train/.hidden", False), (".", False), ("train/", False),
    (3, False),
])
def test_manifest_entries_allow_only_the_dlio_train_folder(name, ok):
    from iobench.kinds.datagen import writer

    assert writer._entry_name_ok(name) is ok
