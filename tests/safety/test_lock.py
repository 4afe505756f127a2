"""One run at a time per target: a second run refuses naming the first one's pid, or
waits with --wait; the lock goes with the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from iobench.cli import cli

HOLD = """\
import sys
from click.testing import CliRunner
from iobench import target
t = target.prepare(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def _wait_for(pred, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_second_run_refused_naming_the_first(tmp_path: Path) -> None:
    target, res_dir = tmp_path / "t", tmp_path / "res"
    first = subprocess.Popen(
        [sys.executable, "-m", "iobench", "io", "seqwrite", "--target", str(target),
         "--size", "1m", "--block-size", "64k", "--runtime", "120s", "--cache", "allow",
         "--results-dir", str(res_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:  # the provisional result exists once the run (and its lock) started
        _wait_for(lambda: any(res_dir.glob("*/result.json")), "the first run's result")
        res = CliRunner().invoke(cli, ["io", "seqread", "--target", str(target),
                                       "--results-dir", str(tmp_path / "res2")])
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, res.stderr
        assert lines[0].startswith("error: ")
        assert f"pid {first.pid}" in lines[0]
        assert not (tmp_path / "res2").exists()
        res = CliRunner().invoke(cli, ["clean", "--target", str(target)])
        assert res.exit_code == 2
        assert (target / "io").is_dir()
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    res = CliRunner().invoke(cli, ["clean", "--target", str(target)])  # lock released
    assert res.exit_code == 0, res.output


def test_wait_flag_waits_for_the_holder(tmp_path: Path) -> None:
    target = tmp_path / "t"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    waiter = None
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        waiter = subprocess.Popen(
            [sys.executable, "-m", "iobench", "io", "seqwrite", "--target", str(target),
             "--size", "64k", "--block-size", "64k", "--cache", "allow", "--wait",
             "--results-dir", str(tmp_path / "res")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert waiter.stderr is not None
        line = waiter.stderr.readline()
        assert "waiting for the other iobench run" in line
        assert f"pid {holder.pid}" in line
        assert waiter.poll() is None
        assert holder.stdin is not None
        holder.stdin.close()
        assert waiter.wait(timeout=120) == 0, waiter.stderr.read()
    finally:
        holder.kill()
        holder.wait()
        if waiter is not None and waiter.poll() is None:
            waiter.kill()
            waiter.wait()
