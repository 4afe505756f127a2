"""The io command and the small commands, through CliRunner on small real files."""

import json
from pathlib import Path

import pytest

from iobench.cli import cli
from iobench.results import load


def run_json(runner, args):
    res = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.parametrize("pattern", ["seqwrite", "seqread", "randread", "randwrite"])
def test_io_native_counts_bytes(runner, tmp_path, pattern):
    tgt = tmp_path / "t"
    d = run_json(runner, ["io", pattern, "--target", str(tgt), "--size", "1MiB",
                          "--block-size", "64k", "--jobs", "2",
                          "--results-dir", str(tmp_path / "r")])
    p = d["phases"][0]
    assert d["status"]["state"] == "ok"
    assert p["engine"] == "native"
    if pattern.startswith("seq"):
        assert p["bytes"] == 2 * 1024 * 1024  # one full pass of each job's file
        assert p["ops"] == 2 * 16
    else:
        assert p["ops"] == 2 * 16  # one pass = size / bs random offsets per job
    assert p["latency_ns"]["count"] == p["ops"]
    assert d["cache"]["policy"] == "drop"
    for f in ("job0.dat", "job1.dat"):
        assert (tgt / "io" / f).stat().st_size == 1024 * 1024
    if pattern.endswith("write"):
        assert d["phases"][1]["name"] == "fsync"
        assert p["metrics"]["includes_fsync"] is True
    saved = list((tmp_path / "r").glob("*/result.json"))
    assert len(saved) == 1


def test_io_direct_queue_depth_runtime(runner, tmp_path):
    d = run_json(runner, ["io", "randread", "--target", str(tmp_path / "t"), "--size", "2MiB",
                          "-b", "4k", "-q", "4", "--runtime", "300ms", "--cache", "direct",
                          "--results-dir", str(tmp_path / "r")])
    p = d["phases"][0]
    assert d["cache"]["method"] == "o_direct"
    assert p["seconds"] >= 0.3 * 0.98  # time-based: runs (at least) its runtime; no upper
    # bound (a busy machine may overshoot the deadline by a scheduling delay)
    assert p["bytes"] == p["ops"] * 4096
    assert len(d["phases"][0]["timeline"]["bytes"]) >= 1


def test_report_compare_csv(runner, tmp_path):
    args = ["io", "seqread", "--target", str(tmp_path / "t"), "--size", "1MiB",
            "--results-dir", str(tmp_path / "r")]
    run_json(runner, args)
    run_json(runner, args)
    dirs = sorted((tmp_path / "r").iterdir())
    res = runner.invoke(cli, ["report", str(dirs[0]), "--csv", str(tmp_path / "x.csv")])
    assert res.exit_code == 0, res.output
    assert "GB/s" in res.output
    rows = (tmp_path / "x.csv").read_text().splitlines()
    assert rows[0] == "result,kind,name,status,phase,engine,metric,value,unit"
    assert any(",seqread,native,gb_per_s," in r for r in rows)
    res = runner.invoke(cli, ["compare", str(dirs[0]), str(dirs[1])])
    assert res.exit_code == 0, res.output
    assert "delta" in res.output
    # a different pattern is refused unless --force
    run_json(runner, ["io", "seqwrite", "--target", str(tmp_path / "t"), "--size", "1MiB",
                      "--results-dir", str(tmp_path / "r2")])
    other = next((tmp_path / "r2").iterdir())
    res = runner.invoke(cli, ["compare", str(dirs[0]), str(other)])
    assert res.exit_code == 2
    assert "compare like with like or pass --force" in res.output
    res = runner.invoke(cli, ["compare", str(dirs[0]), str(other), "--force"])
    assert res.exit_code == 0


def test_clean_and_sysinfo(runner, tmp_path):
    tgt = tmp_path / "t"
    run_json(runner, ["io", "seqwrite", "--target", str(tgt), "--size", "256k", "-b", "64k",
                      "--results-dir", str(tmp_path / "r")])
    res = runner.invoke(cli, ["clean", "--target", str(tgt)])
    assert res.exit_code == 0
    assert "removed 1" in res.output
    assert not tgt.exists()  # iobench created the directory, so it goes too
    res = runner.invoke(cli, ["sysinfo", "--json", "--target", str(tmp_path)])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["target"]["fs_type"]


def test_version(runner):
    res = runner.invoke(cli, ["--version"])
    assert res.exit_code == 0
    assert "iobench, version" in res.output


