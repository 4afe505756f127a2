"""The fio parser on golden outputs of real fio 3.33 runs (tests/fio/data, made by
make_golden.sh), and the job file builder; no fio needed.

Expected numbers were read off the JSON files by hand (see the comments).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iobench.engines import IOSpec, fio
from iobench.errors import RunFailed, UsageError

DATA = Path(__file__).parent / "data"


def golden(fname: str) -> dict:
    return fio.load_output((DATA / fname).read_text())


def phases(fname: str, **kw) -> list[dict]:
    return fio.parse(golden(fname), **kw)


def fio_pct(name: str, job: int, direction: str, key: str) -> float:
    """fio's own percentile from the (last) document of a golden file."""
    return golden(name)["jobs"][job][direction]["clat_ns"]["percentile"][key]


def close(a: float, b: float, rel: float = 0.01) -> bool:
    return abs(a - b) <= rel * abs(b)


def test_seqread_one_job_json_uses_fio_percentiles():
    (p,) = phases("seqread-1job.json")
    # read: io_bytes 4194304, total_ios 64, runtime 1 ms, clat N=64 min 7410 max 63736
    assert p["name"] == "seqread:read"
    assert p["direction"] == "read"
    assert p["engine"] == "fio"
    assert (p["bytes"], p["ops"], p["seconds"]) == (4194304, 64, 0.001)
    assert p["bytes_per_s"] == pytest.approx(4194304000)  # = fio's bw_bytes
    assert p["ops_per_s"] == pytest.approx(64000)
    lat = p["latency_ns"]
    assert (lat["p50"], lat["p90"]) == (8384, 9280)
    # fio's p99 bucket value 63744 lies past the exact max 63736: clamped to it
    assert lat["p99"] == lat["p99_9"] == lat["max"] == 63736
    assert lat["min"] == 7410
    assert lat["mean"] == pytest.approx(9375.59375)
    assert p["histogram"] is None
    assert p["metrics"]["latency_method"] == "fio percentiles"
    assert p["metrics"]["fio_version"] == "fio-3.33"


def test_seqread_one_job_jsonplus_bins_match_fio_percentiles():
    (p,) = phases("seqread-1job.jsonplus.json")
    lat = p["latency_ns"]
    assert p["metrics"]["latency_method"] == "json+ bins merged"
    assert lat["count"] == 64
    assert close(lat["p50"], fio_pct("seqread-1job.jsonplus.json", 0, "read", "50.000000"))
    assert close(lat["p90"], fio_pct("seqread-1job.jsonplus.json", 0, "read", "90.000000"))
    # 64 samples: p99 is the largest one, fio's exact max
    assert lat["p99"] == lat["max"] == 74175
    assert lat["min"] == 9347
    assert lat["mean"] == pytest.approx(20190.84375)
    assert p["seconds"] == 0.002
    assert p["bytes_per_s"] == pytest.approx(2097152000)  # fio's bw_bytes


def test_two_jobs_json_without_bins_refuses_to_average_percentiles():
    (p,) = phases("seqread-2jobs.json")
    # two jobs x (4194304 bytes, 1024 ios, runtime 1 ms)
    assert (p["bytes"], p["ops"], p["seconds"]) == (8388608, 2048, 0.001)
    lat = p["latency_ns"]
    assert all(lat[k] is None for k in ("p50", "p90", "p99", "p99_9", "p99_99"))
    # what merges exactly is still there: max of maxes, min of mins, N-weighted mean
    assert lat["max"] == 7570
    assert lat["min"] == 409
    assert lat["mean"] == pytest.approx((774.162109 + 830.654297) / 2)
    assert "not averaged" in p["metrics"]["percentiles_unavailable"]
    assert p["metrics"]["fio_jobs"] == 2


