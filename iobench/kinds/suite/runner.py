"""Run a suite's steps in order, collect their Results, judge the criteria.

Each step is the registered Click command invoked in-process with a results directory of
its own, so the Recorder it saved is found without guessing. A step that fails is recorded
and the suite goes on (its criteria fail); Ctrl-C stops the suite and keeps what finished.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from iobench import results as results_mod
from iobench.errors import EXIT_INTERRUPTED, IobenchError
from iobench.kinds.suite import criteria as crit
from iobench.kinds.suite.steps import Step
from iobench.results import Recorder


@dataclass
class StepOutcome:
    id: str
    command: str
    command_line: str
    state: str  # ok | partial | failed (from its Recorder), error (no Recorder), interrupted
    exit_code: int
    seconds: float
    result_path: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    return e.code if isinstance(e.code, int) else 1


COMMON = ("target", "results_dir", "json_out", "force")


def _kind_cli(step: Step) -> Any:
    """The step's kind's cli module when the kind runs directly (iobench/kinds/)."""
    from iobench import kinds

    mod = kinds.module("-".join(step.path), "cli")
    return mod if mod is not None and hasattr(mod, "spec_from_params") else None


def _run_kind(kind_cli: Any, step: Step, argv: list[str]) -> int:
    """Run a step through its kind's run(): Click only parses the step's options (the
    same parser the command uses), then spec_from_params -> execute. The step's result
    records the step's own command line."""
    from iobench import cli as cli_mod

    rest = argv[len(step.path):]
    ctx = step.command.make_context(step.command_name, rest)
    params = dict(ctx.params)
    if params.pop("what_if", False):  # a plan, not a run: the command prints it
        step.command.invoke(ctx)
        return 0
    options = cli_mod.run_options(params["target"], params["results_dir"], params["force"])
    spec = kind_cli.spec_from_params({k: v for k, v in params.items() if k not in COMMON})
    run_mod = importlib.import_module(kind_cli.__name__.rsplit(".", 1)[0] + ".run")
    out = run_mod.execute(spec, options, cli_mod.run_context(
        False, command_line=("iobench", *argv)))
    if out.late is not None:  # a signal arrived while the step finished: the suite stops
        raise out.late
    return int(out.code)


def run_step(group: click.Group, step: Step, target: Path, step_dir: Path, force: bool,
             stdout_to_stderr: bool = False) -> tuple[StepOutcome, dict[str, Any] | None]:
    """Invoke one step; return its outcome and its saved Recorder (as a dict) if any.

    Raises KeyboardInterrupt after recording, when the step was interrupted.
    """
    argv = step.argv(target, step_dir, force)
    t0 = time.monotonic()
    code, reason = 0, None
    redirect = (contextlib.redirect_stdout(sys.stderr) if stdout_to_stderr
                else contextlib.nullcontext())
    kind_cli = _kind_cli(step)
    try:
        with redirect:
            if kind_cli is not None:
                code = _run_kind(kind_cli, step, argv)
            else:
                group.main(args=argv, prog_name="iobench", standalone_mode=False)
    except SystemExit as e:  # runner.execute exits 1 (failed) or 130 (interrupted)
        code = _exit_code(e)
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except (click.ClickException, IobenchError) as e:  # bad input found by the command
        code, reason = e.exit_code, e.format_message()
        click.echo(f"error: step '{step.id}': {reason}", err=True)
    except Exception as e:  # a bug in a command must not lose the other steps' results
        code, reason = 1, f"internal error: {type(e).__name__}: {e} (a bug in iobench)"
        click.echo(f"error: step '{step.id}': {reason}", err=True)
        if os.environ.get("IOBENCH_DEBUG"):
            traceback.print_exc()
    seconds = time.monotonic() - t0
    saved = sorted(step_dir.glob("*/result.json"))
    child: dict[str, Any] | None = None
    state = "error" if code else "ok"
    path = None
    if saved:
        path = saved[-1]
        res = results_mod.load(path)
        child = res.to_dict()
        child["step_id"] = step.id
        state = res.status
        reason = reason or res.reason
    elif code == 0:
        state, reason = "error", "the command saved no result"
    if code == EXIT_INTERRUPTED:
        state = "interrupted"
    out = StepOutcome(id=step.id, command=step.command_name, command_line=step.display(),
                      state=state, exit_code=code, seconds=seconds,
                      result_path=str(path) if path else None, reason=reason)
    return out, child


def judge(result: Recorder, criteria: list[crit.Criterion], outcomes: list[StepOutcome],
          steps: list[Step]) -> list[crit.Verdict]:
    """Evaluate every criterion against the children; write verdicts into result.metrics."""
    all_ids = [s.id for s in steps]
    leaf = {s.id: s.path[-1] for s in steps}
    by_id = {c.get("step_id"): c for c in result.children}
    ran = {o.id: o for o in outcomes}
    verdicts: list[crit.Verdict] = []
    for c in criteria:
        o = ran.get(c.step)
        if o is None:
            note = "not run (the suite was interrupted)" if c.step in all_ids else "no such step"
        elif o.state == "interrupted":
            note = "not run (the suite was interrupted)" if c.step not in by_id else ""
        else:
            note = f"step {o.state}: {o.reason}" if c.step not in by_id else ""
        v = crit.evaluate(c, by_id.get(c.step), note or "step did not run",
                          prefix=leaf.get(c.step, ""))
        if o is not None and o.state == "interrupted" and v.state == "FAIL" \
                and v.measured is None:
            # a partial step that never got to this figure: unknown, not failed
            v = crit.Verdict(c, "SKIP", None, f"step interrupted before it measured this "
                                              f"({v.note})")
        verdicts.append(v)
    passed = sum(v.state == "PASS" for v in verdicts)
    failed = sum(v.state == "FAIL" for v in verdicts)
    bad_steps = [o.id for o in outcomes if o.state in ("failed", "error")]
    interrupted = result.status == "partial" or any(o.state == "interrupted" for o in outcomes)
    if interrupted:
        verdict = "INCOMPLETE"
    elif failed or bad_steps:
        verdict = "FAIL"
    else:
        verdict = "PASS"
    result.metrics.update({
        "verdict": verdict, "criteria_total": len(verdicts), "criteria_passed": passed,
        "criteria_failed": failed, "criteria_skipped": len(verdicts) - passed - failed,
        "steps_total": len(all_ids), "steps_run": len(outcomes),
        "steps_failed": len(bad_steps),
        "criteria": [v.to_dict() for v in verdicts],
        "steps": [o.to_dict() for o in outcomes],
    })
    return verdicts


def run_steps(group: click.Group, steps: list[Step], result: Recorder, suite_dir: Path,
              target: Path, force: bool, stdout_to_stderr: bool,
              announce: Callable[[int, Step], None], outcomes: list[StepOutcome]) -> None:
    """Run the steps in order into result.children and `outcomes`.

    Ctrl-C (in a step or between steps) propagates as KeyboardInterrupt once the
    interrupted step's partial Recorder has been recorded.
    """
    for i, step in enumerate(steps):
        announce(i, step)
        step_dir = suite_dir / "steps" / f"{i + 1:02d}-{step.id}"
        outcome, child = run_step(group, step, target, step_dir, force, stdout_to_stderr)
        outcomes.append(outcome)
        if child is not None:
            result.children.append(child)
        result.metrics["steps"] = [o.to_dict() for o in outcomes]
        if outcome.state == "interrupted":
            raise KeyboardInterrupt
