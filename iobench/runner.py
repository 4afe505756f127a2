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
from typing import TypeVar

from iobench import dist, interrupt, sysinfo, verify
from iobench import results as results_mod
from iobench.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    IobenchError,
    ReportedByRoot,
    RunFailed,
    UsageError,
)
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
    if w.missing and not w.peers:  # stopped while waiting for the ranks to check in
        names = ", ".join(f"rank {r}" for r in w.missing)
        return "failed", (f"{names} never checked in (killed or crashed during start-up) "
                          "and the job was stopped; nothing was measured")
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


Prepare = Callable[[Recorder], "Path | None"]


def run(rec: Recorder, body: Callable[[Recorder], None], options: RunOptions,
        ctx: Ctx, prepare: Prepare | None = None) -> Outcome:
    """Run `prepare(rec)` then `body(rec)` and finish the result whatever happens; never
    exits the process.

    A provisional result (status failed, "did not finish") is written first, before
    `prepare` (the target's preparation: `dist.root_first`, the layout's checks) and
    before any collective across MPI ranks, and replaced at the end, so even a SIGKILL of
    any rank leaves a result behind. `prepare` fills the recorder's spec (the files it
    laid out) and returns the prepared target's root (for sysinfo), or None. Under MPI
    every rank runs both; only rank 0 writes and reports (ctx.on_result). Bad input raised
    before any phase was measured propagates (exit 2) and removes the provisional result
    (and the results directories this run created), so nothing is left. A signal that
    arrived during start-up is acted on once the provisional result exists (exit 130, a
    partial result).
    """
    global _nesting
    restore = _install()
    _nesting += 1
    try:
        return _run(rec, body, options, ctx, prepare)
    finally:
        _nesting -= 1
        restore()


def nested() -> bool:
    """True inside another run (a suite's step)."""
    return _nesting > 0


def _missing_dirs(d: Path) -> list[Path]:
    """`d` and its parents that do not exist yet (innermost first)."""
    out: list[Path] = []
    d = d.absolute()
    while d != d.parent:
        try:
            if d.exists():
                break
        except OSError:  # e.g. a name too long: creating it fails later, with one line
            return []
        out.append(d)
        d = d.parent
    return out


def _save_provisional(result: Recorder, path: Path | None, results_dir: Path) -> Path:
    """Write the provisional result (failed, "did not finish"); with `path`, refresh it
    (best effort: the first one stays if the disk is full)."""
    provisional = result.status, result.reason
    result.mark("failed", "the run did not finish (killed, or the machine stopped)")
    try:
        if path is None:
            path = results_mod.save(result, results_dir)
        else:
            results_mod.rewrite(result, path)
    except OSError as e:
        if path is not None:  # a refresh: the first provisional result stays as it is
            return path
        raise UsageError(f"--results-dir {results_dir}: cannot write the result "
                         f"({e.strerror or e}); free space or give another "
                         "--results-dir") from None
    finally:
        result.status, result.reason = provisional
    return path


def _run(result: Recorder, body: Callable[[Recorder], None], options: RunOptions,
         ctx: Ctx, prepare: Prepare | None = None) -> Outcome:
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
    created: list[Path] = []  # results directories this run made (removed on bad input)
    audit: verify.RunWindow | None = None
    try:
        result.sysinfo = _bad_path_is_input(lambda: sysinfo.collect(options.target)) \
            if root else {}
        if options.save and root:
            created = _bad_path_is_input(lambda: _missing_dirs(results_dir))
            path = _save_provisional(result, None, results_dir)
            result.run_dir = path.parent
        interrupt.end_startup()
        if w.size > 1:  # the first collective: the provisional result exists
            w.gather_peers()
            hosts = [h for h, _ in w.peers]
            result.sysinfo["mpi"] = {"ranks": w.size, "hosts": sorted(set(hosts)),
                                     "ranks_per_host": {h: hosts.count(h) for h in set(hosts)}}
        prepared = None
        if prepare is not None:
            prepared = _bad_path_is_input(lambda: prepare(result))
            if root:
                if prepared is not None and "target" not in result.sysinfo:
                    result.sysinfo.update(sysinfo.target_info(prepared))
                if path is not None:  # the spec now names the files laid out
                    _save_provisional(result, path, results_dir)
        audit = verify.RunWindow(prepared or options.target)
        at_once = interrupt.on_signal(lambda: _reason_at_once(result, ctx)) \
            if w.size > 1 and root else contextlib.nullcontext()
        with at_once:
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
            if audit is not None:
                audit.close()
            if w.size > 1 and not isinstance(e, ReportedByRoot) and \
                    not getattr(e, "told_ranks", False):
                w.notify_fault(f"failed: {e.format_message()}")
            if path is not None:
                shutil.rmtree(path.parent, ignore_errors=True)
            for d in created:  # only if still empty: another run's results stay
                with contextlib.suppress(OSError):
                    d.rmdir()
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
        if os.environ.get("IOBENCH_DEBUG"):
            traceback.print_exc()
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
        if audit is not None:
            _audit(result, audit, w, gather=code == 0)
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


