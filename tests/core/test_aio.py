"""Linux native AIO in the native engine: queue depth without threads, on real files."""

import os

import numpy as np
import pytest

from iobench.content import Content
from iobench.engines import IOSpec, aio, native


def _usable_rings() -> list[str]:
    out = []
    for k in ("io_uring", "libaio"):
        try:
            aio.fastio().Ring(k, 1, 4096).close()
        except OSError:
            continue
        out.append(k)
    return out

pytestmark = pytest.mark.skipif(not aio.available(), reason="Linux AIO (io_setup) unavailable")


def test_aio_write_lands_the_right_bytes_at_the_right_offsets(tmp_path):
    f = tmp_path / "w.dat"
    spec = IOSpec(pattern="randwrite", size=1 << 20, block_size=8192, files=(f,), jobs=1,
                  queue_depth=8, direct=True, seed=3)
    phases = native.run(spec)
    p = phases[0]
    assert p["metrics"]["queue"] == "linux-aio"
    assert p["ops"] == 128  # one pass: size / block size random offsets
    assert p["latency_ns"]["count"] == 128
    data = f.read_bytes()
    # every block written holds the content stream's bytes for its offset
    offs = np.random.default_rng([3, 0]).permutation(128) * 8192  # each block once
    gen = Content("random", 3, stream=0)
    for off in offs[:20].tolist():
        assert data[off:off + 8192] == gen.bytes(off, 8192)


RINGS = ["python", *(k for k in ("io_uring", "libaio")
                     if aio.fastio() is not None and k in _usable_rings())]


@pytest.fixture(params=RINGS)
def ring(request, monkeypatch):
    """Each in-kernel queue the native engine can use at depth: the compiled io_uring and
    Linux AIO loops where they build and the kernel allows them, and the ctypes path."""
    monkeypatch.setattr(aio, "_ring_kind", [None if request.param == "python" else request.param])
    return request.param


def test_aio_seq_read_counts_every_byte_once(tmp_path, ring):
    f = tmp_path / "r.dat"
    native.layout([f], 2 << 20)
    spec = IOSpec(pattern="seqread", size=2 << 20, block_size=4096, files=(f,), jobs=1,
                  queue_depth=16, direct=True)
    p = native.run(spec)[0]
    assert p["metrics"]["queue"] == {"io_uring": "io_uring"}.get(ring, "linux-aio")
    assert p["metrics"]["loop"] == ("python" if ring == "python" else "compiled")
    assert p["bytes"] == 2 << 20
    assert p["ops"] == 512
    assert p["latency_ns"]["count"] == 512
    assert sum(p["timeline"]["bytes"]) == 2 << 20
    assert 0 < p["metrics"]["in_flight_mean"] <= 16.0001


def test_aio_time_based_wraps_and_stops(tmp_path, ring):
    f = tmp_path / "r.dat"
    native.layout([f], 256 << 10)
    spec = IOSpec(pattern="randread", size=256 << 10, block_size=4096, files=(f,), jobs=1,
                  queue_depth=4, direct=True, runtime=0.3)
    p = native.run(spec)[0]
    assert p["ops"] > 64  # more than one pass over the 64 blocks
    assert p["seconds"] >= 0.3 * 0.98  # ran its runtime (no upper bound: not a speed test)
    assert p["bytes"] == p["ops"] * 4096


def test_aio_read_error_is_an_oserror(tmp_path):
    ctx = aio.AioContext(2)
    ctx.close()
    with pytest.raises(OSError):
        aio.run_depth(2, 4096, lambda k: (9999, np.zeros(k, dtype=np.int64)),
                      on_batch=lambda lats, n, t: None)


@pytest.mark.skipif(not os.path.isdir("/sys/kernel/mm/transparent_hugepage"),
                    reason="no transparent huge pages in this kernel")
@pytest.mark.parametrize("kind", RINGS[1:] or ["none"])
def test_ring_buffers_of_2mib_or_more_sit_on_huge_pages(tmp_path, kind, vm_flags):
    """Blocks >= 2 MiB: every slot's buffer on its own 2 MiB boundary of a mapping advised
    MADV_HUGEPAGE (as the restore path's buffers: one segment per 2 MiB of an O_DIRECT
    read), and reads through them still count every byte; smaller blocks keep a 4 KiB
    stride."""
    if kind == "none":
        pytest.skip("the compiled helper is not built here")
    big = 5 << 19  # 2.5 MiB: not a whole number of huge pages
    r = aio.fastio().Ring(kind, 3, big)
    try:
        addrs = [r.buffer_address(i) for i in range(3)]
        assert all("hg" in vm_flags(a) for a in addrs)
        with pytest.raises(IndexError):
            r.buffer_address(3)
    finally:
        r.close()
    assert [a % (2 << 20) for a in addrs] == [0, 0, 0]
    assert [b - a for a, b in zip(addrs, addrs[1:], strict=False)] == [4 << 20] * 2
    small = aio.fastio().Ring(kind, 2, 12288)
    try:
        assert small.buffer_address(1) - small.buffer_address(0) == 12288
    finally:
        small.close()
    f = tmp_path / "big.dat"
    native.layout([f], 4 * big)
    fd = native.open_file(f)
    try:
        offs = np.arange(4, dtype=np.int64) * big
        seen: list[int] = []
        aio.run_ring(kind, 3, big, fd, offs, wrap=False,
                     on_batch=lambda lats, n, t: seen.append(n))
    finally:
        os.close(fd)
    assert sum(seen) == 4 * big


@pytest.mark.parametrize("kind", RINGS[1:] or ["none"])
def test_ring_read_error_is_an_oserror_and_counts_are_exact(tmp_path, kind):
    if kind == "none":
        pytest.skip("the compiled helper is not built here")
    f = tmp_path / "r.dat"
    native.layout([f], 64 << 10)
    offs = np.arange(16, dtype=np.int64) * 4096
    wfd = os.open(f, os.O_WRONLY)  # reads on a write-only fd fail with EBADF
    try:
        with pytest.raises(OSError):
            aio.run_ring(kind, 4, 4096, wfd, offs, wrap=False, on_batch=lambda *a: None)
    finally:
        os.close(wfd)
    seen: list[tuple[int, int]] = []
    fd = native.open_file(f)
    try:
        got = aio.run_ring(kind, 4, 4096, fd, offs, wrap=False,
                           on_batch=lambda lats, n, t: seen.append((len(lats), n)))
    finally:
        os.close(fd)
    assert sum(k for k, _ in seen) == 16
    assert sum(n for _, n in seen) == 64 << 10
    assert 0 < got["in_flight_mean"] <= 4.0001


def test_the_compiled_helper_is_built_where_a_compiler_is():
    """`pip install` builds iobench._fastio when a C compiler is there (setup.py: an
    optional extension); a silently skipped build would leave the slower Python loops."""
    import shutil
    import sys

    if not sys.platform.startswith("linux") or shutil.which("cc") is None:
        pytest.skip("no C compiler here: iobench uses its Python loops")
    if os.environ.get("IOBENCH_FASTIO") == "0":
        pytest.skip("IOBENCH_FASTIO=0: the Python loops are forced")
    assert aio.fastio() is not None, "iobench._fastio was not built: re-run pip install -e ."
    assert aio.ring_kind() in ("io_uring", "libaio", None)
