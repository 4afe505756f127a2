"""`iobench checkpoint MODEL`: options -> Spec -> run -> render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from iobench import cli as cli_mod
from iobench import dlio
from iobench.cli import MAX_THREADS, SEED, SIZE, cache_option, common_run_options, engine_option
from iobench.kinds.checkpoint.render import plan_table
from iobench.kinds.checkpoint.run import execute, resolve
from iobench.kinds.checkpoint.spec import Spec, build


@click.command("checkpoint")
@click.argument("model", required=False)
@common_run_options
@click.option("--ranks", type=click.IntRange(min=1, max=MAX_THREADS), default=None,
              help="Rank processes (full mode: must equal TP x PP x DP; subset: default 8).")
@click.option("--mode", type=click.Choice(["full", "subset"]), default="full", show_default=True,
              help="full: every rank of the job; subset: the first --ranks ranks (MLPerf's "
                   "single-host mode).")
@click.option("--count", type=click.IntRange(min=1, max=100_000), default=1, show_default=True,
              help="Checkpoints to write (MLPerf writes 10): first vs last shown.")
@click.option("--keep", type=click.IntRange(min=1, max=100_000), default=None,
              help="Keep only the newest K checkpoints, deleting older ones (default: all).")
@click.option("--layout", "layout", type=click.Choice(["deepspeed", "dcp"]), default=None,
              help="File layout (default: the preset's, deepspeed).")
@click.option("--zero", type=click.Choice(["0", "1", "2", "3"]), default=None,
              help="ZeRO stage (default: the preset's).")
@click.option("--tp", type=click.IntRange(min=1, max=2**20), default=None,
              help="Tensor parallel size.")
@click.option("--pp", type=click.IntRange(min=1, max=2**20), default=None,
              help="Pipeline parallel size.")
@click.option("--dp", type=click.IntRange(min=1, max=2**20), default=None,
              help="Data parallel size.")
@click.option("--scale", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0,
              show_default=True, help="Shrink every file by this fraction (tests, small disks).")
@click.option("--write/--no-write", "do_write", default=True, show_default=True)
@click.option("--read/--no-read", "do_read", default=True, show_default=True,
              help="Restore (read and verify) after writing.")
@click.option("--rank-shift", type=click.IntRange(min=0, max=2**20), default=0, show_default=True,
              help="Rank r restores rank r+K's files, as a restart on other hosts would.")
@cache_option("drop")
@click.option("--async", "async_mode", is_flag=True,
              help="Report the stall (snapshot into a bounded staging buffer) apart from the "
                   "persist (background write + fsync).")
@click.option("--staging", type=SIZE, default="128MiB", show_default=True,
              help="--async staging buffer per rank (at most 240 MiB).")
@click.option("--mtbf", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Mean time between failures of the whole job, hours (default: Llama 3's "
                   "3.1 h at 16,384 GPUs scaled to this job's GPUs).")
@click.option("--mtbf-per-gpu", type=click.FloatRange(min=0, min_open=True), default=None,
              help="MTBF per GPU in hours; divided by the job's TP x PP x DP.")
@engine_option
@click.option("--what-if", is_flag=True, help="Print the plan and write nothing.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--space-check/--no-space-check", default=True, show_default=True,
              help="Refuse before writing when the target lacks the free space.")
@click.option("--dlio-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint the model of a DLIO / MLPerf Storage YAML (model.transformer; "
                   "MODEL, if given, names it); options given here win.")
def command(target: Path, json_out: bool, results_dir: Path, force: bool, what_if: bool,
            **params: Any) -> None:
    """Write and restore checkpoints of MODEL (a preset such as llama3-8b or a YAML file).

    Each rank is a process with a streaming writer (bounded memory), fsync timed apart;
    files go to <target>/checkpoint/<model>/ in DeepSpeed or PyTorch DCP layout.
    """
    spec = spec_from_params(params, announce=True)
    resolved = resolve(spec)
    if what_if:
        if json_out:
            click.echo(json.dumps(resolved.spec_dict, indent=1))
        else:
            from iobench.report import terminal

            con = terminal.console()
            con.print(plan_table(resolved.spec_dict["plan"]))
            con.print(Text("what-if: nothing was written"))
        return
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx,
                           resolved))


def spec_from_params(params: dict[str, Any], announce: bool = False) -> Spec:
    """Click's parsed params (the common run options removed) -> a validated Spec. With
    --dlio-config the config's mode, count and --read apply unless given here."""
    p = dict(params)
    p.pop("what_if", None)
    p["write"], p["read"] = p.pop("do_write", True), p.pop("do_read", True)
    p["model"] = dlio.workload_or_config(p.get("model"), p.get("dlio_config"), "MODEL")
    if p.get("dlio_config") is not None:
        imp = dlio.load(p["dlio_config"], "checkpoint", p["model"] or None)
        if announce:
            imp.announce()
        p["mode"], p["count"] = imp.pick("mode", p["mode"]), imp.pick("count", p["count"])
        p["read"] = imp.pick("do_read", p["read"])
    return build(**p)
