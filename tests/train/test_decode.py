"""`--decode` of npz samples by streaming (iobench.kinds.train.decode): the decoded arrays have
the shapes, dtypes and bytes np.load gives; the zip CRC-32 and the .npy header are
checked piece by piece; corruption is named; the replay's reader buffers stay one block."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from iobench.cli import cli
from iobench.errors import RunFailed, UsageError
from iobench.kinds.datagen import npz
from iobench.kinds.datagen.reader import open_dataset
from iobench.kinds.train import dataset as ds_mod
from iobench.kinds.train.decode import NpyStream, NpzStreams, npz_members
from iobench.kinds.train.emulate import ReplayConfig, run_epoch


def _datagen(tmp_path: Path, name: str = "dec-npz", **extra: object) -> tuple[Path, Path]:
    fields = {"name": name, "format": "npz", "record_size": "40KiB",
              "record_size_stdev": "15KiB", "samples_per_file": 3, "files": 3,
              "batch_size": 3, "read_threads": 2, **extra}
    spec = tmp_path / f"{name}.yaml"
    spec.write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
    target = tmp_path / "t"
    r = CliRunner().invoke(cli, ["datagen", str(spec), "--target", str(target),
                                 "--results-dir", str(tmp_path / "dg")])
    assert r.exit_code == 0, r.output
    return spec, target


def _members(path: Path) -> list[tuple[int, int, np.ndarray]]:
    """(offset, length, np.load's array) of every member, read independently."""
    idx = npz.index(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = [z[n] for n in z.files]
    return [(int(o), int(n), a) for (o, n), a in zip(idx.tolist(), arrays, strict=True)]


@pytest.mark.parametrize("piece", [None, 1, 100, 4096, 10_000])
def test_stream_decode_matches_np_load(tmp_path: Path, piece: int | None) -> None:
    _, target = _datagen(tmp_path)
    ds = open_dataset(target, "dec-npz")
    streams = NpzStreams(list(ds.files))
    n = 0
    for fi, path in enumerate(ds.files):
        raw = path.read_bytes()
        for off, length, want in _members(path):
            s = streams(fi, off, length)
            assert isinstance(s, NpyStream)
            buf = np.frombuffer(raw, dtype=np.uint8)[off : off + length]
            step = piece or length
            for p in range(0, length, step):
                s.feed(memoryview(buf[p : p + step]))
            s.finish()
            assert s.dtype == want.dtype
            assert s.shape == want.shape
            if piece is None:  # whole sample in one piece: the decoded array, no copy
                assert s.array is not None
                assert s.array.shape == want.shape
                assert s.array.dtype == want.dtype
                assert np.array_equal(s.array, want)
                assert np.shares_memory(s.array, buf)
            n += 1
    assert n == 9


def test_members_agree_with_zipfile(tmp_path: Path) -> None:
    _, target = _datagen(tmp_path)
    path = open_dataset(target, "dec-npz").files[0]
    m = npz_members(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(c for c, _, _ in m.values()) == sorted(i.CRC for i in z.infolist())
        assert {n for _, _, n in m.values()} == set(z.namelist())
    assert sorted(m) == sorted(int(o) for o in npz.index(path)[:, 0])


def test_corrupt_payload_and_header_are_caught(tmp_path: Path) -> None:
    _, target = _datagen(tmp_path)
    path = open_dataset(target, "dec-npz").files[1]
    (off, length, _), *_ = _members(path)
    data = bytearray(path.read_bytes())
    data[off + length - 7] ^= 0x01  # one payload bit: only the CRC-32 can tell
    s = NpzStreams([path])(0, off, length)
    s.feed(memoryview(data)[off : off + length])
    with pytest.raises(RunFailed, match="CRC-32"):
        s.finish()
    data[off + length - 7] ^= 0x01
    data[off + 20] = ord("9")  # inside the header's dict: no longer parses
    s = NpzStreams([path])(0, off, length)
    with pytest.raises(RunFailed, match="npy|header"):
        s.feed(memoryview(data)[off : off + length])
    s = NpzStreams([path])(0, off, length)  # a short sample
    s.feed(memoryview(data)[off : off + 50])
    with pytest.raises(RunFailed, match="got 50 of"):
        s.finish()


def test_replay_streams_every_sample_through_one_block(tmp_path: Path) -> None:
    spec, target = _datagen(tmp_path)
    from iobench.workload import load_workload

    dg, ds = ds_mod.open_for_training(target, load_workload(str(spec)))
    seen: list[tuple[int, int, tuple[int, ...]]] = []
    start = ds_mod.stream_decoder(dg)
    assert start is not None

    class Spy:
        def __init__(self, fi: int, off: int, ln: int) -> None:
            self.inner, self.key = start(fi, off, ln), (fi, off)
            self.pieces = 0

        def feed(self, piece: memoryview) -> None:
            assert len(piece) <= 4096  # the block, never the whole sample
            self.pieces += 1
            self.inner.feed(piece)

        def finish(self) -> None:
            self.inner.finish()
            seen.append((*self.key, self.inner.inner.shape))  # type: ignore[attr-defined]

    ds.decode = ds_mod.decoder(dg)
    ds.stream_decode = Spy
    cfg = ReplayConfig(accelerators=1, batch_size=3, compute_s=0.0, read_threads=2,
                       block_size=4096, shuffle="sample")
    st = run_epoch(ds, cfg, 0)
    assert st.samples == 9
    assert len(seen) == 9
    want = {(fi, o): a.shape for fi, p in enumerate(dg.files) for o, _, a in _members(p)}
    assert {(fi, o): sh for fi, o, sh in seen} == want


def test_train_decode_names_a_corrupt_npz_shard(tmp_path: Path) -> None:
    spec, target = _datagen(tmp_path, name="dec-bad")
    args = ["train", str(spec), "--target", str(target), "--results-dir",
            str(tmp_path / "r"), "--compute-time", "0", "--cache", "allow"]
    r = CliRunner().invoke(cli, [*args, "--decode", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metrics"]["samples"] == 9
    shard = open_dataset(target, "dec-bad").files[2]
    (off, length, _), *_ = _members(shard)
    data = bytearray(shard.read_bytes())
    data[off + length // 2] ^= 0x80
    shard.write_bytes(bytes(data))
    r = CliRunner().invoke(cli, [*args, "--no-decode"])
    assert r.exit_code == 0, r.output  # the payload is not looked at without --decode
    r = CliRunner().invoke(cli, [*args, "--decode"])
    assert r.exit_code == 2, r.output
    assert shard.name in r.output
    assert "CRC-32" in r.output
    assert "corrupt" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_stream_errors_are_usage_errors_naming_the_shard(tmp_path: Path) -> None:
    spec, target = _datagen(tmp_path)
    from iobench.workload import load_workload

    dg, _ = ds_mod.open_for_training(target, load_workload(str(spec)))
    start = ds_mod.stream_decoder(dg)
    assert start is not None
    (off, length, _), *_ = _members(dg.files[0])
    with pytest.raises(UsageError, match=dg.files[0].name):
        start(0, off, length + 1)  # the index and the zip disagree
