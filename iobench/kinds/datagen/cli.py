"""`iobench datagen WORKLOAD`: options -> Spec -> run (or --what-if's plan) -> render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench.cli import MAX_COUNT, MAX_THREADS, SEED, SIZE, common_run_options
from iobench.content import CONTENTS
from iobench.kinds.datagen.run import execute
from iobench.kinds.datagen.run import what_if as plan_of
from iobench.kinds.datagen.spec import LAYOUTS, MAX_ACCELERATORS, Spec, build


@click.command("datagen")
@click.argument("workload", required=False)
@common_run_options
@click.option("--files", type=click.IntRange(max=MAX_COUNT), default=None,
              help="Number of shard files (overrides the spec).")
@click.option("--dataset-size", type=SIZE, default=None,
              help="Total sample bytes wanted, e.g. 50GiB (files = size / file size).")
@click.option("--auto-size", is_flag=True,
              help="MLPerf sizing: >= 5 x host RAM and >= 500 steps per epoch.")
@click.option("--accelerators", type=click.IntRange(max=MAX_ACCELERATORS), default=1,
              show_default=True,
              help="Simulated accelerators, for --auto-size's steps-per-epoch rule.")
@click.option("--accelerator", default="h100", show_default=True,
              help="Accelerator type from workloads/accelerators.yaml (a100, h100, b200).")
@click.option("--host-ram", type=SIZE, default=None,
              help="RAM of all clients together for --auto-size (default: this host's).")
@click.option("--jobs", type=click.IntRange(max=MAX_THREADS), default=None,
              help="Worker processes (default: CPU cores).")
@click.option("--content", type=click.Choice(CONTENTS), default="random", show_default=True,
              help="random: incompressible; bf16: compresses like weights; zeros.")
@click.option("--seed", type=SEED, default=None, help="Override the spec's seed.")
@click.option("--verify", is_flag=True,
              help="Check every file's size and CRC32C against the manifest; write nothing.")
@click.option("--what-if", is_flag=True,
              help="Print the plan (files, bytes, time at the measured write speed) only.")
@click.option("--dlio-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Generate the data set of a DLIO / MLPerf Storage YAML (WORKLOAD, if "
                   "given, names it); train it with iobench train --dlio-config.")
@click.option("--layout", type=click.Choice(LAYOUTS), default=None,
              help="On-disk layout: iobench's, or DLIO's (train/img_I_of_N files DLIO's "
                   "readers open; point DLIO's dataset.data_folder at "
                   "TARGET/datagen/WORKLOAD) [default: dlio under --dlio-config, else "
                   "iobench].")
def command(target: Path, json_out: bool, results_dir: Path, force: bool, what_if: bool,
            **params: Any) -> None:
    """Write the synthetic data set of a training WORKLOAD (preset name or YAML path) under
    TARGET/datagen/WORKLOAD/, resumably; --verify checks it against its manifest."""
    spec = spec_from_params(params)
    options = cli_mod.run_options(target, results_dir, force)
    ctx = cli_mod.run_context(json_out)
    if what_if:
        info = plan_of(spec, options, ctx)
        if json_out:
            click.echo(json.dumps(info, indent=1))
        else:
            from iobench.kinds.datagen.render import plan_table
            from iobench.report import terminal

            terminal.console().print(plan_table(info))
        return
    cli_mod.finish(execute(spec, options, ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    """Click's parsed params (the common run options and --what-if removed) -> a Spec."""
    return build(**params)
