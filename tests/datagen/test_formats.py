"""Every format written by iobench and read back by its real reader (np.load, h5py, an
independent TFRecord parser, a Megatron .idx parser), with content checked byte for byte."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import h5py
import numpy as np
import pytest

from iobench.kinds.datagen import open_dataset
from iobench.kinds.datagen.writer import content_for, content_offsets, record_sizes

FORMATS = ["raw", "npz", "hdf5", "tfrecord", "indexed"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory, spec_file) -> Path:
    from click.testing import CliRunner

    from iobench.cli import cli

    d = tmp_path_factory.mktemp("fmt")
    target = d / "target"
    for fmt in FORMATS:
        spec = spec_file(d, f"t-{fmt}", fmt, hdf5_chunk_bytes="64KiB")
        r = CliRunner().invoke(cli, ["datagen", str(spec), "--target", str(target), "--force",
                                     "--results-dir", str(d / "res"), "--json"])
        assert r.exit_code == 0, r.output
    return target


def _expected(ds, shard: int) -> list[bytes]:
    sizes = record_sizes(ds.spec, shard)
    c = content_for("random", ds.spec, shard)
    if ds.format in ("raw", "indexed", "hdf5"):  # one contiguous content stream
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    else:
        starts = content_offsets(sizes)
    return [c.bytes(int(o), int(n)) for o, n in zip(starts, sizes, strict=True)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_index_matches_planned_sizes(datasets: Path, fmt: str) -> None:
    ds = open_dataset(datasets, f"t-{fmt}")
    assert len(ds.files) == 2
    assert ds.num_samples == 6
    for i in range(2):
        idx = ds.samples(i)
        assert idx.shape == (3, 2)
        assert (idx[:, 0] + idx[:, 1] <= ds.file_bytes[i]).all()
        if fmt in ("raw", "hdf5", "indexed"):
            assert idx[:, 1].tolist() == record_sizes(ds.spec, i).tolist()


def test_npz_np_load(datasets: Path) -> None:
    ds = open_dataset(datasets, "t-npz")
    for i, path in enumerate(ds.files):
        with np.load(path) as z:  # numpy's zip reader checks each member's CRC-32
            assert sorted(z.files) == ["x0", "x1", "x2"]
            arrays = [z[f"x{j}"] for j in range(3)]
        for j, (arr, want) in enumerate(zip(arrays, _expected(ds, i), strict=True)):
            assert arr.dtype == np.uint8
            assert arr.tobytes() == want
            assert ds.decode(ds.read_sample(i, j)).tobytes() == want  # pread + np.load


def test_hdf5_h5py(datasets: Path) -> None:
    ds = open_dataset(datasets, "t-hdf5")
    for i, path in enumerate(ds.files):
        with h5py.File(path, "r") as f:
            assert f["records"].chunks == (64 * 1024,)
            offs = f["offsets"][()]
            got = [f["records"][offs[j] : offs[j + 1]].tobytes() for j in range(3)]
        want = _expected(ds, i)
        assert got == want
        assert [ds.read_sample(i, j) for j in range(3)] == want  # pread of the chunk range
        whole = ds.decode(path.read_bytes())  # h5py on a file image in memory
        assert [a.tobytes() for a in whole] == want


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _parse_tfrecords(data: bytes) -> list[bytes]:
    """Independent TFRecord reader: framing and both masked CRC32Cs, as TF checks them."""
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        (lcrc,) = struct.unpack_from("<I", data, pos + 8)
        assert lcrc == _mask(crc32c.crc32c(data[pos : pos + 8]))
        body = data[pos + 12 : pos + 12 + n]
        (dcrc,) = struct.unpack_from("<I", data, pos + 12 + n)
        assert dcrc == _mask(crc32c.crc32c(body))
        out.append(body)
        pos += 16 + n
    assert pos == len(data)
    return out


def test_tfrecord_independent_parser(datasets: Path) -> None:
    ds = open_dataset(datasets, "t-tfrecord")
    for i, path in enumerate(ds.files):
        bodies = _parse_tfrecords(path.read_bytes())
        want = _expected(ds, i)
        assert len(bodies) == 3
        for j, body in enumerate(bodies):
            assert want[j] in body  # the Example wraps the payload bytes verbatim
            ex = ds.decode(ds.read_sample(i, j))
            assert ex["image"] == want[j]
            assert ex["size"] == [len(want[j])]


def test_tfrecord_decode_detects_corruption(datasets: Path) -> None:
    from iobench.errors import RunFailed

    ds = open_dataset(datasets, "t-tfrecord")
    rec = bytearray(ds.read_sample(0, 1))
    rec[100] ^= 0x01
    with pytest.raises(RunFailed, match="data CRC mismatch"):
        ds.decode(bytes(rec))


def test_indexed_megatron_layout(datasets: Path) -> None:
    ds = open_dataset(datasets, "t-indexed")
    for i, path in enumerate(ds.files):
        idx = path.with_suffix(".idx").read_bytes()
        assert idx[:9] == b"MMIDIDX\x00\x00"
        version, code, n, ndocs = struct.unpack_from("<QBQQ", idx, 9)
        assert (version, code, n, ndocs) == (1, 8, 3, 4)
        sizes = np.frombuffer(idx, "<i4", 3, 34)
        pointers = np.frombuffer(idx, "<i8", 3, 34 + 12)
        assert sizes.tolist() == [1000, 1000, 1000]
        assert pointers.tolist() == [0, 2000, 4000]
        tokens = np.memmap(path, dtype=np.uint16, mode="r")  # Megatron reads .bin by mmap
        want = _expected(ds, i)
        for j in range(3):
            seq = tokens[pointers[j] // 2 : pointers[j] // 2 + sizes[j]]
            assert seq.tobytes() == want[j]
            assert np.array_equal(ds.decode(ds.read_sample(i, j)), seq)


def test_raw_index_sidecar(datasets: Path) -> None:
    ds = open_dataset(datasets, "t-raw")
    for i, path in enumerate(ds.files):
        idx = path.with_suffix(".idx").read_bytes()
        assert idx[:8] == b"IOBRAW1\0"
        table = np.frombuffer(idx, "<u8", offset=16).reshape(-1, 2)
        data = path.read_bytes()
        want = _expected(ds, i)
        assert [data[o : o + n] for o, n in table.tolist()] == want


def test_crc32c_known_vectors() -> None:
    from iobench.kinds.datagen.tfrecord import masked_crc, unmask_crc
    from iobench.kinds.datagen.writer import crc32c as ours

    assert ours(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert ours(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4 vectors
    assert ours(b"\xff" * 32) == 0x62A8AB43
    assert ours(bytes(range(32))) == 0x46DD794E
    assert ours(b"6789", ours(b"12345")) == 0xE3069283  # running CRC over chunks
    for c in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert masked_crc(c) != c
        assert unmask_crc(masked_crc(c)) == c
    assert masked_crc(0) == 0xA282EAD8


def test_open_dataset_errors(tmp_path: Path, datasets: Path) -> None:
    from iobench.errors import UsageError

    with pytest.raises(UsageError, match="no generated data sets|none"):
        open_dataset(tmp_path)
    with pytest.raises(UsageError, match="name one"):
        open_dataset(datasets)  # five data sets: must say which
    with pytest.raises(UsageError, match="run `iobench datagen nope"):
        open_dataset(datasets, "nope")
