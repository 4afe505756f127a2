"""`iobench io` under real mpirun: totals equal the single-process run's, failures bounded."""

import contextlib
import os
import signal
import subprocess
import sys

import pytest

from .conftest import mpi_env, only_result, single

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize(("np_", "pattern"), [(2, "seqwrite"), (2, "seqread"), (3, "randread")])
def test_ranks_total_equals_single_process(mpirun, tmp_path, np_, pattern):
    common = ["io", pattern, "--size", "1MiB", "-b", "64k"]
    res = tmp_path / "r"
    mpirun(np_, [*common, "--target", str(tmp_path / "t"), "--results-dir", str(res)])
    d = only_result(res)  # only rank 0 writes
    ref = single([*common, "--jobs", str(np_), "--target", str(tmp_path / "t1"),
                  "--results-dir", str(tmp_path / "r1")])
    p, q = d["phases"][0], ref["phases"][0]
    assert d["status"]["state"] == "ok"
    assert p["bytes"] == q["bytes"] == np_ * 1024 * 1024
    assert p["ops"] == q["ops"] == np_ * 16
    assert p["latency_ns"]["count"] == p["ops"]  # merged histogram holds every rank's I/Os
    assert p["metrics"]["ranks"] == np_
    assert p["metrics"]["first_done_s"] <= p["metrics"]["last_done_s"]
    assert d["sysinfo"]["mpi"]["ranks"] == np_
    assert d["metrics"]["ranks"] == np_
    names = sorted(f.name for f in (tmp_path / "t" / "io").glob("*.dat"))
    assert names == [f"job{i}.dat" for i in range(np_)]


def test_only_rank0_prints(mpirun, tmp_path):
    p = mpirun(2, ["io", "seqwrite", "--size", "256k", "-b", "64k", "--target",
                   str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    assert p.stdout.count("iobench io seqwrite") == 1
    assert p.stderr.count("result:") == 1


def test_bad_input_reported_once(mpirun, tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("keep")
    p = mpirun(2, ["io", "seqwrite", "--size", "256k", "-b", "64k", "--target",
                   str(tmp_path / "foreign"), "--results-dir", str(tmp_path / "r")],
               check=False)
    assert p.returncode == 2
    assert p.stderr.count("not empty and has no .iobench marker") == 1


def test_rank_error_names_rank_and_fails(mpirun, tmp_path):
    tgt = tmp_path / "t"
    args = ["io", "seqread", "--size", "256k", "-b", "64k", "--target", str(tgt)]
    mpirun(2, [*args, "--results-dir", str(tmp_path / "r0")])
    bad = tgt / "io" / "job1.dat"
    bad.unlink()
    bad.mkdir()  # rank 1 cannot lay out or read its file
    p = mpirun(2, [*args, "--results-dir", str(tmp_path / "r")], check=False, timeout=60)
    assert p.returncode == 1
    assert "rank 1" in p.stderr
    assert p.stderr.count("error: rank 1") == 1
    d = only_result(tmp_path / "r")
    assert d["status"]["state"] == "failed"
    assert "rank 1" in d["status"]["reason"]


def test_killed_rank_bounded_exit_and_failed_result(tmp_path, mpirun):
    """SIGKILL of rank 1 once the measured phase is under way (the ranks' reads seen in
    /proc, not a fixed sleep): mpirun ends within a bound (a timeout, not a timing
    assert), its line names the dead rank, and rank 0's result is failed."""
    from iobench.engines.proctree import descendants

    from .test_mpi_faults import _io, _rank_of, _wait

    tgt = tmp_path / "t"
    res = tmp_path / "r"
    cmd = ["mpirun", "-np", "2", "--oversubscribe", sys.executable, "-m", "iobench", "io",
           "randread", "--size", "2MiB", "-b", "4k", "--runtime", "60s", "--cache", "allow",
           "--target", str(tgt), "--results-dir", str(res)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpi_env())
    try:
        _wait(lambda: bool(list(res.glob("*/result.json"))), proc, "the provisional result")
        base = _io(descendants(proc.pid), "rchar")  # then reads: the 60 s phase is running
        _wait(lambda: _io(descendants(proc.pid), "rchar") - base >= 4 * 2**20, proc, "reads")
        victims = [p for p in descendants(proc.pid) if _rank_of(p) == 1]
        assert victims, "rank 1 not found"
        os.kill(min(victims), signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=30)  # bounded: no hang
        except subprocess.TimeoutExpired:
            pytest.fail("mpirun still running 30 s after rank 1 was killed (deadlock)")
    finally:
        for p in descendants(proc.pid):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "rank 1" in (out + err)  # mpirun's line names the dead rank
    d = only_result(res)
    assert d["status"]["state"] == "failed"
    assert "rank 1" in d["status"]["reason"], d["status"]["reason"]
