"""`iobench run SUITE`: run a suite's steps, judge its criteria, one Recorder and report."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from iobench import results as results_mod
from iobench import target as target_mod
from iobench.cli import cli, common_run_options
from iobench.errors import EXIT_FAILED, RunFailed, UsageError
from iobench.report import terminal
from iobench.results import Recorder, Result
from iobench.runner import execute
from iobench.suite import criteria as crit
from iobench.suite import runner as suite_runner
from iobench.suite import steps as steps_mod

_STATE_STYLE = {"PASS": "bold green", "FAIL": "bold red", "SKIP": "yellow",
                "INCOMPLETE": "bold yellow", "ok": "green", "partial": "yellow",
                "failed": "red", "error": "red", "interrupted": "yellow"}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 10000 else f"{v:.4g}"
    return str(v)


def criteria_table(verdicts: list[dict[str, Any]]) -> Table:
    t = Table(title="Criteria", title_justify="left")
    for col, just in (("criterion", "left"), ("measured", "right"), ("required", "left"),
                      ("verdict", "left"), ("note", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for v in verdicts:
        req = v["required"]
        req_s = (("true" if req else "false") if isinstance(req, bool) else f"{req:g}")
        ref = v["step"] + (f".{v['phase']}" if v.get("phase") else "") + f".{v['metric']}"
        t.add_row(ref, _fmt(v["measured"]), f"{v['op']} {req_s}",
                  Text(v["state"], style=_STATE_STYLE.get(v["state"], "")), v.get("note") or "")
    return t


def steps_table(steps: list[dict[str, Any]]) -> Table:
    t = Table(title="Steps", title_justify="left")
    for col, just in (("step", "left"), ("command", "left"), ("status", "left"),
                      ("s", "right"), ("note", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in steps:
        t.add_row(s["id"], s["command_line"], Text(s["state"], style=_STATE_STYLE.get(
            s["state"], "")), f"{s['seconds']:.1f}", s.get("reason") or "")
    return t


def suite_renderables(result: Result) -> list[RenderableType]:
    m = result.metrics
    out: list[RenderableType] = []
    if m.get("steps"):
        out.append(steps_table(m["steps"]))
    if m.get("criteria"):
        out.append(criteria_table(m["criteria"]))
    verdict = m.get("verdict", "INCOMPLETE")
    line = Text("verdict: ")
    line.append(verdict, style=_STATE_STYLE.get(verdict, ""))
    line.append(f"  ({m.get('criteria_passed', 0)}/{m.get('criteria_total', 0)} criteria "
                f"passed, {m.get('steps_run', 0)}/{m.get('steps_total', 0)} steps run, "
                f"{m.get('steps_failed', 0)} failed)")
    out.append(line)
    return out


terminal.register("suite", suite_renderables)


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


def collect_criteria(suite: steps_mod.SuiteSpec, steps: list[steps_mod.Step]
                     ) -> list[crit.Criterion]:
    out = [crit.parse(t, f"{suite.name}: criteria[{i}]") for i, t in enumerate(suite.criteria)]
    for s_spec, st in zip(suite.steps, steps, strict=True):
        out += [crit.parse(t, f"step '{st.id}': criteria[{i}]", default_step=st.id)
                for i, t in enumerate(s_spec.criteria)]
    return out


def _plan_table(suite: steps_mod.SuiteSpec, steps: list[steps_mod.Step],
                criteria: list[crit.Criterion]) -> list[RenderableType]:
    t = Table(title=f"suite {suite.name}: {suite.description}", title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("step")
    t.add_column("command line (plus --target, --results-dir)")
    for i, st in enumerate(steps):
        t.add_row(str(i + 1), st.id, st.display())
    c = Table(title="Criteria", title_justify="left")
    c.add_column("criterion")
    for cr in criteria:
        c.add_row(f"{cr.ref} {cr.required}")
    return [t, c]


@cli.command("run")
@click.argument("suite")
@common_run_options
@click.option("--set", "sets", multiple=True, metavar="STEP.OPTION=VALUE",
              help="Override a step's option, e.g. --set io.size=8MiB (repeatable).")
@click.option("--html", "html_file", type=click.Path(path_type=Path), default=None,
              help="Also write the self-contained HTML report to this file.")
@click.option("--dry-run", is_flag=True,
              help="Check the suite and print each step's command line; run nothing.")
def run_cmd(suite: str, target: Path, json_out: bool, results_dir: Path, force: bool,
            sets: tuple[str, ...], html_file: Path | None, dry_run: bool) -> None:
    """Run a SUITE (a name under workloads/suites/ or a YAML path): steps, then criteria.

    Exit status: 0 all criteria pass, 1 a criterion or a step failed, 2 bad input,
    130 interrupted (finished steps are kept, the suite is marked partial).
    """
    spec, suite_dir_src = steps_mod.load_suite(suite)
    steps = steps_mod.resolve_all(cli, spec, suite_dir_src)
    steps_mod.apply_overrides(steps, sets)
    criteria = collect_criteria(spec, steps)
    crit.check(criteria, {s.id: s.command_name for s in steps})
    steps_mod.validate(steps, target)
    con = terminal.console(stderr=json_out)
    if dry_run:
        for r in _plan_table(spec, steps, criteria):
            con.print(r)
        return
    tgt = target_mod.prepare(target, force=force)
    suite_dir = _suite_dir(results_dir, spec.name)
    result = Recorder(kind="suite", name=spec.name, spec=steps_mod.spec_dict(spec, steps))
    _provisional(result, suite_dir, results_dir)
    outcomes: list[suite_runner.StepOutcome] = []
    t0 = time.monotonic()
    written: list[Path] = []

    def announce(i: int, st: steps_mod.Step) -> None:
        el = time.monotonic() - t0
        con.print(Rule(f"[bold]step {i + 1}/{len(steps)}: {st.id}[/]  {st.display()}  "
                       f"[dim](suite {spec.name}, {el:.0f} s elapsed)[/]", align="left"))

    def body(r: Recorder) -> None:
        try:
            suite_runner.run_steps(cli, steps, r, suite_dir, tgt.root, force, json_out,
                                   announce, outcomes)
        except KeyboardInterrupt as e:
            from iobench import interrupt

            term = isinstance(e, interrupt.Terminated) or interrupt.last_signal() == 15
            what = "SIGTERM" if term else "Ctrl-C"
            r.mark("partial", f"interrupted ({what}); finished steps are kept")
            raise
        finally:
            suite_runner.judge(r, criteria, outcomes, steps)
            bad = [o for o in outcomes if o.state in ("failed", "error")]
            if bad and r.status == "ok":
                r.mark("failed", "; ".join(f"step '{o.id}' {o.state}: {o.reason}"
                                           for o in bad))
            r.finished_utc = results_mod.utc_now()
            unsaved = _save(r, suite_dir, html_file, written)
            for w in written:
                click.echo(f"{'html' if w.suffix == '.html' else 'result'}: {w}", err=True)
            if unsaved:
                if sys.exc_info()[0] is None:  # nothing else under way: this is the error
                    raise RunFailed(unsaved)
                r.warnings.append(unsaved)

    def render(r: Result) -> None:
        con.print(Rule(f"[bold]suite {spec.name}[/]", align="left"))
        terminal.render(r, con)

    execute(result, body, results_dir=results_dir, json_out=json_out, target=tgt.root,
            save=False, render=render)
    if result.metrics.get("verdict") != "PASS":
        sys.exit(EXIT_FAILED)
