"""`iobench io ... --engine fio --fio-hosts FILE` against two real `fio --server` daemons
on 127.0.0.1: per-client and aggregate phases, distinct files per client, merged
latency histograms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iobench.cli import cli
from iobench.stats import Histogram

pytestmark = pytest.mark.fio
SIZE = 256 * 1024


def run_json(runner, tmp_path, hostfile, pattern, *extra):
    res = runner.invoke(cli, ["io", pattern, "--engine", "fio", "--fio-hosts", str(hostfile),
                              "--target", str(tmp_path / "t"), "--results-dir",
                              str(tmp_path / "r"), "--size", "256k", "--jobs", "2",
                              "--json", *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.parametrize(("pattern", "extra"), [
    ("randread", ["-b", "4k"]),
    ("seqread", ["-b", "64k", "--cache", "direct"]),
    ("seqwrite", ["-b", "64k"]),
])
def test_two_servers_per_client_and_aggregate(runner, tmp_path, hostfile, fio_servers,
                                              pattern, extra):
    d = run_json(runner, tmp_path, hostfile, pattern, *extra)
    assert d["status"]["state"] == "ok"
    names = [f"127.0.0.1:{p}" for p in fio_servers]
    phases = {p["name"]: p for p in d["phases"]}
    agg = d["phases"][0]
    clients = [phases[f"{pattern}@{n}"] for n in names]
    assert agg["name"] == pattern
    assert len(d["phases"]) == 3
    bs = 4096 if pattern == "randread" else 65536
    # 2 clients x 2 jobs x one pass over 256 KiB
    assert agg["bytes"] == sum(c["bytes"] for c in clients) == 4 * SIZE
    assert agg["ops"] == sum(c["ops"] for c in clients) == 4 * SIZE // bs
    for c, n in zip(clients, names, strict=True):
        assert c["bytes"] == 2 * SIZE
        assert c["metrics"]["client"] == n
        assert c["engine"] == "fio"
    assert agg["seconds"] == max(c["seconds"] for c in clients)
    assert agg["bytes_per_s"] == pytest.approx(agg["bytes"] / agg["seconds"])
    m = agg["metrics"]
    assert m["clients"] == 2
    assert m["client_names"] == names
    assert m["client_gb_per_s_min"] <= m["client_gb_per_s_median"] <= m["client_gb_per_s_max"]
    assert d["metrics"]["clients"] == 2
    assert d["metrics"]["bytes"] == 4 * SIZE
    # percentiles of the aggregate = those of the clients' histograms merged
    hists = [Histogram.from_dict(c["histogram"]) for c in clients]
    merged = Histogram.merged(hists)
    mine = Histogram.from_dict(agg["histogram"])
    assert mine.count == agg["ops"]
    assert np.array_equal(mine.counts, merged.counts)
    assert agg["latency_ns"]["p99"] == merged.percentile(99)
    assert agg["latency_ns"]["max"] == max(h.max for h in hists)
    # each client used its own files, same paths under the target
    io = tmp_path / "t" / "io"
    for f in ("h0.job0.dat", "h0.job1.dat", "h1.job0.dat", "h1.job1.dat"):
        assert (io / f).stat().st_size == SIZE
    assert d["spec"]["fio_hosts"] == [f"127.0.0.1,{fio_servers[0]}",
                                      f"ip:127.0.0.1,{fio_servers[1]}"]
    assert str(io / "h1.job1.dat") in d["spec"]["files"]
    fio_info = agg["fio"]
    assert len(fio_info["jobfiles"]) == 2
    assert "h1.job0.dat" in fio_info["jobfiles"][1]
    assert "h1." not in fio_info["jobfiles"][0]
    assert f"--client=127.0.0.1,{fio_servers[0]}" in fio_info["command"]
    if pattern == "seqread":
        assert d["cache"]["method"] == "o_direct"
        assert "direct=1" in fio_info["jobfiles"][0]
    if not pattern.endswith("write"):
        # files were laid out by the setup pass, not while the other client was measured
        assert not any("Laying out IO file" in n for n in fio_info["notes"])
    if pattern == "randread":
        assert d["cache"]["method"] == "fio_invalidate"
        assert "invalidate=1" in fio_info["jobfiles"][0]
    assert len(list((tmp_path / "r").glob("*/result.json"))) == 1


def test_table_output_names_each_client(runner, tmp_path, hostfile, fio_servers):
    res = runner.invoke(cli, ["io", "seqread", "--engine", "fio", "--fio-hosts", str(hostfile),
                              "--target", str(tmp_path / "t"), "--results-dir",
                              str(tmp_path / "r"), "--size", "128k", "-b", "64k"])
    assert res.exit_code == 0, res.output
    for p in fio_servers:
        assert f"seqread@127.0.0.1:{p}" in res.output
