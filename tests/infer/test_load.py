"""Every load method on the tiny model, all precisions, both formats, for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.errors import UsageError
from iobench.kinds.infer_load import files, load
from tests.infer.conftest import ALL

try:
    import ml_dtypes  # noqa: F401
    HAVE_ML_DTYPES = True
except ImportError:
    HAVE_ML_DTYPES = False

OPTS = load.LoadOptions(threads=3, chunk=256 << 10)


def _methods(fmt: str) -> list[str]:
    lib = "safetensors" if fmt == "safetensors" else "gguf"
    if lib == "safetensors" and not HAVE_ML_DTYPES:  # BF16/F8 in numpy need ml-dtypes
        return ["read", "pread", "direct", "mmap"]
    return ["read", "pread", "direct", "mmap", lib]


@pytest.mark.parametrize(("fmt", "precision"), ALL)
def test_every_method_loads_every_tensor(tiny, tiny_root: Path, fmt: str,
                                         precision: str) -> None:
    p = files.plan(tiny, precision, fmt)
    paths = files.paths(p, tiny_root)
    for method in _methods(fmt):
        for discard in (False, True):
            st = load.load(method, paths, fmt, load.LoadOptions(3, 256 << 10, discard))
            assert st.bytes == p.total_bytes, method
            assert st.bytes_read >= p.total_bytes if method != "direct" else \
                st.bytes_read == p.total_bytes  # O_DIRECT reads stop at EOF
            assert st.tensors == p.tensor_count, method
            assert st.ops == st.latency.count > 0
            assert 0 < st.first_tensor_s <= st.seconds
            if method in ("pread", "direct"):
                want = (3 * (256 << 10)) if discard else p.total_bytes
                assert st.peak_buffer_bytes >= want
                if discard:
                    assert st.peak_buffer_bytes == 3 * (256 << 10)


def test_pread_chunks_and_latency_samples(tiny, tiny_root: Path) -> None:
    p = files.plan(tiny, "bf16", "safetensors")
    paths = files.paths(p, tiny_root)
    st = load.load("pread", paths, "safetensors", load.LoadOptions(threads=2, chunk=64 << 10))
    expected = sum(-(-f.stat().st_size // (64 << 10)) for f in paths)
    assert st.ops == expected  # one timed pread per chunk
    whole = load.load("read", paths, "safetensors", OPTS)
    assert whole.ops == len(paths)  # whole-file: one read per file


def test_method_checks() -> None:
    with pytest.raises(UsageError, match="did you mean 'pread'"):
        load.check_methods(["prea"], "safetensors")
    with pytest.raises(UsageError, match="loads safetensors files, not gguf"):
        load.check_methods(["safetensors"], "gguf")
    with pytest.raises(UsageError, match="loads gguf files"):
        load.check_methods(["gguf"], "safetensors")


def test_replicas_load_at_once(tiny, tiny_root: Path) -> None:
    p = files.plan(tiny, "int4", "safetensors")
    r = load.replicas("pread", files.paths(p, tiny_root), "safetensors", OPTS, 2)
    assert r["bytes"] == 2 * p.total_bytes
    assert r["ready_ns"].count == 2
    assert r["ready_ns"].max <= r["seconds"] * 1e9 + 1
    assert r["latency"].count == r["ops"] > 0
