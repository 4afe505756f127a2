"""Caps on counts: far beyond any real machine, low enough that nothing downstream
(threads, processes, open files, 64-bit offsets) breaks before the one-line error."""

from __future__ import annotations

from iobench.errors import UsageError

MAX_SEED = 2**63 - 1
MAX_THREADS = 4096  # threads or processes one command starts per rank
MAX_COUNT = 2**40  # steps, epochs, runs, files


def check_open_files(n: int, what: str) -> None:
    """`n` files open at once must fit the open-files limit (RLIMIT_NOFILE, with room for
    the interpreter's own), or one line saying how to raise it."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and n + 64 > soft:
        raise UsageError(f"{what}: {n} files open at once do not fit this process's "
                         f"open-files limit ({soft}, ulimit -n); raise it (ulimit -n "
                         f"{n + 256}) or use fewer")
