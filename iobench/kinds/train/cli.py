"""`iobench train WORKLOAD`: options -> Spec -> run -> render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench import dlio
from iobench.cli import (
    DURATION,
    MAX_COUNT,
    SEED,
    SIZE,
    cache_option,
    common_run_options,
    engine_option,
)
from iobench.kinds.train.run import execute
from iobench.kinds.train.spec import Spec, build, resolve_dlio


@click.command("train")
@click.argument("workload", required=False)
@common_run_options
@engine_option
@click.option("--accelerator", default="h100", show_default=True,
              help="Accelerator type from workloads/accelerators.yaml (a100, h100, b200).")
@click.option("--accelerators", type=click.IntRange(max=2**20), default=None,
              help="Emulated accelerators [default: 1]; with --find-max, where the search "
                   "starts.")
@click.option("--epochs", type=click.IntRange(max=MAX_COUNT), default=None,
              help="Epochs per run [default: the spec's].")
@cache_option("drop")
@click.option("--read-threads", type=click.IntRange(max=1024), default=None,
              help="Reader threads per accelerator [default: the spec's read_threads].")
@click.option("--prefetch", type=click.IntRange(max=1024), default=2, show_default=True,
              help="Batches read ahead per accelerator (bounded prefetch queue).")
@click.option("--decode/--no-decode", default=False, show_default=True,
              help="Also parse each sample as a framework would (np.load, TFRecord CRCs).")
@click.option("--runs", type=click.IntRange(max=1000), default=None,
              help="One warm-up run plus RUNS measured runs (MLPerf: 5) [default: one run].")
@click.option("--seed", type=SEED, default=None,
              help="Shuffle seed [default: the spec's seed].")
@click.option("--find-max", is_flag=True,
              help="Search for the most accelerators that still meet the AU threshold.")
@click.option("--probe-steps", type=click.IntRange(max=MAX_COUNT), default=50, show_default=True,
              help="Steps per --find-max probe run (the confirming run is full length).")
@click.option("--compute-time", type=DURATION, default=None,
              help="Compute per step, overriding the workload's compute_seconds_per_step "
                   "(0 = data path alone).")
@click.option("--block-size", type=SIZE, default="4MiB", show_default=True,
              help="Largest single read; a bigger sample takes several reads.")
@click.option("--max-steps", type=click.IntRange(max=MAX_COUNT), default=0, show_default=True,
              help="Cut every epoch to this many steps (0 = whole epochs).")
@click.option("--checkpoint-every", type=click.IntRange(max=MAX_COUNT), default=None,
              help="Write a checkpoint every STEPS steps during training.")
@click.option("--checkpoint-size", type=SIZE, default=None,
              help="Size of each checkpoint written during training, e.g. 10GiB.")
@click.option("--checkpoint-mode", type=click.Choice(["blocking", "async"]),
              default="blocking", show_default=True,
              help="blocking: accelerators wait for the write; async: written in the "
                   "background while training goes on.")
@click.option("--read-rate-limit", type=SIZE, default=None, hidden=True,
              help="Throttle all reads together to this many bytes/s (rehearsals, tests).")
@click.option("--dlio-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run the workload of a DLIO / MLPerf Storage YAML (WORKLOAD, if given, "
                   "names it); options given here win over the config's values.")
@click.option("--data-folder", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="With --dlio-config: replay the data set in this DLIO data folder (the "
                   "config's dataset.data_folder, holding train/), as DLIO or iobench "
                   "--layout dlio wrote it; no iobench manifest needed.")
def command(target: Path, json_out: bool, results_dir: Path, force: bool,
            **params: Any) -> None:
    """Replay the reads of training WORKLOAD (preset or YAML) on its data set under
    TARGET/datagen/, with emulated accelerators: AU, samples/s, GB/s, latency."""
    spec = spec_from_params(params)
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    """Click's parsed params (the common run options removed) -> a validated Spec; a
    --dlio-config's values fill the options the command line left at their default."""
    values = dict(params)
    config = values.pop("dlio_config", None)
    values["workload"] = dlio.workload_or_config(values.get("workload"), config, "WORKLOAD")
    if config is not None:
        values = resolve_dlio(values, config, dlio.given)
    return build(**values)
