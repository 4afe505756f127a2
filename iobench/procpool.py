"""Forked worker processes whose stop is bounded: nothing they share is behind a lock.

multiprocessing.Pool's workers wait for tasks holding the task queue's lock, and its
progress values are locked; a worker killed at that moment (a SIGTERM to the whole process
group, a SIGKILL, the OOM killer) leaves the lock taken for ever, and Pool.terminate then
waits on it for ever. Here every worker takes its tasks by position (worker k of n runs
tasks k, k+n, ...: the tasks are known before the fork and of similar cost), answers on its
own pipe (one writer, no lock) and counts progress in its own slot of a lock-free array;
`stop()` kills the workers by PID and reaps them, which is bounded whatever state they are
in. Used by datagen (generation and verification)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

_CTX = mp.get_context("fork")


class WorkerDied(OSError):
    """A worker process ended without finishing its tasks (killed, or crashed)."""


def _serve(k: int, n: int, fn: Callable[[Any], Any], tasks: Sequence[Any], out: Connection,
           init: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    # the parent stops the workers: a Ctrl-C or SIGTERM to the process group leaves them
    # running until the parent kills them, so none dies half-way through its own reply
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = 0
    try:
        if init is not None:
            init(k, *initargs)
        for i in range(k, len(tasks), n):
            try:
                out.send(("ok", fn(tasks[i])))
            except Exception as e:  # noqa: BLE001 - handed to the parent, raised there
                out.send(("err", e))
                return
        out.send(("done", None))
    except BaseException:  # a broken pipe (the parent went away): nothing to report to
        code = 1
    finally:
        out.close()
        os._exit(code)


class ProcPool:
    """`n` forked workers running `fn` over `tasks`; results arrive unordered."""

    def __init__(self, n: int, fn: Callable[[Any], Any], tasks: Sequence[Any],
                 initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self.n = max(1, min(n, len(tasks) or 1))
        self._procs: list[Any] = []
        self._conns: dict[Connection, Any] = {}
        self._done = 0
        try:
            for k in range(self.n):
                r, w = _CTX.Pipe(duplex=False)
                p = _CTX.Process(target=_serve, daemon=True,
                                 args=(k, self.n, fn, tasks, w, initializer, initargs))
                p.start()
                w.close()
                self._procs.append(p)
                self._conns[r] = p
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def results(self, timeout: float) -> Iterator[Any]:
        """Each task's result as it arrives; None when `timeout` seconds passed without
        one (the caller's chance to report progress or notice a signal). Raises what a
        worker raised, or WorkerDied for a worker that ended without saying done."""
        while self._conns:
            ready = wait(list(self._conns), timeout)
            if not ready:
                yield None
                continue
            for r in ready:
                assert isinstance(r, Connection)
                try:
                    what, value = r.recv()
                except (EOFError, OSError):
                    p = self._conns.pop(r)
                    p.join()
                    raise WorkerDied(f"worker process {p.pid} ended without finishing its "
                                     f"tasks (exit {p.exitcode})") from None
                if what == "ok":
                    yield value
                elif what == "err":
                    raise value
                else:
                    self._conns.pop(r).join()
                    r.close()

    def stop(self) -> None:
        """Kill every worker still running and reap them all (bounded: SIGKILL)."""
        for p in self._procs:
            if p.exitcode is None:
                with contextlib.suppress(OSError, AttributeError):
                    p.kill()
        for p in self._procs:
            p.join()
        for r in self._conns:
            r.close()
        self._conns.clear()


def counter(n: int) -> Any:
    """A lock-free progress counter: one int64 slot per worker (sum them to read)."""
    return _CTX.RawArray("q", n)
