"""`iobench run SUITE`: options -> Spec -> run -> render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import RenderableType
from rich.rule import Rule
from rich.table import Table

from iobench import cli as cli_mod
from iobench.cli import common_run_options
from iobench.errors import EXIT_FAILED
from iobench.kinds.suite import criteria as crit
from iobench.kinds.suite import steps as steps_mod
from iobench.kinds.suite.run import Spec, build, execute, plan
from iobench.report import terminal
from iobench.results import Result


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


@click.command("run")
@click.argument("suite")
@common_run_options
@click.option("--set", "sets", multiple=True, metavar="STEP.OPTION=VALUE",
              help="Override a step's option, e.g. --set io.size=8MiB (repeatable).")
@click.option("--html", "html_file", type=click.Path(path_type=Path), default=None,
              help="Also write the self-contained HTML report to this file.")
@click.option("--dry-run", is_flag=True,
              help="Check the suite and print each step's command line; run nothing.")
def command(target: Path, json_out: bool, results_dir: Path, force: bool, dry_run: bool,
            **params: Any) -> None:
    """Run a SUITE (a name under workloads/suites/ or a YAML path): steps, then criteria.

    Exit status: 0 all criteria pass, 1 a criterion or a step failed, 2 bad input,
    130 interrupted (finished steps are kept, the suite is marked partial).
    """
    spec = spec_from_params(params)
    con = terminal.console(stderr=json_out)
    if dry_run:
        suite, steps, criteria = plan(spec, target)
        for r in _plan_table(suite, steps, criteria):
            con.print(r)
        return

    def announce(i: int, st: steps_mod.Step, elapsed: float) -> None:
        con.print(Rule(f"[bold]step {i + 1}/{len(spec_steps[0])}: {st.id}[/]  "
                       f"{st.display()}  [dim](suite {st_suite[0]}, {elapsed:.0f} s "
                       "elapsed)[/]", align="left"))

    suite, steps, _ = plan(spec, target)
    spec_steps, st_suite = [steps], [suite.name]

    def render(r: Result) -> None:
        con.print(Rule(f"[bold]suite {suite.name}[/]", align="left"))
        terminal.render(r, con)

    ctx = cli_mod.run_context(json_out, render)
    out = execute(spec, cli_mod.run_options(target, results_dir, force), ctx, announce)
    result = cli_mod.finish(out)
    if result.metrics.get("verdict") != "PASS":
        sys.exit(EXIT_FAILED)


def spec_from_params(params: dict[str, Any]) -> Spec:
    return build(params["suite"], params.get("sets") or (), params.get("html_file"))