def test_two_jobs_jsonplus_merges_bins_never_averages():
    name = "seqread-2jobs.jsonplus.json"
    (p,) = phases(name)
    doc = golden(name)
    values = np.repeat(
        [int(v) for j in doc["jobs"] for v in j["read"]["clat_ns"]["bins"]],
        [c for j in doc["jobs"] for c in j["read"]["clat_ns"]["bins"].values()],
    )
    assert values.size == 2048
    lat = p["latency_ns"]
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99_9", 99.9)):
        assert close(lat[key], float(np.percentile(values, q, method="inverted_cdf")))
    # job 0 p99 3024, job 1 p99 29056: their mean (16040) is not the merged p99 (~7.8 us)
    assert close(lat["p99"], 7840, 0.01)
    assert lat["p99_99"] == lat["max"] == 178477  # exact max, not fio's bucket 179200
    # runtimes 1 and 3 ms: the group took the longest job's time
    assert p["seconds"] == 0.003
    assert p["bytes_per_s"] == pytest.approx(8388608 / 0.003)
    assert p["metrics"]["sys_cpu_pct"] == pytest.approx(25.0)  # mean of 0 and 50


def test_randwrite_end_fsync():
    name = "randwrite-end-fsync.jsonplus.json"
    (p,) = phases(name)  # the sync block has total_ios 0: no fsync phase
    assert p["direction"] == "write"
    assert (p["bytes"], p["ops"], p["seconds"]) == (2097152, 512, 0.008)
    assert p["ops_per_s"] == pytest.approx(64000)
    assert p["metrics"]["includes_fsync"] is True
    for key, fkey in (("p50", "50.000000"), ("p90", "90.000000"), ("p99", "99.000000")):
        assert close(p["latency_ns"][key], fio_pct(name, 0, "write", fkey))
    assert p["metrics"]["usr_cpu_pct"] == pytest.approx(14.285714)
    assert p["histogram"]["count"] == 512


def test_fsync_every_n_gives_an_fsync_phase():
    write, sync = phases("seqwrite-fsync16.jsonplus.json", name="seqwrite")
    assert write["name"] == "seqwrite"
    assert (write["bytes"], write["ops"]) == (2097152, 32)
    assert "includes_fsync" not in write["metrics"]
    assert sync["name"] == "seqwrite-fsync"
    assert sync["direction"] == "sync"
    assert sync["ops"] == 1
    assert sync["latency_ns"]["p50"] == sync["latency_ns"]["max"] == 624093
    assert sync["seconds"] == pytest.approx(624093e-9)


def test_empty_percentile_blocks():
    # the read block has N=0 and no percentile key; the write block has no percentile
    doc = golden("write-no-percentiles.json")
    assert "percentile" not in doc["jobs"][0]["read"]["clat_ns"]
    assert "percentile" not in doc["jobs"][0]["write"]["clat_ns"]
    (p,) = fio.parse(doc)
    assert p["name"] == "nopct:write"
    assert p["bytes"] == 1048576
    lat = p["latency_ns"]
    assert all(lat[k] is None for k in ("p50", "p90", "p99", "p99_9", "p99_99"))
    assert (lat["min"], lat["max"]) == (8083, 27347)
    assert lat["mean"] == pytest.approx(11035.3125)
    assert p["metrics"]["percentiles_unavailable"] == "fio printed no percentiles"


def test_zero_samples_gives_none():
    hist, summary, how = fio.merge_latency([{"min": 0, "max": 0, "mean": 0.0, "N": 0}, {}])
    assert hist is None
    assert summary == {k: None for k in ("p50", "p90", "p99", "p99_9", "p99_99", "max", "mean")}
    assert how == "no samples"


def test_warning_line_before_json():
    doc = golden("warning-before-json.json")
    assert (DATA / "warning-before-json.json").read_text().startswith("fio: time_based")
    assert doc["iobench"]["notes"] == ["fio: time_based requires a runtime/timeout setting"]
    (p,) = fio.parse(doc)
    assert p["bytes"] == 1048576
    assert p["ops"] == 8
    assert p["latency_ns"]["p50"] == 54528
    assert p["latency_ns"]["p90"] == 148011  # fio's 148480 clamped to the exact max


