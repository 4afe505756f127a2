"""Run a suite: its steps through each kind's own run(), then its criteria, one result.

The steps' options are parsed by the kinds' Click commands (the one parser a step and the
command share), imported when a suite runs; this module itself imports neither click nor
rich, so `iobench.kinds.suite.run(...)` works from a notebook like every other kind.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import results as results_mod
from iobench import runner, verify
from iobench import target as target_mod
from iobench.errors import RunFailed, UsageError
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.suite import criteria as crit
from iobench.results import Recorder, Result


@dataclass(frozen=True)
class Spec:
    """A suite (a name under workloads/suites/ or a YAML path), with --set overrides."""

    suite: str
    sets: tuple[str, ...] = ()
    html_file: Path | None = None

    def validate(self) -> Spec:
        if not self.suite:
            raise UsageError("SUITE: give a suite name (e.g. quick) or a YAML path")
        return self


def build(suite: str, sets: tuple[str, ...] | list[str] = (), html_file: str | Path | None
          = None) -> Spec:
    return Spec(suite, tuple(sets), Path(html_file) if html_file else None).validate()


def plan(spec: Spec, target: Path) -> tuple[Any, list[Any], list[crit.Criterion]]:
    """(suite, resolved steps, criteria), every check done, nothing run."""
    from iobench.cli import cli
    from iobench.kinds.suite import steps as steps_mod

    suite, suite_dir_src = steps_mod.load_suite(spec.suite)
    steps = steps_mod.resolve_all(cli, suite, suite_dir_src)
    steps_mod.apply_overrides(steps, spec.sets)
    criteria = collect_criteria(suite, steps)
    crit.check(criteria, {s.id: s.command_name for s in steps})
    steps_mod.validate(steps, target)
    return suite, steps, criteria


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None,
            announce: Callable[[int, Any, float], None] | None = None) -> runner.Outcome:
    """Run every step, judge the criteria, write the suite's result.json and report.html.
    `announce(i, step, elapsed_s)` is called before each step (the command line draws a
    rule there)."""
    from iobench.cli import cli
    from iobench.kinds.suite import runner as suite_runner
    from iobench.kinds.suite import steps as steps_mod

    ctx = ctx or default_ctx()
    spec.validate()
    suite, steps, criteria = plan(spec, options.target)
    with target_mod.locked():
        tgt = target_mod.prepare(options.target, force=options.force, wait=options.wait > 0)
        suite_dir = _suite_dir(options.results_dir, suite.name)
        result = Recorder(kind="suite", name=suite.name, spec=steps_mod.spec_dict(suite, steps))
        _provisional(result, suite_dir, options.results_dir)
        outcomes: list[suite_runner.StepOutcome] = []
        t0 = time.monotonic()
        written: list[Path] = []

        def step_started(i: int, st: Any) -> None:
            if announce is not None:
                announce(i, st, time.monotonic() - t0)

        def body(r: Recorder) -> None:
            try:
                suite_runner.run_steps(cli, steps, r, suite_dir, tgt.root, options.force,
                                       ctx.json_out, step_started, outcomes)
            except KeyboardInterrupt as e:
                from iobench import interrupt

                term = isinstance(e, interrupt.Terminated) or interrupt.last_signal() == 15
                what = "SIGTERM" if term else "Ctrl-C"
                r.mark("partial", f"interrupted ({what}); finished steps are kept")
                raise
            finally:
                suite_runner.judge(r, criteria, outcomes, steps)
                # each step's result carries its own byte audit: the suite summarises them
                r.audit = verify.summarise_steps(r.children)
                r.warnings.extend(w for w in r.audit["warnings"] if w not in r.warnings)
                bad = [o for o in outcomes if o.state in ("failed", "error")]
                if bad and r.status == "ok":
                    r.mark("failed", "; ".join(f"step '{o.id}' {o.state}: {o.reason}"
                                               for o in bad))
                r.finished_utc = results_mod.utc_now()
                unsaved = _save(r, suite_dir, spec.html_file, written)
                if ctx.on_result is not None:  # a command: say where the files are
                    for w in written:
                        kind = "html" if w.suffix == ".html" else "result"
                        print(f"{kind}: {w}", file=sys.stderr, flush=True)
                if unsaved:
                    if sys.exc_info()[0] is None:  # nothing else under way: the error
                        raise RunFailed(unsaved)
                    r.warnings.append(unsaved)

        opts = RunOptions(target=tgt.root, results_dir=options.results_dir,
                          force=options.force, wait=options.wait, save=False)
        return runner.run(result, body, opts, ctx)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    return execute(spec, options, ctx).result


def _suite_dir(results_dir: Path, name: str) -> Path:
    return results_mod.new_run_dir(results_dir, results_mod.utc_now(), "suite", name)


def _provisional(result: Recorder, suite_dir: Path, results_dir: Path) -> None:
    """The suite's result.json before any step runs (failed, "did not finish"): a full
    results disk is found now (one line, exit 2, nothing left) and a killed suite still
    leaves a result."""
    result.mark("failed", "the suite did not finish (killed, or the machine stopped)")
    try:
        results_mod.write_atomic(suite_dir / "result.json", result.to_json())
    except OSError as e:
        shutil.rmtree(suite_dir, ignore_errors=True)
        raise UsageError(f"--results-dir {results_dir}: cannot write the suite's result "
                         f"({e.strerror or e}); free space or give another "
                         "--results-dir") from None
    finally:
        result.status, result.reason = "ok", None


def _save(r: Recorder, suite_dir: Path, html_file: Path | None,
          written: list[Path]) -> str | None:
    """Write the suite's result.json and report.html (and --html); on a full disk mark
    the result failed, keep a valid result.json saying so, and return the error line."""
    from iobench.report import html

    path = suite_dir / "result.json"
    where: Path | None = path
    try:
        results_mod.write_atomic(path, r.to_json())
        written.append(path)
        page = html.render([(suite_dir.name, r.freeze())])
        for where in (suite_dir / "report.html", html_file):
            if where is not None:
                results_mod.write_atomic(where, page)
                written.append(where)
        return None
    except OSError as e:
        note = (f"{where} could not be written ({e.strerror or e}); free space on its file "
                "system")
    ended = r.status, r.reason
    r.mark("failed", f"{note}; the suite itself ended: {ended[0]}"
           + (f" ({ended[1]})" if ended[1] else ""))
    try:  # the full result again (the disk may have room for it now), else in place
        results_mod.write_atomic(path, r.to_json())
    except OSError:
        failed = r.status, r.reason
        r.status, r.reason = ended
        results_mod.mark_unsaved(path, r, note)  # says the same, in the blocks it has
        r.status, r.reason = failed
    if path not in written and path.exists():
        written.append(path)
    return note


def collect_criteria(suite: Any, steps: list[Any]) -> list[crit.Criterion]:
    out = [crit.parse(t, f"{suite.name}: criteria[{i}]") for i, t in enumerate(suite.criteria)]
    for s_spec, st in zip(suite.steps, steps, strict=True):
        out += [crit.parse(t, f"step '{st.id}': criteria[{i}]", default_step=st.id)
                for i, t in enumerate(s_spec.criteria)]
    return out
