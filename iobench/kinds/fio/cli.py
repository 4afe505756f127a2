"""`iobench fio JOBFILE`: options -> Spec -> run -> render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench.cli import common_run_options
from iobench.kinds.fio.run import execute
from iobench.kinds.fio.spec import Spec, build


@click.command("fio")
@click.argument("jobfile", type=click.Path(path_type=Path))
@common_run_options
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop fio after this many seconds (the run fails).")
def command(target: Path, json_out: bool, results_dir: Path, force: bool,
            **params: Any) -> None:
    """Run any fio JOBFILE inside the target and render it like every iobench run.

    Relative file names in the job file land in <target>/fio/. fio runs with
    --output-format=json+, so latency percentiles are merged from fio's histograms.
    """
    spec = spec_from_params(params)
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    return build(**params)