def test_status_interval_documents_give_the_timeline():
    doc = golden("randread-status-interval.json")
    snaps = doc["iobench"]["snapshots"]
    # two interval documents (895 ms, 1896 ms) before the summary (2501 ms)
    assert [s["0"]["read"]["runtime_ms"] for s in snaps] == [895, 1896]
    (p,) = fio.parse(doc)
    assert p["seconds"] == 2.501
    assert (p["bytes"], p["ops"]) == (17922555904, 4375624)
    assert p["timeline"]["bytes"] == [5725851648, 13291159552 - 5725851648,
                                      17922555904 - 13291159552]
    assert sum(p["timeline"]["bytes"]) == p["bytes"]
    assert (p["latency_ns"]["p99"], p["latency_ns"]["p99_9"]) == (556, 1048)


def test_reporting_groups_are_separate_phases():
    fill, check = phases("two-groups.jsonplus.json")
    assert (fill["name"], fill["direction"], fill["bytes"]) == ("fill:write", "write", 1048576)
    assert (check["name"], check["direction"], check["bytes"]) == ("check:read", "read", 1048576)
    named = phases("two-groups.jsonplus.json", name="x")
    assert [p["name"] for p in named] == ["x-g0", "x-g1"]


def test_one_group_both_directions_named_by_direction():
    doc = golden("seqread-1job.json")
    job = doc["jobs"][0]
    job["write"] = dict(job["read"])  # as a randrw job would report
    out = fio.parse(doc, name="mix")
    assert [(p["name"], p["direction"]) for p in out] == [("mix-read", "read"),
                                                           ("mix-write", "write")]


def test_documents_split_text_and_json():
    text = ('fio: a warning\n{"fio version": "fio-3.33", "jobs": []}\nnote: between\n'
            '{ not json\n{"fio version": "x", "jobs": [1]}\n')
    docs, notes = fio.documents(text)
    assert [d["fio version"] for d in docs] == ["fio-3.33", "x"]
    assert notes == ["fio: a warning", "note: between", "{ not json"]


def test_output_without_json_is_a_run_failure():
    with pytest.raises(RunFailed, match="fio wrote no JSON result: fio: failed parsing rw=reed"):
        fio.load_output("fio: failed parsing rw=reed\n")
    with pytest.raises(RunFailed, match="no jobs"):
        fio.parse({"fio version": "fio-3.33", "jobs": []})


def test_golden_files_are_real_fio_output():
    for f in sorted(DATA.glob("*.json")):
        doc = fio.load_output(f.read_text())
        assert doc["fio version"] == "fio-3.33", f
        assert fio.parse(doc), f


# --- job files ----------------------------------------------------------------------------
def spec(**kw) -> IOSpec:
    base = {"pattern": "seqread", "size": 1 << 20, "block_size": 65536,
            "files": (Path("/t/io/job0.dat"), Path("/t/io/job1.dat")), "jobs": 2}
    base.update(kw)
    return IOSpec(**base)


def options(text: str) -> list[tuple[str, str]]:
    out = []
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith(";"):
            k, v = line.split("=", 1)
            out.append((f"{section}.{k}", v))
    return out


@pytest.mark.parametrize(("pattern", "rw"), [("seqread", "read"), ("seqwrite", "write"),
                                              ("randread", "randread"),
                                              ("randwrite", "randwrite")])
