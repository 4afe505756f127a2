"""`iobench infer vector`: options -> Spec -> run -> render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench.cli import DURATION, INT_LIST, SIZE, common_run_options
from iobench.kinds.vector.run import execute
from iobench.kinds.vector.spec import Spec, build

GROUP = "infer"  # `iobench infer vector` (iobench.cli.KIND_COMMANDS adds it there)


@click.command("vector")
@common_run_options
@click.option("--engine", type=click.Choice(["native", "fio", "diskann"]), default="native",
              show_default=True, help="diskann: a real DiskANN index (extra [vector]); "
              "native/fio: its read pattern on a plain index file.")
@click.option("--dim", type=int, default=768, show_default=True, help="[diskann] Dimensions.")
@click.option("--vectors", type=int, default=100000, show_default=True,
              help="[diskann] Base vectors (float32, clustered Gaussian mixture).")
@click.option("--queries", type=int, default=1000, show_default=True,
              help="[diskann] Held-out queries (exact ground truth computed once).")
@click.option("--metric", default="l2", show_default=True, help="[diskann] l2, mips, cosine.")
@click.option("--clusters", type=int, default=0, help="[diskann] Mixture components [auto].")
@click.option("--graph-degree", type=int, default=32, show_default=True, help="[diskann] R.")
@click.option("--build-complexity", type=int, default=64, show_default=True,
              help="[diskann] Build search list L.")
@click.option("--pq-bytes", type=int, default=0, help="[diskann] PQ bytes/vector [dim/8].")
@click.option("--complexity", "-L", type=INT_LIST, default="16,32,64,128", show_default=True,
              help="[diskann] Search list sizes to sweep.")
@click.option("--beam-width", "-W", type=INT_LIST, default=None,
              help="Beam widths [diskann: 2,4,8 swept; native/fio: one, default 4].")
@click.option("--states", default="cold,warm", show_default=True,
              help="[diskann] cold (index files evicted first), warm (again at once).")
@click.option("--latency-budget", type=DURATION, default="10ms", show_default=True,
              help="[diskann] Headline: best queries/s at recall@10 >= 0.95 within this p99.")
@click.option("--cache-nodes", type=click.IntRange(min=0), default=0, show_default=True,
              help="[diskann] Graph nodes DiskANN caches in RAM.")
@click.option("--search-procs", type=INT_LIST, default=None,
              help="[diskann] Also search with P processes at once (each its own index, "
                   "each query timed), e.g. 1,2,4.")
@click.option("--search-threads", type=str, default=None, hidden=True)
@click.option("--index-size", type=SIZE, default="1GiB", show_default=True,
              help="[native/fio] Index file size (may be >= 5 x RAM; laid out once).")
@click.option("--sector", type=SIZE, default=None, help="[native/fio] Bytes per read [4k].")
@click.option("--hops", type=int, default=None, help="[native/fio] Rounds per query [16].")
@click.option("--concurrency", "-c", type=INT_LIST, default="1,4,16", show_default=True,
              help="[native/fio] Queries in flight to sweep.")
@click.option("--runtime", type=DURATION, default="5s", show_default=True,
              help="[native/fio] Time per concurrency.")
@click.option("--calibrate", type=click.Path(path_type=Path), default=None,
              help="[native/fio] Take hops, beam width, sector from a --engine diskann result.")
def command(target: Path, json_out: bool, results_dir: Path, force: bool,
            **params: Any) -> None:
    """Vector search I/O: a real DiskANN index (--engine diskann) or its pattern at any size."""
    spec = spec_from_params(params)
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    """Click's parsed params (the common run options removed) -> a checked Spec."""
    return build(**params)
