"""The fio engine with the real fio on tiny files: patterns, failures, timeouts, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import zlib
from pathlib import Path

import pytest

from iobench.engines import IOSpec, fio
from iobench.engines.native import layout
from iobench.errors import RunFailed, UsageError

pytestmark = [pytest.mark.fio, pytest.mark.usefixtures("have_fio")]
MiB = 1 << 20


def files(tmp_path: Path, n: int = 2) -> tuple[Path, ...]:
    return tuple(tmp_path / f"job{i}.dat" for i in range(n))


def fio_children() -> list[int]:
    """fio processes whose parent is this test process (none once a run is over)."""
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == "fio" and ppid == me:
            out.append(int(d.name))
    return out


@pytest.mark.parametrize("pattern", ["seqwrite", "seqread", "randread", "randwrite"])
def test_patterns_on_the_native_engines_files(tmp_path, pattern):
    fs = files(tmp_path)
    if pattern.endswith("read"):
        layout(fs, MiB)
    bs = 65536 if pattern.startswith("seq") else 4096
    spec = IOSpec(pattern=pattern, size=MiB, block_size=bs, files=fs, jobs=2)  # type: ignore[arg-type]
    out = fio.run(spec, tmp_path)
    p = out[0]
    assert p["name"] == pattern
    assert p["engine"] == "fio"
    assert p["direction"] == ("write" if pattern.endswith("write") else "read")
    assert p["bytes"] == 2 * MiB  # one pass of each job's file
    assert p["ops"] == 2 * MiB // bs
    assert p["latency_ns"]["count"] == p["ops"]
    assert p["metrics"]["latency_source"] == "lat_ns"
    assert p["metrics"]["latency_method"] == "json+ bins merged"
    assert p["fio"]["jobfile"] == fio.jobfile_for(spec, pattern)
    for f in fs:
        assert f.stat().st_size == MiB
    if pattern.endswith("write"):
        assert p["metrics"]["includes_fsync"] is True
        data = fs[0].read_bytes()
        # refilled random buffers: fio scrambles a random buffer per I/O, so a few blocks
        # can repeat (0.9885 seen once); zeros or a constant pattern compress below 1%
        assert len(zlib.compress(data, 1)) > 0.95 * len(data)
        assert data[:4096] != data[4096:8192]


def test_time_based_direct_libaio(tmp_path):
    fs = files(tmp_path, 1)
    layout(fs, 2 * MiB)
    spec = IOSpec(pattern="randread", size=2 * MiB, block_size=4096, files=fs, jobs=1,
                  queue_depth=8, runtime=0.4, direct=True, ioengine="libaio")
    (p,) = fio.run(spec, tmp_path)
    assert 0.35 <= p["seconds"] <= 2.0
    assert p["bytes"] == p["ops"] * 4096
    assert sum(p["timeline"]["bytes"]) == p["bytes"]
    assert "iodepth=8" in p["fio"]["jobfile"]


def test_chunk_job_ramp_is_left_out_of_the_figures(tmp_path):
    """ramp_s: fio runs that long first, and its bytes and time start after it."""
    fs = files(tmp_path, 1)
    layout(fs, 4 * MiB)
    job = dict(file_bytes=4 * MiB, chunk_sizes={MiB: 1}, iodepth=2, runtime_s=0.3)
    assert "ramp_time" not in fio.jobfile_for_chunks(tmp_path, fs, **job)
    (p,), text = fio.run_chunks(tmp_path, fs, name="ramped", ramp_s=1.0, **job)
    assert "ramp_time=1000ms" in text.splitlines()
    assert p["ops"] > 0
    # fio resets its byte and I/O counters at the ramp's end a moment apart: they may
    # differ by the reads in flight then (iodepth)
    assert abs(p["bytes"] - p["ops"] * MiB) <= 2 * MiB
    assert p["seconds"] < 0.9  # the 0.3 s measured, not the 1 s ramp before it


def test_chunk_job_request_pattern_drains_between_requests(tmp_path):
    """request_chunks = N: fio issues N reads, drains them, then the next N (a restore
    request's burst and drain); its own submission-depth histogram shows the drains,
    which a steady stream at the same iodepth does not have."""
    fs = files(tmp_path, 2)
    layout(fs, 2 * MiB)
    job = dict(file_bytes=2 * MiB, chunk_sizes={256 * 1024: 1}, iodepth=4, runtime_s=0.3)
    with pytest.raises(UsageError, match="request_chunks -1"):
        fio.jobfile_for_chunks(tmp_path, fs, request_chunks=-1, **job)

    def depth_one_share(text: str) -> float:
        doc = fio.run_fio(text, tmp_path, timeout=60)  # a stuck think time fails here
        assert doc["jobs"][0]["read"]["total_ios"] > 0
        return float(doc["jobs"][0]["iodepth_level"]["1"])  # % of I/Os issued at depth 1

    steady = fio.jobfile_for_chunks(tmp_path, fs, **job)
    requests = fio.jobfile_for_chunks(tmp_path, fs, request_chunks=4, **job)
    assert not any(line.startswith("thinktime") for line in steady.splitlines())
    assert {"thinktime=1", "thinktime_blocks=4", "thinktime_blocks_type=issue"} <= set(
        requests.splitlines())
    assert "thinktime_spin" not in requests  # fio 3.33 sleeps a spin's overshoot as huge
    # each request of 4 starts with 1 in flight (its first submission after the drain)
    # then 2, 3, 4: a quarter of submissions at depth 1; a steady stream none but its first
    assert depth_one_share(requests) > 10.0
    assert depth_one_share(steady) < 5.0


def test_huge_buffer_tunable_keeps_the_callers_own(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert fio.huge_buffers_env() == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert fio.huge_buffers_env() == {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"}
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    assert fio.huge_buffers_env() == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def test_psync_queue_depth_runs_slices(tmp_path):
    fs = files(tmp_path, 1)
    layout(fs, MiB)
    spec = IOSpec(pattern="seqread", size=MiB, block_size=4096, files=fs, jobs=1, queue_depth=4)
    (p,) = fio.run(spec, tmp_path)
    assert p["metrics"]["fio_jobs"] == 4
    assert p["bytes"] == MiB  # four disjoint quarter slices, the whole file once
    assert p["fio"]["warnings"]


def test_run_files_reads_each_file_whole(tmp_path):
    fs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for f, n in zip(fs, (MiB, 3 * MiB, 65536), strict=True):
        f.write_bytes(os.urandom(n))
    (p,) = fio.run_files(fs, rw="read", block_size=MiB, jobs=2, direct=False, name="load")
    assert p["name"] == "load"
    # whole blocks only: the 64 KiB file is shorter than one 1 MiB block, so not read
    assert p["bytes"] == 4 * MiB
    assert p["metrics"]["unread_tail_bytes"] == 65536
    assert "65536 bytes of file tails were not read" in p["fio"]["warnings"][0]
    written = [tmp_path / f"w{i}" for i in range(3)]
    (w,) = fio.run_files(written, rw="write", block_size=MiB, jobs=2, direct=False,
                         size_per_file=2 * MiB, end_fsync=True)
    assert w["bytes"] == 6 * MiB
    assert [f.stat().st_size for f in written] == [2 * MiB] * 3


def test_fio_failing_gives_the_tail_of_its_output(tmp_path):
    bad = "[j]\nrw=reed\nsize=1m\nfilename=x\n"
    with pytest.raises(RunFailed, match=r"fio failed \(exit 1\): .*failed parsing rw=reed"):
        fio.run_fio(bad, tmp_path)


def test_fio_job_error_is_a_run_failure(tmp_path):
    (tmp_path / "d").write_bytes(os.urandom(65536))
    verify = "[v]\nrw=read\nsize=64k\nfilename=d\nverify=md5\ninvalidate=0\n"
    with pytest.raises(RunFailed, match="verify: bad magic header"):
        fio.run_fio(verify, tmp_path)


def test_fio_killed_by_a_signal(tmp_path, monkeypatch):
    real = fio.subprocess.Popen

    def popen(*a, **kw):
        proc = real(*a, **kw)
        os.kill(proc.pid, signal.SIGKILL)  # no delay needed: fio's death is what is tested
        return proc

    monkeypatch.setattr(fio.subprocess, "Popen", popen)
    job = "[j]\nrw=read\nsize=1m\nfilename=x\ntime_based=1\nruntime=20\n"
    with pytest.raises(RunFailed, match="fio was killed by signal SIGKILL"):
        fio.run_fio(job, tmp_path)
    assert fio_children() == []


def test_timeout_stops_fio(tmp_path):
    job = "[j]\nrw=read\nsize=1m\nfilename=x\ntime_based=1\nruntime=20\n"
    with pytest.raises(RunFailed, match="longer than the 0.5 s limit"):
        fio.run_fio(job, tmp_path, timeout=0.5)  # a hang is caught by pytest's timeout
    assert fio_children() == []


def test_ctrl_c_stops_fio_and_keeps_partial_phases(tmp_path):
    fs = files(tmp_path, 1)
    layout(fs, MiB)
    spec = IOSpec(pattern="randread", size=MiB, block_size=4096, files=fs, jobs=1, runtime=30)
    def interrupt_once_reading() -> None:
        # readiness: fio's first status document (--status-interval) shows bytes read, in
        # the output file named on its command line; no fixed delay, whatever the load
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            outputs = []
            for pid in fio_children():
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                outputs += [a[len(b"--output="):].decode() for a in argv
                            if a.startswith(b"--output=")]
            try:
                text = "".join(Path(o).read_text() for o in outputs)
            except OSError:
                text = ""
            if any(int(n) > 0 for n in re.findall(r'"io_bytes"\s*:\s*(\d+)', text)):
                break
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    # Python's own SIGINT handler, whatever this process inherited (a shell starting the
    # suite in the background sets SIGINT to ignored, and Python then keeps it ignored)
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt_once_reading, daemon=True)
    t0 = time.monotonic()
    watcher.start()
    with pytest.raises(KeyboardInterrupt) as e:
        fio.run(spec, tmp_path)
    elapsed = time.monotonic() - t0
    watcher.join()
    signal.signal(signal.SIGINT, old_handler)
    assert fio_children() == []
    (p,) = fio.partial_phases(e.value)
    assert p["name"] == "randread"
    assert p["bytes"] > 0
    assert 0 < p["seconds"] <= elapsed  # fio's own runtime up to the interruption
    assert p["latency_ns"]["count"] == p["ops"]