def _audit(result: Recorder, window: verify.RunWindow, w: dist.World,
           gather: bool = True) -> None:
    """The run's independent byte audit and CPU cost (iobench.verify.judge_run) into
    result.audit, its disagreements into the warnings. Never fails the run: an audit
    that cannot be made says why.

    Under MPI every rank's own counts (verify.rank_counts: its /proc/self/io, untimed
    I/O, allowance, its host's device) go to rank 0, which judges their sums against the
    merged phases; only a rank whose run ended cleanly (`gather`) takes part, and a rank
    that stopped early makes rank 0's audit `skipped`, never a hang: the gather is polled
    (peer faults, signals and IOBENCH_MPI_TIMEOUT still act)."""
    try:
        window.close()
        per_rank: list[dict] | None = None
        if w.size > 1 and gather:
            mine = verify.rank_counts(window, w.hostname())
            try:
                per_rank = w.gather(mine)
            except KeyboardInterrupt as e:  # a signal or a peer's fault during the gather
                interrupt.put_back(e)
                if w.is_root:
                    result.audit = {"verdict": "skipped", "agrees": None,
                                    "skipped": "under MPI: the ranks' counters could not be "
                                               f"gathered ({e or type(e).__name__})"}
                return
        if not w.is_root:
            return
        if not result.phases:
            return
        a = verify.judge_run(window, result.phases, ranks=w.size, per_rank=per_rank,
                             ioengine=(result.spec or {}).get("ioengine"))
    except Exception as e:  # noqa: BLE001 - the measured result matters more
        result.audit = {"error": f"{type(e).__name__}: {e}"}
        return
    result.audit = a
    result.warnings.extend(a.get("warnings") or [])


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


def _reason_at_once(rec: Recorder, ctx: Ctx) -> None:
    """In the signal handler, on rank 0 under MPI: the reason (naming a dead or faulty
    rank) into the result file now. mpirun SIGTERMs the other ranks when one dies and
    SIGKILLs them a second later; the body may take longer than that to notice the
    signal (its workers finish their step first), so `note_fault` there came too late on
    a loaded machine and the result still said "did not finish". Only rank 0 writes
    here: no MPI call is made from a handler. The run rewrites the result as usual."""
    e = interrupt.signalled()
    # only what is known without an MPI call (a handler must not make one: the main
    # thread may be inside one): a dead rank on this host, or a peer's notice received
    if e is not None and (isinstance(e, interrupt.PeerFault) or dist.dead_peers(ctx.world)):
        with contextlib.suppress(Exception):
            note_fault(rec, e, ctx)


T = TypeVar("T")
_PATH_ERRNOS = (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EROFS,
                errno.EINVAL, errno.EACCES, errno.EPERM)


def _bad_path_is_input(fn: Callable[[], T]) -> T:
    """A path the kernel refuses while the target is prepared (a name too long, a loop of
    links, read-only) is bad input: one line, exit 2, no result left."""
    try:
        return fn()
    except OSError as e:
        if e.errno not in _PATH_ERRNOS:
            raise
        name = str(e.filename) if e.filename is not None else "a path"
        if len(name) > 120:
            name = name[:60] + "..." + name[-40:]
        raise UsageError(f"{name}: {e.strerror or e}; check the path") from None


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
