"""The life of one run: sysinfo, body, interruption and failure handling, save, render.

Every run command goes through `execute`, so every one writes its result atomically,
keeps a partial result on Ctrl-C/SIGTERM (exit 130) and a failed one on errors (exit 1).
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from iobench import dist, sysinfo
from iobench import results as results_mod
from iobench.errors import EXIT_FAILED, EXIT_INTERRUPTED, IobenchError, RunFailed
from iobench.results import Result


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop, keep what was measured."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def execute(
    result: Result,
    body: Callable[[Result], None],
    *,
    results_dir: Path,
    json_out: bool = False,
    target: Path | None = None,
    save: bool = True,
    render: Callable[[Result], None] | None = None,
) -> Result:
    """Run `body(result)` and finish the result whatever happens; exit non-zero on failure.

    A provisional result (status failed, "did not finish") is written before the body
    runs and replaced at the end, so even a SIGKILL leaves a result behind. Under MPI every
    rank runs the body; only rank 0 writes and prints. Bad input raised before any phase
    was measured propagates (exit 2, no result file).
    """
    w = dist.world()
    root = w.is_root
    result.sysinfo = sysinfo.collect(target) if root else {}
    if w.size > 1:
        hosts = w.allgather(w.hostname())
        result.sysinfo["mpi"] = {"ranks": w.size, "hosts": sorted(set(hosts)),
                                 "ranks_per_host": {h: hosts.count(h) for h in set(hosts)}}
    path: Path | None = None
    if save and root:
        provisional = result.status, result.reason
        result.mark("failed", "the run did not finish (killed, or the machine stopped)")
        path = results_mod.save(result, results_dir)
        result.run_dir = path.parent
        result.status, result.reason = provisional
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    code = 0
    message: str | None = None
    try:
        body(result)
    except KeyboardInterrupt as e:
        if isinstance(e, Terminated) and w.size > 1:
            result.mark("failed", "terminated by mpirun: a rank died or the job was "
                        "cancelled (mpirun's message names the rank)")
        else:
            what = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
            result.mark("partial", f"interrupted ({what}); phases measured so far are kept")
        code = EXIT_INTERRUPTED
    except RunFailed as e:
        result.mark("failed", e.format_message())
        code = EXIT_FAILED
        message = e.format_message()
    except IobenchError as e:
        if not result.phases:
            if path is not None:
                shutil.rmtree(path.parent, ignore_errors=True)
            raise
        message = e.format_message()
        result.mark("failed", f"bad input found after measuring had begun: {message}")
        code = 2
    except OSError as e:
        result.mark("failed", f"I/O error: {e}")
        code = EXIT_FAILED
        message = f"I/O error: {e}"
    finally:
        signal.signal(signal.SIGTERM, old)
    result.finished_utc = results_mod.utc_now()
    if root:
        if path is not None:
            results_mod.rewrite(result, path)
        if message:
            click.echo(f"error: {message}", err=True)
        if json_out:
            click.echo(result.to_json())
        else:
            from iobench.report import terminal

            (render or terminal.render)(result)
        if path is not None:
            click.echo(f"result: {path}", err=True)
    if code:
        sys.exit(code)
    return result
