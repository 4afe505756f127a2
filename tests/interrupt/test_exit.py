"""A Ctrl-C or SIGTERM while Python shuts down, after the result was written: the exit
code the run chose stays (0, or 130 for an interrupted run), with no traceback. Before,
the handler was still installed then: it raised inside the shutdown (a traceback on
stderr), and where Python had already put the default back, the process died of the
signal (-2 or -15) although its result said otherwise. The signal is sent by the process
itself from an atexit hook, i.e. exactly while it shuts down."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

_PROG = textwrap.dedent("""
    import atexit, os, signal, sys
    import iobench.cli
    from iobench import _entry, interrupt

    code, sig = int(sys.argv[1]), int(sys.argv[2])

    def command():  # a run that wrote its result and leaves with `code`
        interrupt.end_startup()
        raise SystemExit(code)

    def late():
        os.kill(os.getpid(), sig)
        for _ in range(200000):  # Python runs the handler between these bytecodes
            pass

    iobench.cli.main = command
    atexit.register(late)
    _entry.main()
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("code", [0, 130, 1])
def test_a_signal_during_shutdown_keeps_the_exit_code(code, sig):
    p = subprocess.run([sys.executable, "-c", _PROG, str(code), str(int(sig))],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
