"""The `iobench` executable: signal handlers first, then everything else.

The handlers are installed before the command line (and numpy, h5py, mpi4py...) is
imported, so a Ctrl-C or SIGTERM at any point of start-up ends in exit 130 (with a partial
result once the run's provisional result exists), never a traceback or death by signal.
"""

from __future__ import annotations


def main() -> None:
    from iobench import interrupt

    interrupt.install()
    code: int | str | None = 0
    try:
        try:
            from iobench.cli import main as cli_main

            cli_main()
        finally:
            # whatever happened, the process is leaving: from here on a signal is ignored,
            # so Python's shutdown (which puts handled signals back to their default,
            # death) cannot turn the exit code into -2 or -15; a signal that lands before
            # this line still raises, and is caught below
            interrupt.exiting()
    except KeyboardInterrupt:  # after the result was written, or before anything ran
        code = 130
    except SystemExit as e:
        code = e.code
    # never a KeyboardInterrupt out of here: Python would kill itself with SIGINT (-2)
    raise SystemExit(code)
