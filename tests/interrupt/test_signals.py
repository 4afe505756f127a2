"""Ctrl-C (SIGINT) and SIGTERM during every run command, as a real process: exit 130, one
valid JSON result marked partial that keeps the phases measured so far, no temporary file
left, no traceback; the same with both CPUs busy; a signal during start-up; a full
results directory. Each signal is sent at a readiness point, never after a fixed sleep."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import (
    finish,
    handlers_installed,
    load_result,
    moved,
    phase_lines,
    provisional,
    results,
    spawn,
    wait_for,
)

MiB = 2**20


def _common(tmp: Path) -> list[str]:
    return ["--target", str(tmp / "t"), "--results-dir", str(tmp / "r"), "--json"]


# command -> (argv, readiness: ("wchar"|"rchar", bytes) or ("phase", lines))
def _cases(tmp: Path, ds: Callable[[], Path], specs: Callable[[], dict[str, Path]]
           ) -> dict[str, tuple[Callable[[], list[str]], tuple[str, int]]]:
    return {
        "io-native-write": (lambda: ["io", "seqwrite", "--size", "16MiB", "-b", "64k",
                                     "--runtime", "600s", "--cache", "allow"], ("wchar", 4 * MiB)),
        "io-native-read": (lambda: ["io", "randread", "--size", "8MiB", "-b", "4k",
                                    "--runtime", "600s", "--cache", "allow"], ("rchar", 4 * MiB)),
        "io-fio": (lambda: ["io", "randread", "--engine", "fio", "--size", "8MiB", "-b", "4k",
                            "--runtime", "600s", "--cache", "allow"], ("rchar", 4 * MiB)),
        # tiny's epoch reads ~4 MiB: 12 MiB read means epochs have finished
        "train": (lambda: ["train", "tiny", "--epochs", "100000", "--compute-time", "0.001",
                           "--cache", "allow", "--force", "--target", str(ds())],
                  ("rchar", 12 * MiB)),
        "checkpoint": (lambda: ["checkpoint", "tiny", "--count", "100000", "--keep", "2",
                                "--no-read", "--cache", "allow"], ("phase", 1)),
        "datagen": (lambda: ["datagen", "tiny", "--dataset-size", "2GiB", "--jobs", "2"],
                    ("wchar", 8 * MiB)),
        "infer-load": (lambda: ["infer", "load", str(specs()["model"]), "-p", "bf16,fp8,int4",
                                "-m", "read,pread,mmap", "--warm", "-t", "1", "--chunk", "4k"],
                       ("phase", 1)),
        "infer-randread": (lambda: ["infer", "randread", "--file-size", "4MiB", "--files", "2",
                                    "-b", "4k,8k,16k,32k", "-q", "1,2,4", "--runtime", "1s",
                                    "--cache", "allow"], ("phase", 1)),
        "run-suite": (lambda: ["run", str(specs()["suite"])], ("wchar", 4 * MiB)),
    }


CASES = ["io-native-write", "io-native-read", "io-fio", "train", "checkpoint", "datagen",
         "infer-load", "infer-randread", "run-suite"]
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


def _interrupt(case: str, sig: int, tmp: Path, request: pytest.FixtureRequest) -> None:
    if case == "io-fio":
        request.getfixturevalue("have_fio")
    cases = _cases(tmp, lambda: request.getfixturevalue("tiny_dataset"),
                   lambda: request.getfixturevalue("specs"))
    argv, (kind, amount) = cases[case]
    args = argv()
    common = _common(tmp)
    if "--target" in args:  # train: its own data set as the target
        common = common[2:]
    proc = spawn([*args, *common], tmp)
    res = tmp / "r"
    if case == "run-suite":  # the suite's own result is written at the end: a step's
        wait_for(lambda: bool(list(res.glob("*/steps/*/*/result.json"))), proc, "the step")
    else:
        wait_for(provisional(res), proc, "the provisional result")
    if kind == "phase":
        wait_for(phase_lines(tmp, amount), proc, f"{amount} finished phase(s)")
    else:
        wait_for(moved(proc, kind, amount), proc, f"{amount} bytes of I/O")
    proc.send_signal(sig)
    rc, out, err = finish(proc)
    assert "Traceback" not in err, err[-3000:]
    assert rc == 130, (rc, err[-3000:])
    files = results(res)
    assert len(files) == 1, files
    d = load_result(files[0])
    what = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert d["status"]["state"] == "partial", d["status"]
    assert what in d["status"]["reason"]
    if case == "run-suite":
        assert d["children"], "the interrupted step's result is kept in the suite's"
        step = d["children"][0]
        assert step["status"]["state"] == "partial"
        phases = step["phases"]
    else:
        phases = d["phases"]
    assert len(phases) > 0, "the phases measured before the signal are kept"
    assert all(p["seconds"] > 0 for p in phases)
    assert sum(p["bytes"] for p in phases) > 0
    # nothing half-written left beside the result
    assert not [p for p in res.rglob("*") if p.name.endswith(".tmp")]
    # --json printed the same result on stdout
    assert '"partial"' in out


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("case", CASES)
def test_signal_keeps_a_valid_partial_result(case, sig, tmp_path, request):
    _interrupt(case, sig, tmp_path, request)


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("case", CASES)
def test_signal_with_busy_cpus(case, sig, tmp_path, request, busy_cpus):
    _interrupt(case, sig, tmp_path, request)


@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_during_start_up_gives_130_and_a_partial_result(sig, tmp_path):
    """The signal arrives while iobench is still importing its modules: it is acted on
    once the provisional result exists (exit 130, status partial, nothing measured)."""
    proc = spawn(["io", "seqwrite", "--size", "1MiB", *_common(tmp_path)], tmp_path)
    wait_for(handlers_installed(proc), proc, "the signal handlers", timeout=60)
    proc.send_signal(sig)
    # start-up: iobench was still importing, no result existed yet when it was signalled
    assert not results(tmp_path / "r")
    rc, out, err = finish(proc)
    assert "Traceback" not in err, err
    assert rc == 130, (rc, err)
    files = results(tmp_path / "r")
    assert len(files) == 1, files
    d = load_result(files[0])
    assert d["status"]["state"] == "partial"
    assert d["phases"] == []


def test_repeated_signals_still_give_one_valid_result(tmp_path):
    """Ctrl-C pressed many times during a native write (workers in pwritev): the result
    is valid JSON, never benchmark data written into the result's descriptor."""
    proc = spawn(["io", "seqwrite", "--size", "16MiB", "-b", "4k", "-j", "2", "-q", "4",
                  "--runtime", "600s", "--cache", "allow", *_common(tmp_path)], tmp_path)
    wait_for(provisional(tmp_path / "r"), proc, "the provisional result")
    wait_for(moved(proc, "wchar", 4 * MiB), proc, "writes")
    for _ in range(20):
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 130, err
    d = load_result(results(tmp_path / "r")[0])
    assert d["status"]["state"] == "partial"
    assert d["phases"][0]["bytes"] > 0


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return p.returncode == 0


