"""iobench.dist without mpirun: the world of one, splitting, and merging ranks' phases."""

import numpy as np
import pytest

from iobench import dist
from iobench.errors import RunFailed
from iobench.results import make_phase
from iobench.stats import Histogram, Timeline


class FakeWorld(dist.World):
    def __init__(self, rank: int, size: int) -> None:
        self.rank = rank
        self.size = size


def test_world_of_one_without_launcher(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "OMPI_COMM_WORLD_RANK",
                "PMI_RANK", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    dist.set_world(None)
    w = dist.world()
    assert (w.rank, w.size, w.mpi) == (0, 1, False)
    assert w.gather(5) == [5]
    assert dist.collective(lambda: 7) == [7]
    with pytest.raises(ValueError, match="boom"):  # one process: the error itself
        dist.collective(lambda: (_ for _ in ()).throw(ValueError("boom")))
    dist.set_world(None)


def test_split_is_deterministic_and_complete():
    for n, size in [(10, 3), (2, 3), (7, 7), (0, 2)]:
        parts = [dist.split(n, FakeWorld(r, size)) for r in range(size)]
        flat = [i for p in parts for i in p]
        assert flat == list(range(n))
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_mpi_launch_without_mpi4py_is_one_line(monkeypatch):
    import sys

    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    dist.set_world(None)
    from iobench.errors import ToolMissing

    with pytest.raises(ToolMissing) as e:
        dist.world()
    msg = e.value.format_message()
    assert "launched under mpirun (4 ranks) but mpi4py is not installed" in msg
    assert "pip install 'iobench[mpi]'" in msg
    dist.set_world(None)


def _phase(values, nbytes, start_s, end_s):
    h = Histogram()
    h.record_many(values)
    tl = Timeline(start_ns=int(start_s * 1e9))
    tl.add(int(start_s * 1e9), nbytes)
    p = make_phase("seqread", nbytes=nbytes, seconds=end_s - start_s, ops=len(values),
                   latency=h, timeline=tl)
    return dist.stamp(p, int(start_s * 1e9), int(end_s * 1e9))


def test_merge_phases_hand_computed():
    rng = np.random.default_rng(3)
    a = rng.integers(10_000, 20_000, 1000)
    b = rng.integers(500_000, 900_000, 10)
    c = rng.integers(1_000, 2_000, 500)
    # rank 0: 100 MB in [10, 12] s; rank 1: 300 MB in [10.5, 14]; rank 2: 200 MB in [11, 13]
    per_rank = [[_phase(a, 100_000_000, 10.0, 12.0)], [_phase(b, 300_000_000, 10.5, 14.0)],
                [_phase(c, 200_000_000, 11.0, 13.0)]]
    (m,) = dist.merge_phases(per_rank)
    assert m["bytes"] == 600_000_000
    assert m["seconds"] == pytest.approx(4.0)  # last end 14 - first start 10
    assert m["bytes_per_s"] == pytest.approx(150_000_000)
    assert m["ops"] == 1510
    mt = m["metrics"]
    assert mt["ranks"] == 3
    assert mt["rank_gb_per_s_min"] == pytest.approx(0.05)  # rank 0: 100 MB / 2 s
    assert mt["rank_gb_per_s_median"] == pytest.approx(300 / 3.5 / 1000)  # rank 1
    assert mt["rank_gb_per_s_max"] == pytest.approx(0.1)  # rank 2: 200 MB / 2 s
    assert mt["first_done_s"] == pytest.approx(2.0)
    assert mt["last_done_s"] == pytest.approx(4.0)
    union = Histogram()
    union.record_many(np.concatenate([a, b, c]))
    assert m["latency_ns"]["p99"] == union.percentile(99)
    assert m["latency_ns"]["p50"] == union.percentile(50)
    assert m["latency_ns"]["max"] == float(b.max())
    assert sum(m["timeline"]["bytes"]) == 600_000_000
    # ranks 0 (at 10 s) and 1 (at 10.5 s) fall in [10, 11); rank 2 (at 11 s) in [11, 12)
    assert m["timeline"]["bytes"] == [400_000_000, 200_000_000]


def test_merge_refuses_mismatched_phases():
    p = _phase([1000], 10, 0, 1)
    q = dict(p, name="seqwrite")
    with pytest.raises(RunFailed, match="different phases"):
        dist.merge_phases([[p], [q]])
