"""Ctrl-C and SIGTERM: recorded at safe points, never raised where they could corrupt.

`install()` runs first thing at the entry point. From then on SIGINT and SIGTERM raise
KeyboardInterrupt (`Terminated` for SIGTERM) in the main thread, except inside a `shield()`:
there the signal is only recorded (and the shield's stop hooks run, e.g. a worker pool's
stop event), and the code holding the shield decides when to act on it. Start-up runs
under a shield, so a signal before the run's provisional result exists is acted on right
after it is written (exit 130 with a partial result, not a traceback or -15); a second
signal during start-up is raised at once.

Worker threads are waited for with `wait_workers`, never with `Thread.join()`: on Python
3.11 an interrupted join marks a running thread as stopped (bpo-45274), so the next join
returns at once and the caller would close descriptors the worker still uses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop, keep what was measured."""


class PeerFault(KeyboardInterrupt):
    """Another MPI rank failed or was interrupted: stop, keep what was measured."""


_lock = threading.Lock()
_depth = 0  # shields held by the main thread
_startup = False  # the start-up shield is held
_pending: KeyboardInterrupt | None = None
_hooks: list[Callable[[], None]] = []
_installed = False
_fault: Callable[[], KeyboardInterrupt | None] | None = None  # set by iobench.dist
_last: int | None = None  # the last signal received
_exiting = False  # the result is written and the process is leaving: signals are moot


def _make(signum: int) -> KeyboardInterrupt:
    if signum == signal.SIGTERM:
        exc: KeyboardInterrupt = Terminated()
        if _fault is not None:  # an MPI peer asked this rank to stop (dist's watchdog)
            exc = _fault() or exc
        return exc
    return KeyboardInterrupt()


_in_hooks = False  # the handler is running the hooks (a signal arrived during them)


def set_event(ev: threading.Event) -> None:
    """`ev.set()` that never blocks, for signal handlers and their hooks: the handler runs
    in the main thread between two bytecodes, possibly while that thread holds the
    Event's (non-reentrant) lock, inside `ev.set()` or `ev.wait()` itself. Ctrl-C pressed
    twenty times in a row deadlocked a run for good that way (the second signal's
    `stop.set()` waited on the lock the first one's held; SIGTERM could not end it
    either). Where the lock is free it is an ordinary set; else the flag is set for the
    pollers (`is_set()`), and the holder's own set or wait ends as it would have."""
    cond = getattr(ev, "_cond", None)
    if cond is None:
        ev.set()
        return
    if cond.acquire(blocking=False):
        try:
            ev._flag = True  # type: ignore[attr-defined]
            cond.notify_all()
        finally:
            cond.release()
    else:
        ev._flag = True  # type: ignore[attr-defined]


def _handler(signum: int, frame: Any) -> None:
    global _pending, _last, _in_hooks
    if _exiting:
        return
    _last = signum
    exc = _make(signum)
    if not _in_hooks:  # a signal during the hooks: the running ones finish the job
        _in_hooks = True
        try:
            for hook in list(_hooks):
                with contextlib.suppress(Exception):
                    hook()
        finally:
            _in_hooks = False
    if _depth > 0:
        if _pending is None:
            _pending = exc
            return
        if not (_startup and _depth == 1):
            return  # already stopping: the shield holder acts on the first signal
    raise exc


def install() -> None:
    """Install the handlers and enter the start-up shield (see `end_startup`)."""
    global _installed, _depth, _startup
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    if not _installed:
        _installed = True
        _depth += 1
        _startup = True


def uninstall() -> None:
    """Forget the installation (the caller put its own handlers back)."""
    global _installed, _depth, _startup, _pending, _exiting
    if _startup:
        _depth -= 1
    _installed = _startup = _exiting = False
    _pending = None


def exiting() -> None:
    """From now on signals are ignored: what was measured is written, the process exits."""
    global _exiting
    if _installed:
        _exiting = True
        if threading.current_thread() is threading.main_thread():
            # ignored, not handled: Python resets handled signals to their default (death)
            # while it shuts down, which would turn exit 130 into -15 or -2
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def installed() -> bool:
    return _installed


def end_startup() -> None:
    """Leave the start-up shield (once); raise the signal that arrived during start-up."""
    global _depth, _startup
    if not _startup:
        return
    _startup = False
    _depth -= 1
    check()


