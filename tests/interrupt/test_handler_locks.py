"""The signal handler never blocks on a lock the interrupted main thread holds.

Found by a loaded run: Ctrl-C pressed twenty times during a native write left iobench
hanging for good, main thread in `Event.set` inside the handler inside `Event.set` inside
the handler: the second signal's `stop.set()` waited on the lock the first one's held (and
SIGTERM could not end it, its handler being stuck the same way). The two cases are made
deterministic here: the signal is raised while the main thread holds the stop Event's
lock, and a signal is raised from inside the hooks themselves. Each runs in a fresh
interpreter (the handlers are process-wide) with a timeout that only a hang reaches."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import signal, threading
    from iobench import interrupt

    interrupt.install()
    interrupt.end_startup()
    stop = threading.Event()
    calls = []

    def hook():
        calls.append(1)
        if CASE == "nested" and len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # a second Ctrl-C while the first is handled
        interrupt.set_event(stop)

    with interrupt.shield(on_signal=hook):
        if CASE == "held":
            with stop._cond:  # as inside stop.set() or stop.wait() when the signal lands
                signal.raise_signal(signal.SIGINT)
                assert stop.is_set()  # the pollers see it at once
        else:
            signal.raise_signal(signal.SIGINT)
        sig = interrupt.take()
    assert isinstance(sig, KeyboardInterrupt), sig
    assert stop.is_set() and stop.wait(0)
    assert calls == [1], calls  # the nested signal did not run the hooks again
    print("ok")
""")


@pytest.mark.parametrize("case", ["held", "nested"])
def test_a_signal_never_waits_on_a_lock_the_main_thread_holds(case: str) -> None:
    p = subprocess.run([sys.executable, "-c", f"CASE = {case!r}\n" + SCRIPT],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


def test_set_event_wakes_a_waiter() -> None:
    """Where the lock is free, set_event is an ordinary set: a thread waiting wakes."""
    import threading

    from iobench import interrupt

    ev = threading.Event()
    woke = threading.Event()

    def waiter() -> None:
        if ev.wait(120):
            woke.set()

    t = threading.Thread(target=waiter)
    t.start()
    interrupt.set_event(ev)
    t.join(120)
    assert woke.is_set()
