"""The run-level byte audit (iobench.verify.judge_run through iobench.runner.run): every
kind's result carries the kernel's counts beside the bytes its phases measured, the CPU
seconds per GB moved, and a warning when they disagree by more than 1% beyond start-up."""

import json
import os
from pathlib import Path

from iobench import dist, runner, verify
from iobench.cli import cli
from iobench.kinds.base import Ctx, RunOptions
from iobench.results import Recorder, Result, load, make_phase


def _result(results_dir: Path) -> dict:
    (path,) = results_dir.glob("*/result.json")
    return json.loads(path.read_text())


def test_io_run_carries_the_audit_and_the_header_shows_it(runner, tmp_path):
    r = runner.invoke(cli, ["io", "seqread", "--target", str(tmp_path / "t"),
                             "--results-dir", str(tmp_path / "r"), "--size", "1MiB",
                             "--block-size", "64KiB", "--cache", "allow"])
    assert r.exit_code == 0, r.output
    d = _result(tmp_path / "r")
    a = d["audit"]
    assert a["measured_bytes"] == {"read": 1 << 20, "write": 0}
    (check,) = a["checks"]
    assert check["counter"] == "rchar"  # os.preadv: the read(2) family
    assert check["agrees"] is True
    assert check["measured_bytes"] == 1 << 20
    # the layout's 1 MiB of writes were declared untimed, so they are not a disagreement
    assert a["untimed_bytes"]["wchar"] >= 1 << 20
    assert a["cpu_s"] >= 0
    assert a["cpu_s_per_gb"] is not None
    assert a["agrees"] is True
    assert not any("byte audit" in w for w in d["warnings"])
    assert "byte audit (agrees): rchar" in r.output
    assert "CPU" in r.output
    assert "s/GB" in r.output


def test_datagen_run_carries_the_audit_of_its_writes(runner, tmp_path):
    r = runner.invoke(cli, ["datagen", "unet3d", "--dataset-size", "2MiB", "--jobs", "1",
                             "--target", str(tmp_path / "t"), "--results-dir",
                             str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    d = _result(tmp_path / "r")
    a = d["audit"]
    written = sum(p["bytes"] for p in d["phases"] if p["direction"] == "write")
    assert written > 0
    assert a["measured_bytes"]["write"] == written
    wchar = next(c for c in a["checks"] if c["counter"] == "wchar")
    assert wchar["measured_bytes"] == written
    assert wchar["agrees"] is True, a
    assert a["agrees"] is True
    assert "byte audit (agrees): wchar" in r.output


def _run_body(tmp_path: Path, body) -> Result:
    rec = Recorder(kind="io", name="audit-test", spec={})
    out = runner.run(rec, body, RunOptions(target=tmp_path, results_dir=tmp_path / "r"),
                     Ctx(world=dist.world()))
    return out.result


def _read(path: Path, n: int) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        got = 0
        while got < n:
            b = os.pread(fd, min(1 << 20, n - got), got)
            if not b:
                break
            got += len(b)
        return got
    finally:
        os.close(fd)


def _phase(nbytes: int) -> dict:
    return make_phase("read", nbytes=nbytes, seconds=0.01, ops=1, direction="read",
                      metrics={"queue": "threads"})


def test_a_forced_disagreement_is_a_warning_and_untimed_io_is_not(tmp_path):
    f = tmp_path / "data.bin"
    f.write_bytes(os.urandom(4 << 20))

    def honest(rec: Recorder) -> None:
        with verify.untimed():  # e.g. a reference read outside the phases
            _read(f, 4 << 20)
        rec.add_phase(_phase(_read(f, 4 << 20)))

    ok = _run_body(tmp_path, honest)
    assert ok.audit["agrees"] is True, ok.audit
    assert ok.audit["untimed_bytes"]["rchar"] >= 4 << 20
    assert not ok.warnings

    def claims_twice(rec: Recorder) -> None:  # measures 8 MiB, reads 4 MiB
        rec.add_phase(_phase(2 * _read(f, 4 << 20)))

    bad = _run_body(tmp_path, claims_twice)
    (check,) = bad.audit["checks"]
    assert check["agrees"] is False
    assert bad.audit["agrees"] is False
    assert any(w.startswith("byte audit: the phases measured 8,388,608 bytes, the kernel's "
                            "rchar") for w in bad.warnings), bad.warnings
    # saved with the result, and read back
    assert load(bad.run_dir).audit["checks"][0]["agrees"] is False

    def reads_more(rec: Recorder) -> None:  # 8 MiB read besides the 4 MiB measured
        _read(f, 4 << 20)
        _read(f, 4 << 20)
        rec.add_phase(_phase(_read(f, 4 << 20)))

    over = _run_body(tmp_path, reads_more)
    assert over.audit["agrees"] is False
    assert any("(+200.0%" in w or "(+20" in w for w in over.warnings), over.warnings

    def reads_a_little_more(rec: Recorder) -> None:  # a surplus under the floor
        _read(f, 256 << 10)
        rec.add_phase(_phase(_read(f, 4 << 20)))

    assert _run_body(tmp_path, reads_a_little_more).audit["agrees"] is True


def test_phases_counted_elsewhere_are_left_out():
    p = _phase(100)
    assert verify.phase_counter(p) == "rchar"
    assert verify.phase_counter({**p, "metrics": {"summary": True}}) is None
    assert verify.phase_counter({**p, "metrics": {"client": "a"}}) is None
    assert verify.phase_counter({**p, "engine": "ram"}) is None
    assert verify.phase_counter({**p, "direction": "sync"}) is None
    assert verify.phase_counter({**p, "metrics": {"queue": "io_uring"}}) == "read_bytes"
    assert verify.phase_counter({**p, "engine": "fio", "metrics": {}}, "libaio") == "read_bytes"


def test_under_mpi_the_audit_says_why_it_is_skipped(tmp_path):
    w = verify.RunWindow(tmp_path).close()
    a = verify.judge_run(w, [_phase(1 << 20)], ranks=4)
    assert "rank 0 only" in a["skipped"]
    assert "checks" not in a
    assert not a["warnings"]
    assert verify.audit_line(a).startswith("byte audit: under MPI (4 ranks)")


def test_a_result_without_an_audit_still_loads():
    rec = Recorder(kind="io", name="x", spec={})
    d = rec.to_dict()
    assert "audit" not in d
    assert Result.from_dict(d).audit == {}
    rec.audit = {"agrees": True, "checks": []}
    assert Result.from_dict(rec.to_dict()).audit["agrees"] is True
