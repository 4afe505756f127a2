"""Rank processes: started once per run, each runs write/read jobs on command, all ranks
of a job released together by a barrier, so per-rank start and end times are comparable
(CLOCK_MONOTONIC is system-wide on Linux)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from iobench import interrupt, verify
from iobench.errors import RunFailed
from iobench.kinds.checkpoint.rankio import RankJob, read_rank, reset_peak_rss, write_rank

BARRIER_TIMEOUT_S = 600.0


def _context() -> Any:
    # fork starts a rank in milliseconds and shares the imported modules; spawn where
    # fork is unavailable (macOS defaults, Windows)
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods and sys.platform == "linux" else "spawn")


def _rank_main(index: int, conn: Any, barrier: Any, counter: Any, parent_pid: int) -> None:
    # The parent owns Ctrl-C and SIGTERM: it stops the ranks itself, so a terminal's
    # SIGINT to the process group does not leave half-reported ranks behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    interrupt.die_with_parent(parent_pid)
    reset_peak_rss()
    from iobench.kinds.checkpoint.rankio import _rss

    base_rss = _rss()[0]
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        op, job = msg
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
            res = write_rank(job, counter) if op == "write" else read_rank(job, counter)
        except BaseException as e:  # noqa: BLE001 - reported, never a traceback
            res = {"rank": job.rank, "error": {"kind": "error",
                                                "message": f"{type(e).__name__}: {e}"}}
        res["base_rss_bytes"] = base_rss
        conn.send(res)


class RankPool:
    """N rank processes. `run(op, jobs, progress)` runs one job per rank, returns results."""

    def __init__(self, n: int) -> None:
        self.n = n
        ctx = _context()
        self.counter = ctx.Value("q", 0)
        barrier = ctx.Barrier(n)
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_rank_main,
                            args=(i, child, barrier, self.counter, os.getpid()),
                            name=f"iobench-rank{i}", daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)

    def run(self, op: str, jobs: Sequence[RankJob], progress: Any = None) -> list[dict[str, Any]]:
        assert len(jobs) == self.n
        with self.counter.get_lock():
            self.counter.value = 0
        # the messages to and from the rank processes cross pipes: both ends count them
        # (rchar, wchar), none is a measured byte (iobench.verify.untimed(mirror=True))
        with verify.untimed(mirror=True):
            for c, job in zip(self.conns, jobs, strict=True):
                c.send((op, job))
        results: list[dict[str, Any] | None] = [None] * self.n
        pending = dict(enumerate(self.conns))
        seen = 0
        while pending:
            ready = mpc.wait(list(pending.values()), timeout=0.25)
            if progress is not None:
                v = self.counter.value
                if v > seen:
                    progress.advance(v - seen)
                    seen = v
            for c in ready:
                i = next(k for k, v in pending.items() if v is c)
                try:
                    with verify.untimed(mirror=True):
                        results[i] = self.conns[i].recv()
                except EOFError:
                    raise RunFailed(f"rank {i} (pid {self.procs[i].pid}) died during {op} "
                                    f"(exit code {self.procs[i].exitcode}); out of memory? "
                                    "see the kernel log (dmesg)") from None
                del pending[i]
            for i in list(pending):
                if not self.procs[i].is_alive():
                    raise RunFailed(f"rank {i} (pid {self.procs[i].pid}) died during {op} "
                                    f"(exit code {self.procs[i].exitcode}); out of memory? "
                                    "see the kernel log (dmesg)")
        if progress is not None and self.counter.value > seen:
            progress.advance(self.counter.value - seen)
        return [r for r in results if r is not None]

    def close(self, now: bool = False) -> None:
        """Stop the rank processes: politely, or (`now`, after an interruption) with
        SIGKILL at once, so the result is written within mpirun's grace period."""
        if now:
            for p in self.procs:
                if p.is_alive():
                    with contextlib.suppress(OSError):
                        os.kill(p.pid, signal.SIGKILL)
            for p in self.procs:
                p.join(5)
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.close()
            return
        for c in self.conns:
            with contextlib.suppress(OSError, BrokenPipeError), verify.untimed(mirror=True):
                c.send(None)
        for p in self.procs:
            p.join(2)
        for p in self.procs:
            if p.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(p.pid, signal.SIGTERM)
                p.join(2)

    def __enter__(self) -> RankPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