def test_jobfile_patterns(pattern, rw):
    opts = dict(options(fio.jobfile_for(spec(pattern=pattern), pattern)))
    assert opts["global.rw"] == rw
    assert opts["global.bs"] == "65536"
    assert opts["global.size"] == str(1 << 20)
    assert opts["global.randrepeat"] == "0"
    assert opts["global.invalidate"] == "0"
    assert opts["global.direct"] == "0"
    assert opts["global.percentile_list"] == "50:90:99:99.9:99.99"
    # one job section per file, in order: job i uses files[i], as the native engine
    assert opts[f"{pattern}.0.filename"] == "/t/io/job0.dat"
    assert opts[f"{pattern}.1.filename"] == "/t/io/job1.dat"
    writes = pattern.endswith("write")
    assert ("global.refill_buffers" in opts) == writes
    assert ("global.end_fsync" in opts) == writes
    assert "global.time_based" not in opts


def test_jobfile_runtime_direct_engine():
    opts = dict(options(fio.jobfile_for(
        spec(pattern="randread", runtime=1.5, direct=True, ioengine="libaio", queue_depth=32),
        "r")))
    assert opts["global.time_based"] == "1"
    assert opts["global.runtime"] == "1500ms"
    assert opts["global.direct"] == "1"
    assert opts["global.ioengine"] == "libaio"
    assert opts["global.iodepth"] == "32"
    assert "global.numjobs" not in opts


def test_jobfile_psync_depth_becomes_jobs_on_slices():
    s = spec(pattern="randread", block_size=4096, queue_depth=4)
    opts = dict(options(fio.jobfile_for(s, "r")))
    assert opts["global.iodepth"] == "1"
    assert opts["global.numjobs"] == "4"
    assert opts["global.size"] == opts["global.offset_increment"] == str((1 << 20) // 4)
    assert any("4 jobs per file" in w for w in fio.warnings_for(s))


def test_jobfile_escapes_colons_and_checks_files():
    s = spec(files=(Path("/t/a:b"),), jobs=1)
    assert "filename=/t/a\\:b" in fio.jobfile_for(s, "x")
    with pytest.raises(UsageError, match="--jobs 2 needs 2 files, got 1"):
        fio.jobfile_for(spec(files=(Path("/t/a"),)), "x")
    with pytest.raises(UsageError, match="smaller than --block-size"):
        fio.jobfile_for(spec(size=4096), "x")
    with pytest.raises(UsageError, match="ioengine 'mmap'"):
        fio.jobfile_for(spec(ioengine="mmap"), "x")


def test_libaio_buffered_warns():
    s = spec(pattern="randread", ioengine="libaio", queue_depth=8)
    assert any("only with O_DIRECT" in w for w in fio.warnings_for(s))
    assert fio.warnings_for(spec()) == []


def test_jobfile_for_files_deals_files_round_robin():
    files = [Path(f"/d/f{i}") for i in range(5)]
    text = fio.jobfile_for_files(files, rw="write", block_size=1 << 20, jobs=2, direct=True,
                                 size_per_file=2 << 20, end_fsync=True, name="ckpt")
    opts = options(text)
    d = dict(opts)
    assert d["ckpt.0.filename"] == "/d/f0:/d/f2:/d/f4"
    assert d["ckpt.1.filename"] == "/d/f1:/d/f3"
    assert (d["ckpt.0.nrfiles"], d["ckpt.0.size"]) == ("3", str(6 << 20))
    assert d["global.file_service_type"] == "sequential"
    assert d["global.end_fsync"] == "1"
    with pytest.raises(UsageError, match="size_per_file"):
        fio.jobfile_for_files(files, rw="write", block_size=4096, jobs=1, direct=False)
    with pytest.raises(UsageError, match="rw 'randrw'"):
        fio.jobfile_for_files(files, rw="randrw", block_size=4096, jobs=1, direct=False)


def test_fio_missing_is_tool_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    from iobench.errors import ToolMissing

    with pytest.raises(ToolMissing, match="apt-get install fio") as e:
        fio.fio_binary()
    assert e.value.exit_code == 2


def test_golden_data_is_small():
    assert sum(f.stat().st_size for f in DATA.iterdir()) < 200_000
    json.loads((DATA / "seqread-1job.json").read_text())  # a plain single document