@pytest.fixture
def full_fs(tmp_path):
    """A 1 MiB tmpfs filled to its last 4 KiB page (needs root and mount)."""
    mnt = tmp_path / "full"
    if not _mount_tmpfs(mnt, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> None:
    import os

    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    (mnt / "fill").write_bytes(b"\0" * max(0, free - leave))


def test_full_results_directory_before_the_run(full_fs, tmp_path):
    _fill(full_fs, 0)
    p = subprocess.run([*spawn_cmd(), "io", "seqwrite", "--size", "1MiB", "--target",
                        str(tmp_path / "t"), "--results-dir", str(full_fs / "r")],
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, p.stderr
    assert "No space left" in lines[0]
    assert not list((full_fs / "r").glob("*/result.json"))


def test_full_results_directory_after_the_run(full_fs, tmp_path):
    """The provisional result fits, the final one (timeline, histogram) does not: one
    error line, exit 1, and the file says the result could not be saved, not 'killed'."""
    _fill(full_fs, 4096)
    p = subprocess.run([*spawn_cmd(), "io", "randread", "--size", "4MiB", "-b", "4k",
                        "--runtime", "1s", "--cache", "allow", "--target", str(tmp_path / "t"),
                        "--results-dir", str(full_fs / "r")],
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr
    assert p.returncode == 1, p.stderr
    assert "could not be saved" in p.stderr
    files = list((full_fs / "r").glob("*/result.json"))
    assert len(files) == 1
    d = load_result(files[0])
    assert d["status"]["state"] == "failed"
    assert "could not be saved" in d["status"]["reason"]
    assert "did not finish" not in d["status"]["reason"]
    assert not [f for f in full_fs.rglob("*.tmp")]


def spawn_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "iobench"]


SUITE_YAML = """\
name: fullsuite
description: a suite on a full results disk
steps:
  - command: io seqwrite
    params: {size: 64k, block-size: 64k}
    criteria: [gb_per_s > 0]
"""


@pytest.mark.parametrize("leave", [0, 4096, 16 << 10, 64 << 10])
def test_a_suite_on_a_full_results_disk(full_fs, tmp_path, leave):
    """The suite's own result.json and report.html on a full disk, whenever it fills up:
    no traceback; either bad input (exit 2, one line, no suite result) or a valid
    result.json that says failed and why (exit 1, the suite's error line last), or a
    normal run when everything fitted; never a temporary file left."""
    _fill(full_fs, leave)
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE_YAML)
    p = subprocess.run([*spawn_cmd(), "run", str(suite), "--target", str(tmp_path / "t"),
                        "--results-dir", str(full_fs / "r")],
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    mine = list((full_fs / "r").glob("*/result.json"))
    if p.returncode == 2:
        assert len(errors) == 1, p.stderr
        assert "cannot write the suite's result" in errors[0]
        assert mine == []
    else:
        assert len(mine) == 1
        d = load_result(mine[0])
        if p.returncode == 0:
            assert errors == []
            assert d["status"]["state"] == "ok"
            assert (mine[0].parent / "report.html").exists()
        else:
            assert p.returncode == 1, p.stderr
            assert d["status"]["state"] == "failed"
            assert "No space left" in d["status"]["reason"]
            assert "did not finish" not in d["status"]["reason"]
            assert errors, p.stderr
            assert "could not be written" in errors[-1], p.stderr
    assert not list(full_fs.rglob("*.tmp"))
