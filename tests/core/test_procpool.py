"""procpool: results arrive, errors cross over, and a stop is bounded whatever the workers
are doing (blocked, told SIGTERM, or one already SIGKILLed)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from iobench import procpool


def _square(x: int) -> int:
    return x * x


def _fail(x: int) -> int:
    if x == 3:
        raise OSError(28, "No space left on device")
    return x


def _block(d: str) -> None:
    """Say ready, then block for ever on a FIFO nobody writes."""
    p = Path(d)
    (p / f"ready-{os.getpid()}").write_text("")
    os.open(p / "fifo", os.O_RDONLY)  # blocks: no writer


def _all(pool: procpool.ProcPool) -> list:
    return [r for r in pool.results(timeout=0.1) if r is not None]


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.split(")")[-1].split()[0] == "Z"  # a zombie of another parent is gone too


def test_every_task_once():
    pool = procpool.ProcPool(3, _square, list(range(10)))
    try:
        assert sorted(_all(pool)) == [x * x for x in range(10)]
    finally:
        pool.stop()
    assert all(_gone(p) for p in pool.pids)


def test_a_worker_error_is_raised_in_the_parent():
    pool = procpool.ProcPool(2, _fail, list(range(6)))
    try:
        with pytest.raises(OSError, match="No space"):
            _all(pool)
    finally:
        pool.stop()


def test_counter_slots_add_up_without_a_lock():
    c = procpool.counter(2)
    c[0] += 5
    c[1] += 7
    assert sum(c) == 12


def _wait_ready(d: Path, n: int) -> None:
    while len(list(d.glob("ready-*"))) < n:  # readiness signal, not a fixed sleep
        time.sleep(0.01)


def test_stop_is_bounded_with_blocked_workers_and_a_dead_one(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    pool = procpool.ProcPool(3, _block, [str(tmp_path)] * 3)
    _wait_ready(tmp_path, 3)
    a, b, c = pool.pids
    os.kill(b, signal.SIGTERM)  # ignored: only the parent stops the workers
    os.kill(c, signal.SIGINT)
    os.kill(a, signal.SIGKILL)  # dies for real, holding nothing the parent waits on
    with pytest.raises(procpool.WorkerDied):
        _all(pool)
    assert not _gone(b)  # SIGTERM did not kill it
    assert not _gone(c)  # nor SIGINT
    pool.stop()
    assert all(_gone(p) for p in (a, b, c))
