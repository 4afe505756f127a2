"""Linux native AIO in the native engine: queue depth without threads, on real files."""

import numpy as np
import pytest

from iobench.content import Content
from iobench.engines import IOSpec, aio, native

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
    offs = np.unique(np.random.default_rng([3, 0]).integers(0, 128, 128) * 8192)
    gen = Content("random", 3, stream=0)
    for off in offs[:20].tolist():
        assert data[off:off + 8192] == gen.bytes(off, 8192)


def test_aio_seq_read_counts_every_byte_once(tmp_path):
    f = tmp_path / "r.dat"
    native.layout([f], 2 << 20)
    spec = IOSpec(pattern="seqread", size=2 << 20, block_size=4096, files=(f,), jobs=1,
                  queue_depth=16, direct=True)
    p = native.run(spec)[0]
    assert p["metrics"]["queue"] == "linux-aio"
    assert p["bytes"] == 2 << 20
    assert p["ops"] == 512
    assert sum(p["timeline"]["bytes"]) == 2 << 20


def test_aio_time_based_wraps_and_stops(tmp_path):
    f = tmp_path / "r.dat"
    native.layout([f], 256 << 10)
    spec = IOSpec(pattern="randread", size=256 << 10, block_size=4096, files=(f,), jobs=1,
                  queue_depth=4, direct=True, runtime=0.3)
    p = native.run(spec)[0]
    assert p["ops"] > 64  # more than one pass over the 64 blocks
    assert 0.25 < p["seconds"] < 3
    assert p["bytes"] == p["ops"] * 4096


def test_aio_read_error_is_an_oserror(tmp_path):
    ctx = aio.AioContext(2)
    ctx.close()
    with pytest.raises(OSError):
        aio.run_depth(2, 4096, lambda k: (9999, np.zeros(k, dtype=np.int64)),
                      on_batch=lambda lats, n, t: None)
