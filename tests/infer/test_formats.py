"""Generated files open in the real libraries: safetensors.safe_open and gguf.GGUFReader."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

import pytest

from iobench.errors import RunFailed
from iobench.kinds.infer_load import files, gguf_fmt, safetensors_fmt
from iobench.kinds.infer_load.layouts import GGUF_PRECISIONS, PRECISIONS

safetensors = pytest.importorskip("safetensors")
gguf = pytest.importorskip("gguf")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_safetensors_files_open_in_the_library(tiny, tiny_root: Path, precision: str) -> None:
    from safetensors import safe_open

    p = files.plan(tiny, precision, "safetensors")
    paths = files.paths(p, tiny_root)
    seen = 0
    for path, fp in zip(paths, p.files, strict=False):
        assert path.stat().st_size == fp.size
        with safe_open(str(path), framework="np") as f:
            assert list(f.keys()) == sorted(t.name for t in fp.tensors)
            assert f.metadata()["format"] == "pt"
            for t in fp.tensors:
                sl = f.get_slice(t.name)
                assert sl.get_dtype() == t.dtype
                assert tuple(sl.get_shape()) == t.shape
                seen += 1
    assert seen == p.tensor_count
    if len(p.files) > 1:
        index = json.loads((paths[0].parent / files.INDEX).read_text())
        assert index["weight_map"] == {t.name: fp.name for fp in p.files for t in fp.tensors}
        assert index["metadata"]["total_size"] == sum(t.nbytes for fp in p.files
                                                      for t in fp.tensors)


@pytest.mark.parametrize("precision", GGUF_PRECISIONS)
def test_gguf_files_open_in_gguf_reader(tiny, tiny_root: Path, precision: str) -> None:
    from gguf import GGUFReader

    p = files.plan(tiny, precision, "gguf")
    (path,) = files.paths(p, tiny_root)
    r = GGUFReader(str(path))
    assert r.alignment == 32
    assert r.data_offset % 32 == 0
    assert int(r.fields["general.alignment"].parts[-1][0]) == 32
    assert bytes(r.fields["general.architecture"].parts[-1]).decode() == "llama"
    assert len(r.tensors) == p.tensor_count
    ours, _, start = gguf_fmt.parse(path)
    assert start == r.data_offset
    ordered = sorted(ours, key=lambda x: x.begin)
    for rt, t, e in zip(r.tensors, p.files[0].tensors, ordered, strict=True):
        assert rt.name == t.name == e.name
        assert rt.tensor_type.name == t.dtype
        assert tuple(int(x) for x in rt.shape) == t.shape
        assert int(rt.n_bytes) == t.nbytes == e.nbytes
        assert rt.data_offset == e.begin
        assert e.begin % 32 == 0


def test_gguf_rejects_fp8(tiny) -> None:
    from iobench.errors import UsageError

    with pytest.raises(UsageError, match="GGUF has no fp8"):
        files.plan(tiny, "fp8", "gguf")


def test_write_is_streamed_with_bounded_memory(tiny, tmp_path: Path) -> None:
    import dataclasses

    def peak_writing(m, where: Path) -> int:
        p = files.plan(m, "bf16", "safetensors")
        tracemalloc.start()
        files.write(p, where, chunk=64 << 10)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak

    # ~20 MB of weights vs ~4 MB
    big = dataclasses.replace(tiny, arch=dataclasses.replace(tiny.arch, num_hidden_layers=12))
    assert files.plan(big, "bf16", "safetensors").total_bytes > 4 * files.plan(
        tiny, "bf16", "safetensors").total_bytes
    small_peak = peak_writing(tiny, tmp_path / "small")
    big_peak = peak_writing(big, tmp_path / "big")
    # memory does not grow with the model: the content generators' fixed tables + one chunk
    assert big_peak < small_peak + (1 << 20), (small_peak, big_peak)
    assert big_peak < 16 << 20
    p = files.plan(tiny, "bf16", "safetensors")
    files.write(p, tmp_path / "a", chunk=64 << 10)
    # the same bytes whatever the chunk: contents are a function of (seed, file, offset)
    files.write(p, tmp_path / "b", chunk=1 << 20)
    for a, b in zip(files.paths(p, tmp_path / "a"), files.paths(p, tmp_path / "b"), strict=False):
        assert a.read_bytes() == b.read_bytes()


def test_complete_set_is_reused_and_damaged_one_rewritten(tiny, tmp_path: Path) -> None:
    p = files.plan(tiny, "int4", "safetensors")
    first = files.write(p, tmp_path)
    mtimes = [f.stat().st_mtime_ns for f in first]
    files.write(p, tmp_path)
    assert [f.stat().st_mtime_ns for f in first] == mtimes
    with open(first[0], "r+b") as f:
        f.truncate(100)
    assert not files.is_complete(p, tmp_path)
    files.write(p, tmp_path)
    assert first[0].stat().st_size == p.files[0].size


def _st_file(path: Path, header: dict, data: bytes = b"", declared: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", declared if declared is not None else len(raw))
                     + raw + data)
    return path


def test_header_parser_names_file_and_fault(tmp_path: Path) -> None:
    ok = {"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}
    entries, _, start = safetensors_fmt.parse_header(_st_file(tmp_path / "ok.st", ok, b"1234"))
    assert entries[0].begin == start
    assert entries[0].nbytes == 4
    cases = [
        (_st_file(tmp_path / "t1.st", ok, declared=10_000), "truncated safetensors header"),
        (tmp_path / "t2.st", "fewer than the 8-byte header length"),
        (_st_file(tmp_path / "j.st", {}, b"", None), None),
        (_st_file(tmp_path / "hole.st", {"a": {"dtype": "F16", "shape": [2],
                                               "data_offsets": [4, 8]}}, b"12345678"),
         "leaves a hole"),
        (_st_file(tmp_path / "sz.st", {"a": {"dtype": "F32", "shape": [2],
                                             "data_offsets": [0, 4]}}, b"1234"),
         "needs 8 bytes"),
        (_st_file(tmp_path / "dt.st", {"a": {"dtype": "Q9", "shape": [2],
                                             "data_offsets": [0, 4]}}, b"1234"),
         "unknown dtype 'Q9'"),
        (_st_file(tmp_path / "short.st", ok, b"12"), "truncated safetensors file"),
    ]
    (tmp_path / "t2.st").write_bytes(b"\x01\x02")
    for path, msg in cases:
        if msg is None:
            continue
        with pytest.raises(RunFailed, match=msg) as e:
            safetensors_fmt.parse_header(path)
        assert str(path) in e.value.format_message()
    bad = tmp_path / "json.st"
    bad.write_bytes(struct.pack("<Q", 8) + b"{not js}")
    with pytest.raises(RunFailed, match="not valid JSON"):
        safetensors_fmt.parse_header(bad)
