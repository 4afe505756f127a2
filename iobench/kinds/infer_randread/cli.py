"""`iobench infer randread`: options -> Spec -> run -> render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench.cli import (
    DURATION,
    INT_LIST,
    MAX_THREADS,
    SIZE,
    SIZE_LIST,
    cache_option,
    common_run_options,
    engine_option,
)
from iobench.kinds.infer_randread.run import execute
from iobench.kinds.infer_randread.spec import Spec, build


@click.command("randread")
@common_run_options
@engine_option
@cache_option("direct")
@click.option("--file-size", type=SIZE, default="1GiB", show_default=True,
              help="Size of each file of the set (random content, made once, reused).")
@click.option("--files", "nfiles", type=click.IntRange(min=1, max=MAX_THREADS), default=4,
              show_default=True)
@click.option("--block-size", "-b", type=SIZE_LIST, default="4k,16k,64k,128k",
              show_default=True, help="Block sizes to sweep.")
@click.option("--queue-depth", "-q", type=INT_LIST, default="1,4,16,64", show_default=True,
              help="I/Os in flight (native: threads; fio: iodepth of one job).")
@click.option("--runtime", type=DURATION, default="5s", show_default=True,
              help="Time per cell.")
@click.option("--ioengine", type=click.Choice(["io_uring", "libaio"]), default="libaio",
              show_default=True, help="fio's engine (--engine fio).")
def command(target: Path, json_out: bool, results_dir: Path, force: bool,
            **params: Any) -> None:
    """Random reads: one cell per block size x queue depth (IOPS, GB/s, latency)."""
    spec = spec_from_params(params)
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    """Click's parsed params (the common run options removed) -> a validated Spec."""
    p = dict(params)
    return build(files=p.pop("nfiles"), block_sizes=p.pop("block_size"),
                 queue_depths=p.pop("queue_depth"), **p)
