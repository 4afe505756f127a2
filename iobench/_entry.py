"""The `iobench` executable: signal handlers first, then everything else.

The handlers are installed before the command line (and numpy, h5py, mpi4py...) is
imported, so a Ctrl-C or SIGTERM at any point of start-up ends in exit 130 (with a partial
result once the run's provisional result exists), never a traceback or death by signal.
"""

from __future__ import annotations


def main() -> None:
    from iobench import interrupt

    interrupt.install()
    try:
        from iobench.cli import main as cli_main
    except KeyboardInterrupt:  # a second signal while importing: nothing to keep
        raise SystemExit(130) from None
    try:
        cli_main()
    except KeyboardInterrupt:  # after the result was written, or before anything ran
        raise SystemExit(130) from None