def last_signal() -> int | None:
    """The last SIGINT/SIGTERM received (a suite names it after a step stopped)."""
    return _last


def pending() -> KeyboardInterrupt | None:
    return _pending


def take() -> KeyboardInterrupt | None:
    """The signal recorded under a shield (and forget it), or None."""
    global _pending
    exc, _pending = _pending, None
    return exc


def put_back(exc: KeyboardInterrupt) -> None:
    """Record again a signal that a polled MPI collective took (and raised) inside a
    shield, so the shield's holder still acts on it (unless one is recorded already)."""
    global _pending
    if _pending is None and not isinstance(exc, PeerFault):
        _pending = exc


def check() -> None:
    """Raise a recorded signal now, if no shield is held."""
    if _depth == 0 and _pending is not None:
        raise take()  # type: ignore[misc]


@contextlib.contextmanager
def shield(on_signal: Callable[[], None] | None = None) -> Iterator[None]:
    """Signals inside are recorded, not raised; `on_signal` runs when one arrives (and at
    once if one is already pending). Leaving the outermost shield raises the recorded
    signal unless the holder `take()`-ed it, or another exception is under way."""
    global _depth
    main = threading.current_thread() is threading.main_thread()
    if not main:  # signals only ever reach the main thread
        yield
        return
    if on_signal is not None:
        _hooks.append(on_signal)
        if _pending is not None:
            on_signal()
    _depth += 1
    ok = False
    try:
        yield
        ok = True
    finally:
        _depth -= 1
        if on_signal is not None:
            _hooks.remove(on_signal)
    if ok:
        check()


@contextlib.contextmanager
def on_signal(hook: Callable[[], None]) -> Iterator[None]:
    """Run `hook` inside the handler the moment a signal arrives (before it is raised or,
    under a shield, recorded); unlike `shield`, the signal still raises as usual. For
    work that cannot wait until the code under way notices: under MPI, rank 0 writes the
    reason into its result at once, because mpirun follows its SIGTERM with a SIGKILL one
    second later (odls_base_sigkill_timeout)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _hooks.append(hook)
    try:
        yield
    finally:
        _hooks.remove(hook)


def signalled() -> KeyboardInterrupt | None:
    """What the last signal received means (for a hook: SIGTERM, a peer's fault...)."""
    return _make(_last) if _last is not None else None


def set_fault_source(fn: Callable[[], KeyboardInterrupt | None] | None) -> None:
    """dist's watchdog: what a SIGTERM means when a peer rank asked for it."""
    global _fault
    _fault = fn


def die_with_parent(parent_pid: int | None = None) -> None:
    """In a child process: get SIGKILL when the parent dies (Linux PR_SET_PDEATHSIG), so
    a SIGKILLed iobench (or MPI rank) leaves no writer behind; exit at once if the parent
    is already gone."""
    if sys.platform == "linux":
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


class Worker(threading.Thread):
    """A daemon thread whose `done` event is set once its target has returned."""

    def __init__(self, target: Callable[..., Any], args: tuple[Any, ...] = (),
                 name: str | None = None) -> None:
        super().__init__(target=target, args=args, name=name, daemon=True)
        self.done = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.done.set()


def wait_workers(threads: Sequence[Worker], poll_s: float = 0.2,
                 on_poll: Callable[[], None] | None = None) -> None:
    """Block until every worker's target has returned. Call inside a `shield`: then no
    signal can cut the wait short, so nothing the workers use is released under them."""
    for t in threads:
        while not t.done.wait(poll_s):
            if on_poll is not None:
                on_poll()


def start_and_wait(threads: Sequence[Worker], stop: threading.Event | None = None,
                   on_signal: Callable[[], None] | None = None,
                   on_poll: Callable[[], None] | None = None) -> KeyboardInterrupt | None:
    """Start the workers and wait until all have returned, whatever signals arrive.

    A signal sets `stop` (and calls `on_signal`); the workers are still waited for. Returns
    the signal that arrived (the caller keeps what was measured, then raises it), or None.
    """
    def hook() -> None:  # in the signal handler (or here, on a failed start)
        if stop is not None:
            set_event(stop)
        if on_signal is not None:
            on_signal()

    with shield(on_signal=hook):
        try:
            for t in threads:
                t.start()
        except BaseException:
            hook()  # could not start them all: the started ones stop too
            raise
        finally:
            wait_workers([t for t in threads if t.ident is not None], on_poll=on_poll)
        return take()
