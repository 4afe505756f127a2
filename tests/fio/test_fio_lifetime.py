"""Stopping fio ends every process it started, including job processes that called
setsid() and left fio's process group (killpg alone misses them, and they outlive fio
reparented away from it). Readiness comes from files the processes write, never from a
fixed sleep; the stop is fio.run_process's own timeout path."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

from iobench.engines import fio, proctree
from iobench.errors import RunFailed

HUNG_FIO = textwrap.dedent("""\
    import os, signal, sys, time
    out = sys.argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a hung fio: deaf to SIGINT
    pid = os.fork()
    if pid == 0:  # a job process that leaves fio's process group and session
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.fork() == 0:  # and a grandchild of it, detached again
            os.setsid()
            with open(out + ".grandchild", "w") as f:
                f.write(str(os.getpid()))
            while True:
                time.sleep(1)
        with open(out + ".child", "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(1)
    while True:
        time.sleep(1)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(path: Path, limit: float = 60.0) -> int:
    deadline = time.monotonic() + limit
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return int(path.read_text())


def test_a_hung_fios_setsid_job_processes_are_ended(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fio, "STOP_GRACE_S", 1.0)
    script = tmp_path / "hung_fio.py"
    script.write_text(HUNG_FIO)
    out = tmp_path / "pids"
    # the timeout is the stop; it must come after both detached processes exist, so the
    # "fio" is started, and run_process is only asked to stop it once they are there
    ready = {}

    real_popen = fio.subprocess.Popen

    def popen(*a, **k):
        p = real_popen(*a, **k)
        try:
            ready["child"] = _wait_for(out.with_suffix(".child"))
            ready["grandchild"] = _wait_for(out.with_suffix(".grandchild"))
        except AssertionError:
            os.killpg(p.pid, 9)
            p.wait()
            raise
        return p

    monkeypatch.setattr(fio.subprocess, "Popen", popen)
    try:
        with pytest.raises(RunFailed, match="longer than the 0.5 s limit"):
            fio.run_process([sys.executable, str(script), str(out)], tmp_path,
                            tmp_path / "err.txt", 0.5, lambda: None)
        for who in ("child", "grandchild"):
            pid = ready[who]
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _alive(pid), f"the setsid'd {who} ({pid}) survived the stop"
    finally:
        for pid in ready.values():  # never leave a stray process behind a failed test
            if _alive(pid):
                os.kill(pid, 9)


@pytest.mark.fio
@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_real_fio_exec_prerun_sleeper_is_ended(tmp_path: Path, monkeypatch) -> None:
    """A real fio job whose exec_prerun starts a setsid'd sleeper, stopped by timeout."""
    monkeypatch.setattr(fio, "STOP_GRACE_S", 2.0)
    pidfile = tmp_path / "sleeper.pid"
    sleeper = tmp_path / "sleeper.sh"  # fio job files treat ';' as a comment: a script
    sleeper.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 600\n")
    sleeper.chmod(0o755)
    job = textwrap.dedent(f"""\
        [hang]
        filename={tmp_path / 'data'}
        size=1m
        rw=read
        time_based=1
        runtime=600
        exec_prerun=setsid {sleeper} &
    """)
    real_popen = fio.subprocess.Popen
    seen = {}

    def popen(*a, **k):
        p = real_popen(*a, **k)
        try:
            seen["sleeper"] = _wait_for(pidfile)
        except AssertionError:
            p.kill()  # this test's own fio, never left running
            p.wait()
            raise
        return p

    monkeypatch.setattr(fio.subprocess, "Popen", popen)
    try:
        with pytest.raises(RunFailed, match="longer than"):
            fio.run_fio(job, tmp_path, timeout=1.0, status_interval=None)
        pid = seen["sleeper"]
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "fio's exec_prerun sleeper survived the stop"
    finally:
        if seen.get("sleeper") and _alive(seen["sleeper"]):
            os.kill(seen["sleeper"], 9)


def test_tree_ignores_a_reused_pid(tmp_path: Path) -> None:
    t = proctree.Tree(os.getpid())
    t.known[os.getpid()] = 1  # a start time that is not this process's
    assert os.getpid() not in t.alive()
