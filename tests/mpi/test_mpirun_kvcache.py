"""`infer kvcache` under real mpirun: every rank replays the trace against its own tiers;
counters are summed, latency histograms merged (never max-of-percentiles)."""

import json

import pytest

from .conftest import only_result, single

mpi = pytest.mark.mpi
CB = 512 * 1024  # a 512-token chunk of the tiny model


@mpi
def test_kvcache_ranks_merged(mpirun, tmp_path):
    tr = tmp_path / "tr.jsonl"
    rows = [(1536, [1, 2, 3]), (2048, [1, 2, 4, 5]), (1600, [1, 2, 3]), (2560, [1, 2, 4, 5, 7])]
    tr.write_text("".join(json.dumps({"timestamp": 0, "input_length": n, "output_length": 1,
                                      "hash_ids": h}) + "\n" for n, h in rows))
    args = ["infer", "kvcache", "tiny", "--trace", str(tr), "--chunk-tokens", "512",
            "--users", "1", "-q", "1", "--capacity", "4MiB", "--search-requests", "2"]
    mpirun(2, [*args, "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    d = only_result(tmp_path / "r")
    ref = single([*args, "--target", str(tmp_path / "t1"), "--results-dir",
                  str(tmp_path / "r1")])
    m, m1 = d["metrics"], ref["metrics"]
    assert d["status"]["state"] == "ok"
    assert d["sysinfo"]["mpi"]["ranks"] == 2
    for key in ("storage_hits", "chunks_looked_up", "read_bytes", "write_bytes", "requests"):
        assert m[key] == 2 * m1[key], key
    assert m["storage_hits"] == 18
    assert m["storage_hit_ratio"] == pytest.approx(m1["storage_hit_ratio"])
    reads = next(p for p in d["phases"] if p["name"] == "kv chunk reads (storage)")
    assert reads["latency_ns"]["count"] == 18 == reads["ops"]  # both ranks' histograms
    assert reads["metrics"]["ranks"] == 2
    probes = [p for p in d["phases"] if p["name"].startswith("ttft probe")]
    assert probes
    assert all(p["ops"] == 4 for p in probes)  # 2 ranks x 1 user x 2 restores
    assert m["max_context_tokens"] >= 512


@mpi
def test_kvcache_disk_full_on_the_ranks_fails_the_run(mpirun, tmp_path, monkeypatch):
    monkeypatch.setenv("IOBENCH_TEST_KV_ENOSPC_AFTER", "5")
    p = mpirun(2, ["infer", "kvcache", "tiny", "--target", str(tmp_path / "t"),
                   "--results-dir", str(tmp_path / "r"), "--capacity", "8MiB",
                   "--requests", "20", "--no-search"], check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    d = only_result(tmp_path / "r")
    assert d["status"]["state"] == "failed"
    assert "rank 0" in d["status"]["reason"]
    assert "disk full" in d["status"]["reason"]
    assert not list((tmp_path / "t").rglob("*.kv"))
