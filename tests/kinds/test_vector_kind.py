"""The infer-vector kind as a library: run() without Click (mode 2 tiny, mode 1 tiny with
a real diskannpy index), its declared metrics, v1 results with the old names."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import iobench
from iobench import results
from iobench.kinds import vector
from iobench.kinds.base import RunOptions
from iobench.kinds.vector.metrics import MODE_METRICS

try:
    import diskannpy  # noqa: F401
    HAVE_DISKANN = True
except ImportError:
    HAVE_DISKANN = False


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r")


def _mode_metrics_present(r: results.Result, mode: str) -> None:
    for name in MODE_METRICS[mode]:
        m = vector.METRICS.result().get(name)
        assert m is not None, name
        assert any(m.matches(k) for k in r.metrics), f"{mode}: {name} missing"


def test_mode2_tiny_through_the_api(tmp_path):
    spec = vector.build(index_size="4MiB", hops=2, beam_width=[2], concurrency="1,2",
                        runtime="0.2s")
    r = vector.run(spec, _opts(tmp_path))
    assert r.status == "ok", r.reason
    assert r.kind == "infer-vector"
    assert vector.METRICS.check(r) == []
    _mode_metrics_present(r, "pattern")
    for p in r.phases:
        m = p.metrics
        assert m["op_unit"] == "query"  # ops are queries: the phases table never says IOPS
        assert m["reads"] == p.ops * 2 * 2
        assert m["reads_per_s"] == pytest.approx(m["reads"] / p.seconds)
        assert m["queries_per_s"] == pytest.approx(p.ops_per_s)
    assert r.metrics["reads_per_query"] == 4
    assert set(r.metrics) >= {"c1.queries_per_s", "c2.queries_per_s", "c1.p99_us"}
    assert results.load(r.run_dir).to_dict() == r.to_dict()


def test_the_package_exposes_the_kind():
    assert iobench.vector is vector
    assert iobench.vector.run is vector.run


@pytest.mark.skipif(not HAVE_DISKANN, reason="diskannpy is not installed "
                    "(pip install 'iobench[vector]'; make test installs it)")
def test_mode1_tiny_through_the_api_with_searcher_processes(tmp_path):
    spec = vector.build(engine="diskann", dim=16, vectors=1500, queries=40, clusters=6,
                        complexity=[32], beam_width=[2], states="cold",
                        latency_budget="30s", search_procs=[1, 2])
    r = vector.run(spec, _opts(tmp_path))
    assert r.status == "ok", r.reason
    assert vector.METRICS.check(r) == []
    _mode_metrics_present(r, "diskann")
    names = [p.name for p in r.phases]
    assert names == ["build", "search W=2 L=32 cold", "procs P=1 W=2 L=32 cold",
                     "procs P=2 W=2 L=32 cold"]
    one, *procs = r.phases[1:]
    for p in procs:  # the same index and queries: the same neighbours, the same sectors
        assert p.ops == 40
        assert p.histogram is not None
        assert p.histogram["count"] == 40  # each query timed on its own, in every process
        assert p.metrics["recall_at_10"] == one.metrics["recall_at_10"]
        assert p.bytes == one.bytes  # the processes' own /proc/self/io, summed
        assert p.metrics["concurrency"] == p.metrics["procs"]
    assert [c["procs"] for c in r.metrics["procs_curve"]] == [1, 2]
    assert r.metrics["max_procs_queries_per_s"] == max(
        c["queries_per_s"] for c in r.metrics["procs_curve"])
    assert r.metrics["headline"]["p99_us"] == pytest.approx(one.latency_ns["p99"] / 1e3)


@pytest.mark.skipif(not HAVE_DISKANN, reason="diskannpy is not installed")
def test_a_searcher_process_that_dies_is_named(tmp_path):
    """A searcher process killed during the load ends the run failed, naming it; none is
    left behind."""
    import os
    import signal

    from iobench.errors import RunFailed
    from iobench.kinds.vector import data, engine, fleet

    mix = data.Mixture(16, 4, 0)
    vec, idx = tmp_path / "v.bin", tmp_path / "idx"
    data.write_vectors(vec, mix, 600)
    idx.mkdir()
    engine.build(vec, idx, 600, 16, engine.BuildParams("l2", 16, 32, 8, 2), tmp_path / "b.log")
    q = mix.sample(8, 1, 0)
    f = fleet.SearcherFleet(idx, "l2", 16, 0, tmp_path / "s.log", q, 2)
    try:
        f.start()
        assert f.run(32, 2, None)["queries"] == 8
        os.kill(f.procs[1].pid, signal.SIGKILL)
        with pytest.raises(RunFailed, match=r"search process 1 \(pid \d+\) exited with code -9"):
            f.run(32, 2, None)
    finally:
        f.close(0.0)
    assert not any(p.is_alive() for p in f.procs)


def test_bad_values_are_one_line_usage_errors(tmp_path):
    from iobench.errors import UsageError

    with pytest.raises(UsageError, match="--beam-width 32 is larger than --complexity 16"):
        vector.build(engine="diskann", beam_width=[32], complexity="16,64")
    with pytest.raises(UsageError, match="--engine 'annoy'"):
        vector.build(engine="annoy")
    with pytest.raises(UsageError, match="--hops 0"):
        vector.run(vector.build(hops=0, index_size="4MiB"), _opts(tmp_path))
    assert not (tmp_path / "t").exists()


def test_a_schema_1_result_loads_with_its_metrics_renamed_and_converted(tmp_path):
    r = vector.run(vector.build(index_size="4MiB", hops=1, beam_width=[1], concurrency=[1],
                                runtime="0.1s"), _opts(tmp_path))
    d = r.to_dict()
    d["schema_version"] = 1
    m = d["metrics"]
    m["qps"] = m.pop("queries_per_s")
    m["max_qps"] = m.pop("max_queries_per_s")
    m["p99_ms"] = m.pop("p99_us") / 1e3
    m["c1.qps"] = m.pop("c1.queries_per_s")
    m["c1.p99_ms"] = m.pop("c1.p99_us") / 1e3
    pm = d["phases"][0]["metrics"]
    pm["qps"] = pm.pop("queries_per_s")
    pm["read_iops"] = pm.pop("reads_per_s")
    pm["sector"] = pm.pop("sector_bytes")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert up.schema_version == 2
    assert up.metrics["queries_per_s"] == r.metrics["queries_per_s"]
    assert up.metrics["p99_us"] == pytest.approx(r.metrics["p99_us"])  # ms x 1000
    assert up.metrics["c1.p99_us"] == pytest.approx(r.metrics["c1.p99_us"])
    assert up.metrics["c1.queries_per_s"] == r.metrics["c1.queries_per_s"]
    assert "qps" not in up.metrics
    assert "p99_ms" not in up.metrics
    assert up.phases[0].metrics["reads_per_s"] == r.phases[0].metrics["reads_per_s"]
    assert up.phases[0].metrics["sector_bytes"] == 4096
    assert vector.METRICS.check(up) == []


def test_run_imports_neither_click_nor_rich():
    code = ("import iobench.kinds.vector.run, iobench.engines.batch, sys; "
            "bad = [m for m in ('click', 'rich') if m in sys.modules]; "
            "assert not bad, bad")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
