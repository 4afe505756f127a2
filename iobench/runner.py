"""The life of one run: sysinfo, body, interruption and failure handling, save, render.

Every run command goes through `execute`, so every one writes its result atomically,
keeps a partial result on Ctrl-C/SIGTERM (exit 130) and a failed one on errors (exit 1).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from iobench import results as results_mod
from iobench import sysinfo
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

    Bad input raised before any phase was measured propagates (exit 2, no result file).
    """
    result.sysinfo = sysinfo.collect(target)
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    code = 0
    try:
        body(result)
    except KeyboardInterrupt as e:
        what = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
        result.mark("partial", f"interrupted ({what}); phases measured so far are kept")
        code = EXIT_INTERRUPTED
    except RunFailed as e:
        result.mark("failed", e.format_message())
        code = EXIT_FAILED
        click.echo(f"error: {e.format_message()}", err=True)
    except IobenchError:
        if not result.phases:
            raise
        result.mark("failed", "bad input found after measuring had begun")
        code = 2
    except OSError as e:
        result.mark("failed", f"I/O error: {e}")
        code = EXIT_FAILED
        click.echo(f"error: I/O error: {e}", err=True)
    finally:
        signal.signal(signal.SIGTERM, old)
    result.finished_utc = results_mod.utc_now()
    path = results_mod.save(result, results_dir) if save else None
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
