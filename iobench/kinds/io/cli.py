"""`iobench io PATTERN`: options -> Spec -> run -> render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench.cli import (
    DURATION,
    MAX_THREADS,
    SEED,
    SIZE,
    cache_option,
    common_run_options,
    engine_option,
)
from iobench.engines import IOENGINES, PATTERNS
from iobench.kinds.io.run import execute
from iobench.kinds.io.spec import Spec, build


@click.command("io")
@click.argument("pattern", type=click.Choice(PATTERNS))
@common_run_options
@engine_option
@click.option("--size", type=SIZE, default="64MiB", show_default=True,
              help="File size per job.")
@click.option("--block-size", "-b", type=SIZE, default="1MiB", show_default=True)
@click.option("--jobs", "-j", type=click.IntRange(min=1, max=MAX_THREADS), default=1,
              show_default=True)
@click.option("--queue-depth", "-q", type=click.IntRange(min=1, max=MAX_THREADS), default=1,
              show_default=True,
              help="I/Os in flight per job (native: threads; fio: iodepth).")
@click.option("--runtime", type=DURATION, default="0",
              help="Run for this long (time-based, wraps around); 0 = one pass over --size.")
@cache_option("drop")
@click.option("--ioengine", type=click.Choice(IOENGINES), default=None,
              help="fio ioengine (default psync at QD1, libaio above).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--fio-hosts", "fio_hosts", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="Run on the `fio --server` daemons listed in FILE (host or host,port a "
                   "line), all at once; needs --engine fio. See docs/guide/many-hosts.md.")
def command(target: Path, json_out: bool, results_dir: Path, force: bool,
            **params: Any) -> None:
    """Run a plain I/O PATTERN (seqread, seqwrite, randread, randwrite) on the target.

    Each job owns one file of --size under <target>/io/; both engines use the same files.
    Under mpirun, --jobs is per rank and rank r owns files job{r*jobs}...
    """
    spec = spec_from_params(params)
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    """Click's parsed params (the common run options removed) -> a validated Spec."""
    return build(**params)