BAD = [
    (["io", "seqread", "--size", "12qb"], "--size: unknown unit 'qb'"),
    (["io", "seqread", "--size", "0"], "--size: '0' must be greater than zero"),
    (["io", "seqread", "--size", "-5k"], "cannot parse '-5k' as a size"),
    (["io", "seqread", "--block-size", "1.5"], "not a whole number of bytes"),
    (["io", "seqread", "--size", "4k", "--block-size", "1m"], "larger than --size"),
    (["io", "seqread", "--block-size", "1000", "--cache", "direct"], "multiple of 4096"),
    (["io", "seqread", "--jobs", "0"], "--jobs"),
    (["io", "seqread", "--queue-depth", "-1"], "--queue-depth"),
    (["io", "seqread", "--runtime", "fast"], "cannot parse 'fast' as a duration"),
    (["io", "seqread", "--cache", "sometimes"], "'sometimes' is not one of"),
    (["io", "seqread", "--engine", "spdk"], "'spdk' is not one of"),
    (["io", "seqrd"], "'seqrd' is not one of"),
    (["io", "seqread", "--ioengine", "posixaio"], "'posixaio' is not one of"),
    (["compare", "only-one"], "at least two results"),
    (["report", "/nonexistent/result"], "no such result file or directory"),
    (["sysinfo", "--target", "/nonexistent/dir"], "does not exist"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_one_line_exit_2(runner, tmp_path, args, message):
    if args[0] == "io":
        args = [*args, "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")]
    res = runner.invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output  # one line, no usage block
    assert res.output.startswith("error: ")


def test_bad_targets(runner, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    cases = [
        (str(foreign), "not empty and has no .iobench marker"),
        ("/dev/null", "character device"),
        ("/proc/x", "under /proc"),
        ("/sys/fs/x", "under /sys"),
    ]
    for tgt, msg in cases:
        res = runner.invoke(cli, ["io", "seqwrite", "--target", tgt, "--size", "4k", "-b", "4k",
                                  "--results-dir", str(tmp_path / "r")])
        assert res.exit_code == 2, (tgt, res.output)
        assert msg in res.output
        assert len(res.output.strip().splitlines()) == 1
    assert (foreign / "keep.txt").read_text() == "x"
    res = runner.invoke(cli, ["clean", "--target", str(foreign)])
    assert res.exit_code == 2
    assert "refusing to touch it" in res.output
    assert (foreign / "keep.txt").exists()


def test_space_shortfall_refused_before_writing(runner, tmp_path):
    res = runner.invoke(cli, ["io", "seqwrite", "--target", str(tmp_path / "t"),
                              "--size", "900TiB", "--block-size", "1m",
                              "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "are free" in res.output
    assert not (tmp_path / "t" / "io" / "job0.dat").exists()


def test_future_result_refused(runner, tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"schema_version": 42, "kind": "io", "name": "x", "phases": []}))
    res = runner.invoke(cli, ["report", str(f)])
    assert res.exit_code == 2
    assert "schema 42" in res.output


def test_partial_result_on_interrupt(tmp_path):
    """SIGINT mid-run: exit 130, the result is written and marked partial."""
    import signal
    import subprocess
    import sys
    import time

    tgt = tmp_path / "t"
    cmd = [sys.executable, "-m", "iobench", "io", "randread", "--target", str(tgt),
           "--size", "4MiB", "-b", "4k", "--runtime", "30s", "--cache", "allow",
           "--results-dir", str(tmp_path / "r")]
    from iobench.engines.proctree import descendants

    def rchar() -> int:  # bytes read by the process tree (/proc/PID/io)
        total = 0
        for pid in descendants(p.pid):
            try:
                for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                    if line.startswith("rchar:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120  # readiness: the provisional result, then reads
    while not list((tmp_path / "r").glob("*/result.json")):
        assert p.poll() is None, "never started"
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.01)
    base = rchar()
    while rchar() - base < 4 * 2**20:  # the measured phase is reading
        assert p.poll() is None, "never read"
        assert time.monotonic() < deadline, "never read"
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130, err
    saved = list((tmp_path / "r").glob("*/result.json"))
    assert len(saved) == 1
    r = load(saved[0])
    assert r.status == "partial"
    assert "interrupted" in (r.reason or "")
    assert Path(saved[0]).stat().st_size > 0


@pytest.mark.fio
@pytest.mark.parametrize("pattern", ["seqwrite", "seqread", "randread"])
def test_io_fio_engine_same_files(runner, tmp_path, have_fio, pattern):
    """Both engines on the same files: identical byte counts for one pass."""
    tgt = tmp_path / "t"
    common = ["io", pattern, "--target", str(tgt), "--size", "1MiB", "-b", "64k", "--jobs", "2",
              "--results-dir", str(tmp_path / "r")]
    nat = run_json(runner, [*common, "--engine", "native"])
    fio = run_json(runner, [*common, "--engine", "fio"])
    assert fio["engine"] == "fio"
    assert fio["phases"][0]["engine"] == "fio"
    assert fio["phases"][0]["bytes"] == nat["phases"][0]["bytes"] == 2 * 1024 * 1024
    assert fio["phases"][0]["latency_ns"]["p99"] > 0
    assert (tgt / "io" / "job1.dat").stat().st_size == 1024 * 1024
    assert sorted(p.name for p in (tgt / "io").iterdir() if p.suffix == ".dat") == [
        "job0.dat", "job1.dat"]
