"""`iobench fio JOBFILE --target DIR`: bad input (exit 2), fio failing (exit 1), real runs,
and Ctrl-C on the real command (exit 130, partial result, fio gone)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iobench.cli import cli
from iobench.results import load

JOB = """\
[global]
bs=64k
size=1m
invalidate=0
[fill]
rw=write
filename=data.bin
end_fsync=1
[check]
stonewall
rw=randread
bs=4k
filename=data.bin
numjobs=2
"""


def write_job(tmp_path: Path, text: str = JOB, name: str = "demo.fio") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def invoke(runner, tmp_path, *args):
    return runner.invoke(cli, ["fio", *map(str, args), "--results-dir", str(tmp_path / "r")])


def one_error_line(res, code: int, text: str) -> None:
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("error: "), res.stderr
    assert text in lines[0]
    assert "Traceback" not in res.output


def test_missing_jobfile(runner, tmp_path):
    res = invoke(runner, tmp_path, tmp_path / "nope.fio", "--target", tmp_path / "t")
    one_error_line(res, 2, "nope.fio: no such file; give the path of an fio job file")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()


def test_jobfile_is_a_directory(runner, tmp_path):
    res = invoke(runner, tmp_path, tmp_path, "--target", tmp_path / "t")
    one_error_line(res, 2, "is a directory")


def test_jobfile_not_text(runner, tmp_path):
    job = tmp_path / "bin.fio"
    job.write_bytes(b"\xff\xfe\x00bad")
    res = invoke(runner, tmp_path, job, "--target", tmp_path / "t")
    one_error_line(res, 2, "cannot read it as text")


def test_fio_missing(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    res = invoke(runner, tmp_path, write_job(tmp_path), "--target", tmp_path / "t")
    one_error_line(res, 2, "fio is not installed; install it with `apt-get install fio`")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("line", ["filename=/etc/passwd", "filename=../../outside.bin",
                                  "directory=/tmp", "filename=ok.bin:/dev/sda"])
def test_paths_outside_the_target_are_refused(runner, tmp_path, line, have_fio):
    job = write_job(tmp_path, f"[j]\nrw=write\nsize=64k\n{line}\n")
    res = invoke(runner, tmp_path, job, "--target", tmp_path / "t")
    one_error_line(res, 2, "is outside --target")
    assert f"{job}:4:" in res.stderr


def test_bad_timeout(runner, tmp_path):
    res = invoke(runner, tmp_path, write_job(tmp_path), "--target", tmp_path / "t",
                 "--timeout", "0")
    assert res.exit_code == 2
    assert "--timeout" in res.output


@pytest.mark.fio
def test_invalid_jobfile_fails_with_fio_tail(runner, tmp_path, have_fio):
    job = write_job(tmp_path, "[j]\nrw=reed\nsize=1m\nfilename=x\n", "bad.fio")
    res = invoke(runner, tmp_path, job, "--target", tmp_path / "t")
    one_error_line(res, 1, "fio failed (exit 1): ")
    assert "failed parsing rw=reed" in res.stderr
    (saved,) = (tmp_path / "r").glob("*/result.json")
    r = load(saved)
    assert r.status == "failed"
    assert "rw=reed" in (r.reason or "")


@pytest.mark.fio
def test_runs_a_jobfile_inside_the_target(runner, tmp_path, have_fio):
    job = write_job(tmp_path)
    res = runner.invoke(cli, ["fio", str(job), "--target", str(tmp_path / "t"), "--json",
                              "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["kind"] == "fio"
    assert d["name"] == "demo"
    assert d["engine"] == "fio"
    assert d["status"]["state"] == "ok"
    fill, check = d["phases"]
    assert (fill["name"], fill["bytes"], fill["ops"]) == ("fill:write", 1 << 20, 16)
    assert fill["metrics"]["includes_fsync"] is True
    assert (check["name"], check["bytes"], check["ops"]) == ("check:read", 2 << 20, 512)
    assert check["latency_ns"]["count"] == 512
    assert check["metrics"]["fio_jobs"] == 2
    assert d["metrics"]["read_bytes"] == 2 << 20
    assert d["metrics"]["write_bytes"] == 1 << 20
    assert d["metrics"]["read_p99_us"] > 0
    assert d["spec"]["jobfile_text"] == JOB
    assert d["cache"]["method"] == "none"  # invalidate=0 in the job file
    assert d["cache"]["may_be_cached"] is True
    # the job's relative file landed in the target's fio/ subdirectory, which iobench owns
    assert (tmp_path / "t" / "fio" / "data.bin").stat().st_size == 1 << 20
    marker = json.loads((tmp_path / "t" / ".iobench").read_text())
    assert "fio" in [e["name"] for e in marker["created"]]
    assert len(list((tmp_path / "r").glob("*/result.json"))) == 1


@pytest.mark.fio
def test_tables_and_warnings(runner, tmp_path, have_fio):
    job = write_job(tmp_path, "[warned]\nrw=read\nbs=128k\nsize=1m\nfilename=f\n"
                    "time_based=1\ndirect=1\n", "warned.fio")
    res = invoke(runner, tmp_path, job, "--target", tmp_path / "t")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "iobench fio warned" in out
    assert "warned:read" in out
    assert "fio: time_based requires a runtime/timeout setting" in out
    assert "o_direct" in out
    assert "fio-3" in out


@pytest.mark.fio
@pytest.mark.parametrize(("sig", "said"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_interrupting_the_command(tmp_path, have_fio, sig, said):
    job = write_job(tmp_path, "[long]\nrw=randread\nbs=4k\nsize=1m\nfilename=f\n"
                    "time_based=1\nruntime=30\ninvalidate=0\n", "long.fio")
    tgt = tmp_path / "t"
    proc = subprocess.Popen(
        [sys.executable, "-m", "iobench", "fio", str(job), "--target", str(tgt),
         "--results-dir", str(tmp_path / "r"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    from iobench.engines.proctree import descendants

    def reading() -> bool:  # readiness: fio (a child) has read 1 MiB of the timed job
        total = 0
        for pid in descendants(proc.pid):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() != "fio":
                    continue
                for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                    if line.startswith("rchar:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total >= 2**20

    deadline = time.monotonic() + 120
    while not reading():
        assert proc.poll() is None, "fio never read"
        assert time.monotonic() < deadline, "fio never read"
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)  # bounded: a hang fails here
    assert proc.returncode == 130, err
    d = json.loads(out)
    assert d["status"]["state"] == "partial"
    assert said in d["status"]["reason"]
    (p,) = d["phases"]
    assert p["bytes"] > 0
    assert p["seconds"] < 30  # stopped before the job's runtime
    (saved,) = (tmp_path / "r").glob("*/result.json")
    assert load(saved).status == "partial"
    # no fio left running on the target's file
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(job).encode() not in cmd or b"pytest" in cmd
