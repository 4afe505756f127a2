"""The life of one run: sysinfo, body, interruption and failure handling, save.

Every run goes through `run`, so every one writes its result atomically, keeps a partial
result on Ctrl-C/SIGTERM (exit code 130) and a failed one on errors (1). It prints
nothing and never exits the process: the command line (iobench.cli.finish) shows the
Outcome and exits with its code; a library caller reads the Result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iobench import dist, interrupt, sysinfo
from iobench import results as results_mod
from iobench.errors import EXIT_FAILED, EXIT_INTERRUPTED, IobenchError, RunFailed, UsageError
from iobench.kinds.base import Ctx, RunOptions
from iobench.results import Recorder, Result

Terminated = interrupt.Terminated  # SIGTERM, handled like Ctrl-C (kept for importers)


def _interrupt_reason(e: KeyboardInterrupt, w: dist.World) -> tuple[str, str]:
    """(status, reason) for a run stopped by a signal or by a peer rank's fault."""
    what = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
    if w.size == 1:
        return "partial", f"interrupted ({what}); phases measured so far are kept"
    dead = dist.dead_peers(w)
    if dead:
        names = ", ".join(f"rank {r} (pid {w.peers[r][1]})" for r in dead)
        return "failed", (f"{names} died (killed or crashed) and the job was stopped; "
                          "phases measured so far are kept")
    if isinstance(e, interrupt.PeerFault):
        return "failed", f"{e}; every rank stopped, phases measured so far are kept"
    fault = w.fault()
    if fault is not None:
        return "failed", (f"rank {fault[0]} ({fault[1]}) {fault[2]}; every rank stopped, "
                          "phases measured so far are kept")
    return "failed", (f"rank {w.rank} ({w.hostname()}) was interrupted ({what}): this rank "
                      "was signalled, or mpirun stopped the job (its message names the "
                      "rank); phases measured so far are kept")


_nesting = 0  # execute() calls under way (a suite runs its steps' inside its own)


