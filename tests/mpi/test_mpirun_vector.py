"""`infer vector` under real mpirun: queries (mode 1) and queries in flight (mode 2) split
over ranks, merged into one result whose counts equal the single-process run's."""

from __future__ import annotations

import pytest

from .conftest import only_result, single

mpi = pytest.mark.mpi


@mpi
def test_pattern_concurrency_split_over_ranks(mpirun, tmp_path):
    args = ["infer", "vector", "--target", str(tmp_path / "t"), "--results-dir",
            str(tmp_path / "r"), "--index-size", "8MiB", "--hops", "3", "--beam-width", "2",
            "-c", "1,3", "--runtime", "0.3s"]
    mpirun(2, args)
    d = only_result(tmp_path / "r")
    assert d["status"]["state"] == "ok"
    assert d["sysinfo"]["mpi"]["ranks"] == 2
    for p in d["phases"]:
        m = p["metrics"]
        assert m["ranks"] == 2
        assert m["reads"] == m["queries"] * 3 * 2
        assert p["histogram"]["count"] == m["queries"]  # every rank's queries merged
        assert m["read_latency_ns"]["count"] == m["reads"]


@mpi
def test_diskann_queries_split_over_ranks(mpirun, tmp_path):
    pytest.importorskip("diskannpy")
    args = ["infer", "vector", "--engine", "diskann", "--target", str(tmp_path / "t"),
            "--dim", "16", "--vectors", "2000", "--queries", "60", "-L", "32", "-W", "4",
            "--states", "cold"]
    ref = single([*args, "--results-dir", str(tmp_path / "r1")])  # builds the index
    mpirun(2, [*args, "--results-dir", str(tmp_path / "r")], timeout=300)
    d = only_result(tmp_path / "r")
    assert d["status"]["state"] == "ok"
    assert d["metrics"]["index_reused"] is True
    p, p1 = d["phases"][-1], ref["phases"][-1]
    assert p["name"] == p1["name"] == "search W=4 L=32 cold"
    assert p["ops"] == p1["ops"] == 60
    assert p["histogram"]["count"] == 60
    assert p["metrics"]["searchers"] == 2
    # the same index and queries: the same neighbours and the same sectors read
    assert p["metrics"]["recall_at_10"] == p1["metrics"]["recall_at_10"]
    assert p["bytes"] == p1["bytes"]
