"""Honesty checks (issue 13): both engines read exactly what the spec says, residency is
measured, achieved depth and an independent byte audit are in every io result."""

import json
import os

import pytest

from iobench import cache, verify
from iobench.cli import cli
from iobench.engines import IOSpec, fio, native


def run_json(runner, args):
    res = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.fio
@pytest.mark.parametrize("pattern", ["seqread", "randread"])
def test_native_and_fio_read_the_same_bytes_of_a_larger_file(tmp_path, have_fio, pattern):
    f = tmp_path / "big.dat"
    native.layout([f], 3 << 20)  # the file is larger than the spec's size
    spec = IOSpec(pattern=pattern, size=1 << 20, block_size=16384, files=(f,), jobs=1)
    n = native.run(spec)[0]
    x = fio.run(spec, tmp_path)[0]
    assert n["bytes"] == x["bytes"] == 1 << 20
    assert n["ops"] == x["ops"] == 64


def test_residency_after_eviction_and_after_a_full_read(tmp_path):
    f = tmp_path / "r.dat"
    native.layout([f], 2 << 20)
    cache.evict([f])
    r = cache.residency([f])
    assert r["bytes"] == 2 << 20
    assert r["method"] in ("cachestat", "mincore")
    assert r["resident_pct"] < 5.0
    with open(f, "rb") as fh:
        while fh.read(1 << 20):
            pass
    assert cache.residency([f])["resident_pct"] == 100.0
    assert cache.residency([f], size=1 << 20)["bytes"] == 1 << 20


def test_mincore_and_cachestat_agree(tmp_path, monkeypatch):
    f = tmp_path / "r.dat"
    native.layout([f], 1 << 20)
    cache.evict([f])
    with open(f, "rb") as fh:
        fh.read(256 << 10)
    a = cache.residency([f])
    monkeypatch.setattr(cache, "_cachestat_ok", [False])  # force the mincore path
    b = cache.residency([f])
    assert b["method"] == "mincore"
    assert a["resident_bytes"] == b["resident_bytes"]
    assert b["resident_bytes"] >= 256 << 10


def test_drop_never_touches_the_hosts_whole_cache(tmp_path, monkeypatch):
    import builtins

    f = tmp_path / "r.dat"
    native.layout([f], 64 << 10)
    opened = []
    real_open = builtins.open

    def spy(path, *a, **k):
        opened.append(str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    assert cache.prepare("drop", [f]) == "fadvise_dontneed"
    assert not any("drop_caches" in p for p in opened)


def test_io_drop_reports_measured_residency(runner, tmp_path):
    d = run_json(runner, ["io", "seqread", "--target", str(tmp_path / "t"), "--size", "2MiB",
                          "--results-dir", str(tmp_path / "r")])
    c = d["cache"]
    assert c["policy"] == "drop"
    assert c["method"] == "fadvise_dontneed"
    assert c["resident_start_pct"] < 5.0
    assert "resident at start" in c["note"]
    assert c["resident_end_pct"] == 100.0  # a full buffered read leaves it all cached
    p = d["phases"][0]
    assert p["metrics"]["resident_start_pct"] == c["resident_start_pct"]


def test_io_result_carries_depth_audit_and_cpu(runner, tmp_path):
    d = run_json(runner, ["io", "randread", "--target", str(tmp_path / "t"), "--size", "2MiB",
                          "-b", "4k", "-q", "4", "--jobs", "2", "--cache", "direct",
                          "--results-dir", str(tmp_path / "r")])
    p = d["phases"][0]
    v = p["metrics"]["verify"]
    assert v["depth"]["requested"] == 8
    assert v["depth"]["little"] > 0
    assert 0 < v["depth"]["in_flight_mean"] <= 8.001
    a = v["audit"]
    assert a["measured_bytes"] == p["bytes"] == 2 * (2 << 20)
    assert a["counter"] in ("rchar", "read_bytes")
    assert a["counter_bytes"] >= p["bytes"]
    assert a["agrees"] is True
    assert v["cpu_s"] >= 0
    assert v["cpu_s_per_gb"] is not None


@pytest.mark.fio
def test_fio_result_is_audited_too(runner, tmp_path, have_fio):
    d = run_json(runner, ["io", "seqread", "--target", str(tmp_path / "t"), "--size", "4MiB",
                          "--engine", "fio", "--results-dir", str(tmp_path / "r")])
    a = d["phases"][0]["metrics"]["verify"]["audit"]
    assert a["counter"] == "rchar"  # fio psync: read(2) calls, counted once fio is reaped
    assert a["agrees"] is True


def test_audit_flags_a_disagreement(tmp_path):
    w = verify.Window([tmp_path])
    w.close()
    phase = {"name": "x", "bytes": 10 << 20, "direction": "read", "seconds": 1.0, "ops": 10,
             "latency_ns": {"mean": 1e6}, "metrics": {}}
    warn = verify.annotate(phase, w, requested_depth=32, counter="rchar", allowance={},
                           direct=False)
    assert phase["metrics"]["verify"]["audit"]["agrees"] is False
    assert any("byte audit" in x for x in warn)
    assert phase["metrics"]["verify"]["depth"]["low"] is True  # 0.01 in flight of 32
    assert any("queue depth" in x for x in warn)


@pytest.mark.skipif(os.geteuid() == 0, reason="as root drop-global is allowed")
def test_drop_global_needs_root(runner, tmp_path):
    res = runner.invoke(cli, ["io", "seqread", "--target", str(tmp_path / "t"),
                              "--cache", "drop-global"])
    assert res.exit_code == 2
    assert "needs root" in res.output
    assert not (tmp_path / "t").exists()
