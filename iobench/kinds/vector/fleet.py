"""Concurrency in mode 1 on one host: P searcher processes, each with its own
StaticDiskIndex, one query at a time each, every query timed (`--search-procs`).

Not threads: diskannpy 0.7.0's compiled `search` and `batch_search` hold the GIL while
they search (its module.cpp binds them without releasing it), so T Python threads take
turns; measured on the 2-core dev VM (2026-12-02, every hop reading storage): 1, 2 and 4
threads gave 317-377, 298-322 and 328-336 queries/s. Processes are spawned, not forked:
DiskANN's OpenMP runtime and Linux AIO contexts do not survive a fork. Each process gets
its share of the queries once, loads the index, says it is ready, and then runs one pass
per `run()` (a setting of the sweep); all are sent the pass before any reply is read, and
the phase spans the first process's start to the last one's end (CLOCK_REALTIME, which the
processes share). A process that dies or fails ends the run with its number named; the
parent stops them all on its way out (a Ctrl-C, a SIGTERM: they ignore both, the parent
kills them), and a SIGKILLed parent takes them with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from iobench.errors import RunFailed
from iobench.stats import Histogram

READY_TIMEOUT_S = 300.0  # a process that cannot import and load the index in this fails
PASS_TIMEOUT_S = 24 * 3600.0


def _serve(conn: Connection, index_dir: str, metric: str, dim: int, cache_nodes: int,
           log: str, queries: np.ndarray, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (see the module)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from iobench import interrupt

    interrupt.die_with_parent(parent_pid)
    from iobench.kinds.vector import engine

    try:
        s = engine.Searcher(Path(index_dir), metric, dim, cache_nodes, Path(log))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which names it
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the parent went away
                return
            if msg[0] != "run":
                return
            try:
                out = s.run(queries, msg[1], msg[2], None)
                out["hist"] = out["hist"].to_dict()
                conn.send(("ok", out))
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                conn.send(("error", f"{type(e).__name__}: {e}"))
                return
    finally:
        s.close()


class SearcherFleet:
    """`procs` searcher processes over `queries` (each its contiguous share); `run(cx, bw,
    dev)` is one pass of all of them at one setting, merged like Searcher.run's result."""

    def __init__(self, index_dir: Path, metric: str, dim: int, cache_nodes: int, log: Path,
                 queries: np.ndarray, procs: int) -> None:
        ctx = mp.get_context("spawn")
        bounds = np.linspace(0, len(queries), max(1, min(procs, len(queries))) + 1)
        bounds = bounds.astype(int)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for k in range(len(bounds) - 1):
            mine, theirs = ctx.Pipe()
            share = np.ascontiguousarray(queries[bounds[k]:bounds[k + 1]], dtype=np.float32)
            p = ctx.Process(target=_serve, name=f"diskann-search-{k}", daemon=True,
                            args=(theirs, str(index_dir), metric, dim, cache_nodes,
                                  str(log), share, os.getpid()))
            self.conns.append(mine)
            self.procs.append(p)
            try:
                p.start()
            finally:
                theirs.close()

    def _replies(self, timeout: float, what: str) -> list[Any]:
        """One reply from every process, or RunFailed naming the first that died or
        failed."""
        deadline = time.monotonic() + timeout
        got: dict[int, Any] = {}
        while len(got) < len(self.conns):
            left = deadline - time.monotonic()
            if left <= 0:
                late = sorted(set(range(len(self.conns))) - set(got))
                raise RunFailed(f"search process(es) {late} did not answer within "
                                f"{timeout:.0f} s ({what})")
            waiting = [c for k, c in enumerate(self.conns) if k not in got]
            for r in wait(waiting, min(left, 1.0)):
                k = next(i for i, c in enumerate(self.conns) if c is r)
                try:
                    msg = self.conns[k].recv()
                except (EOFError, OSError):
                    raise self._died(k, what) from None
                if msg[0] == "error":
                    raise RunFailed(f"search process {k} failed ({what}): {msg[1]}")
                got[k] = msg[1]
        return [got[k] for k in range(len(self.conns))]

    def _died(self, k: int, what: str) -> RunFailed:
        p = self.procs[k]
        p.join(5)
        return RunFailed(f"search process {k} (pid {p.pid}) exited with code {p.exitcode} "
                         f"({what})")

    def start(self) -> None:
        """Returns when every process has loaded the index."""
        self._replies(READY_TIMEOUT_S, "loading the index")

    def run(self, complexity: int, beam_width: int, dev: str | None = None
            ) -> dict[str, Any]:
        from iobench.kinds.vector import engine

        d0 = engine.diskstats(dev)
        what = f"W={beam_width} L={complexity}"
        for k, c in enumerate(self.conns):
            try:
                c.send(("run", complexity, beam_width))
            except OSError:
                raise self._died(k, what) from None
        outs = self._replies(PASS_TIMEOUT_S, what)
        d1 = engine.diskstats(dev)
        start = min(o["start_wall_ns"] for o in outs)
        end = max(o["end_wall_ns"] for o in outs)
        out: dict[str, Any] = {
            "queries": sum(o["queries"] for o in outs), "seconds": (end - start) / 1e9,
            "start_wall_ns": start, "end_wall_ns": end,
            "read_bytes": sum(o["read_bytes"] for o in outs),
            "major_faults": sum(o["major_faults"] for o in outs),
            "hist": Histogram.merged(Histogram.from_dict(o["hist"]) for o in outs),
            "found": np.concatenate([o["found"] for o in outs]),
            "searchers": len(outs)}
        if d0 is not None and d1 is not None:
            out["device_reads"] = d1[0] - d0[0]
            out["device_bytes"] = d1[1] - d0[1]
        return out

    def close(self, wait_s: float = 10.0) -> None:
        """Stop every process and reap it, bounded whatever state it is in: asked to
        stop, then killed after `wait_s` in all (0: killed at once, for an interrupted
        run, where a process may be in the middle of a pass)."""
        for c in self.conns:
            try:
                c.send(("close",))
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        for p in self.procs:
            if p.pid is None:
                continue
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(10)
        for c in self.conns:
            c.close()