def _install() -> Callable[[], None]:
    """Signal handlers for a run started without the `iobench` entry point (tests, a
    library caller); returns how to put the old ones back."""
    if interrupt.installed():
        return lambda: None
    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupt.install()

    def restore() -> None:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
        interrupt.uninstall()

    return restore


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its frozen Result, the exit code a command gives for it, the
    error line to show (if any), where the result was written and whether that worked."""

    result: Result
    code: int
    message: str | None = None
    path: Path | None = None
    saved: bool = True
    late: KeyboardInterrupt | None = None  # a signal that arrived while finishing


def run(rec: Recorder, body: Callable[[Recorder], None], options: RunOptions,
        ctx: Ctx) -> Outcome:
    """Run `body(rec)` and finish the result whatever happens; never exits the process.

    A provisional result (status failed, "did not finish") is written before the body
    runs (and before any collective across MPI ranks) and replaced at the end, so even a
    SIGKILL leaves a result behind. Under MPI every rank runs the body; only rank 0 writes
    and reports (ctx.on_result). Bad input raised before any phase was measured propagates
    (exit 2, no result file). A signal that arrived during start-up is acted on once the
    provisional result exists (exit 130, a partial result).
    """
    global _nesting
    restore = _install()
    _nesting += 1
    try:
        return _run(rec, body, options, ctx)
    finally:
        _nesting -= 1
        restore()


def nested() -> bool:
    """True inside another run (a suite's step)."""
    return _nesting > 0


def _run(result: Recorder, body: Callable[[Recorder], None], options: RunOptions,
         ctx: Ctx) -> Outcome:
    w = ctx.world
    root = w.is_root
    path: Path | None = None
    code = 0
    message: str | None = None
    local_fault = False  # this rank stopped on its own: the other ranks must be told
    what = ""  # what happened to this rank, for the other ranks
    world_fault = False  # ranks stopped at different places: rank 0 ends the world
    results_dir = options.results_dir
    if ctx.command_line:
        result.command_line = list(ctx.command_line)
    try:
        result.sysinfo = sysinfo.collect(options.target) if root else {}
        if options.save and root:
            provisional = result.status, result.reason
            result.mark("failed", "the run did not finish (killed, or the machine stopped)")
            try:
                path = results_mod.save(result, results_dir)
                result.run_dir = path.parent
            except OSError as e:
                raise UsageError(f"--results-dir {results_dir}: cannot write the result "
                                 f"({e.strerror or e}); free space or give another "
                                 "--results-dir") from None
            finally:
                result.status, result.reason = provisional
        interrupt.end_startup()
        if w.size > 1:
            peers = w.allgather((w.hostname(), os.getpid()))
            w.peers = [(str(h), int(p)) for h, p in peers]
            hosts = [h for h, _ in w.peers]
            result.sysinfo["mpi"] = {"ranks": w.size, "hosts": sorted(set(hosts)),
                                     "ranks_per_host": {h: hosts.count(h) for h in set(hosts)}}
        body(result)
    except KeyboardInterrupt as e:
        result.mark(*_interrupt_reason(e, w))
        what = f"was interrupted ({'SIGTERM' if isinstance(e, Terminated) else 'Ctrl-C'})"
        code = EXIT_INTERRUPTED
        local_fault = not isinstance(e, interrupt.PeerFault)
        world_fault = True
    except dist.RankFailed as e:  # every rank learnt it at the same collective
        result.mark("failed", e.format_message())
        code = EXIT_FAILED
        message = e.format_message()
    except RunFailed as e:
        fault = w.fault() if w.size > 1 else None
        if w.size > 1 and dist.dead_peers(w):  # e.g. its helper processes killed with it
            result.mark(*_interrupt_reason(Terminated(), w))
            code = EXIT_FAILED
            world_fault = True
        elif fault is not None:  # stopped because a peer did (e.g. the training step barrier)
            result.mark("failed", f"rank {fault[0]} ({fault[1]}) {fault[2]}; every rank "
                        "stopped, phases measured so far are kept")
            code = EXIT_INTERRUPTED if "interrupted" in fault[2] else EXIT_FAILED
            world_fault = True
        else:
            result.mark("failed", e.format_message())
            code = EXIT_FAILED
            message = e.format_message()
            local_fault = world_fault = True
    except IobenchError as e:
        if not result.phases:
            if w.size > 1:
                w.notify_fault(f"failed: {e.format_message()}")
            if path is not None:
                shutil.rmtree(path.parent, ignore_errors=True)
            raise
        message = e.format_message()
        result.mark("failed", f"bad input found after measuring had begun: {message}")
        code = 2
        local_fault = world_fault = True
    except OSError as e:
        message = _os_error(e)
        result.mark("failed", message)
        code = EXIT_FAILED
        local_fault = world_fault = True
    except Exception as e:  # a bug: the result still says what happened
        message = (f"internal error: {type(e).__name__}: {e} (a bug in iobench; "
                   "IOBENCH_DEBUG=1 shows the traceback)")
        result.mark("failed", message)
        code = EXIT_FAILED
        local_fault = world_fault = True
        if os.environ.get("IOBENCH_DEBUG"):
            traceback.print_exc()
    if local_fault and not what:
        what = f"failed: {message or result.reason}"
    with interrupt.shield():  # finishing the result: a late signal cannot cut it short
        if w.size > 1 and local_fault and not root:
            w.notify_fault(what)  # rank 0 learns it now, wherever it is
        frozen, saved, unsaved = _finish(result, path, root)
        if not saved and not code:
            code = EXIT_FAILED  # measured, but the result file could not be written
        if unsaved:
            message = f"{message}; {unsaved}" if message else unsaved
        out = Outcome(frozen, code, message, path, saved)
        if root and ctx.on_result is not None:
            ctx.on_result(frozen, path if saved else None, ctx.json_out, message)
        late = interrupt.take()
    if w.size > 1 and world_fault:
        _leave_world(w, code, local_fault, what)
    if code and _nesting == 1:  # not a suite's step: the process is leaving now
        interrupt.exiting()
    return Outcome(out.result, out.code, out.message, out.path, out.saved, late)


def execute(result: Recorder, body: Callable[[Recorder], None], *, results_dir: Path,
            json_out: bool = False, target: Path | None = None, save: bool = True,
            render: Callable[[Result], None] | None = None) -> Result:
    """The command line's way to run: `run`, then show the result and exit non-zero on
    failure (iobench.cli.finish). Kept for commands not yet moved to iobench/kinds/."""
    from iobench import cli

    options = RunOptions(target=target or Path(), results_dir=results_dir, save=save)
    ctx = Ctx(world=dist.world(), on_result=cli.reporter(render), json_out=json_out)
    return cli.finish(run(result, body, options, ctx))


def note_fault(rec: Recorder, e: BaseException, ctx: Ctx) -> None:
    """Call at once when a body under MPI is interrupted (its signal, or a peer's fault),
    before anything that can take time (stopping helper processes): rank 0 rewrites its
    provisional result with the reason naming the rank, so a SIGKILL from mpirun a moment
    later still leaves a failed result that says what happened; another rank tells rank 0
    now instead of after its own clean-up. Any other error counts only when a peer rank
    is dead (its rank processes killed with the job). The run finishes as usual after."""
    w = ctx.world
    if w.size == 1:
        return
    if not isinstance(e, KeyboardInterrupt):  # an error: a fault only if a peer is dead
        if not (w.is_root and rec.run_dir is not None and dist.dead_peers(w)):
            return
        e = Terminated()
    if not w.is_root:
        if not isinstance(e, interrupt.PeerFault):
            what = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
            w.notify_fault(f"was interrupted ({what})")
        return
    if rec.run_dir is None:
        return
    rec.mark(*_interrupt_reason(e, w))
    with interrupt.shield(), contextlib.suppress(OSError):
        results_mod.rewrite(rec, rec.run_dir / "result.json")


def _os_error(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return f"disk full ({e.filename or 'target'}): {e.strerror}; free space"
    return f"I/O error: {e}"


def _leave_world(w: dist.World, code: int, local_fault: bool, reason: str) -> None:
    """After a fault under MPI: tell the others, and make sure no rank is left waiting."""
    if w.is_root:
        if local_fault:  # after writing: mpirun may SIGKILL everyone a second after this
            w.notify_fault(reason)
        w.abort(code)  # the result is written: end every rank, nobody waits in Finalize
    else:
        w.wait_to_be_aborted(15.0)


def _finish(result: Recorder, path: Path | None, root: bool) -> tuple[Result, bool, str | None]:
    """Write the final result; (the frozen result, saved?, why not)."""
    result.finished_utc = results_mod.utc_now()
    if not root:
        return result.freeze(), True, None
    if path is not None:
        try:
            results_mod.rewrite(result, path)
        except OSError as e:
            note = (f"the result could not be saved to {path} ({e.strerror or e}); free "
                    "space on the results directory")
            results_mod.mark_unsaved(path, result, note)
            return result.freeze(), False, note
    return result.freeze(), True, None
