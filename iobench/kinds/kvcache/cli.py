"""`iobench infer kvcache MODEL`: options -> Spec -> run -> render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench.cli import DURATION, SEED, SIZE, SIZE0, common_run_options, engine_option
from iobench.kinds.kvcache.run import execute
from iobench.kinds.kvcache.spec import FSYNC, KV_DTYPES, LAYOUTS, Spec, build


@click.command("kvcache")
@click.argument("model_name", metavar="MODEL")
@common_run_options
@engine_option
@click.option("--layout", type=click.Choice(LAYOUTS), default="file-per-chunk",
              show_default=True,
              help="One file per chunk (LMCache) or preallocated slab files (Dynamo).")
@click.option("--chunk-tokens", type=int, default=256, show_default=True,
              help="Tokens per chunk (256 LMCache, 16 vLLM blocks, 512 Mooncake).")
@click.option("--kv-dtype", type=click.Choice(KV_DTYPES), default="bf16", show_default=True)
@click.option("--tp", type=int, default=1, show_default=True,
              help="Tensor-parallel degree: each rank stores kv_heads/TP heads.")
@click.option("--users", type=int, default=4, show_default=True,
              help="Concurrent sessions (or trace replayers).")
@click.option("--profile", default="chatbot", show_default=True,
              help="Context profile: chatbot, coding, document or a YAML path.")
@click.option("--trace", type=click.Path(path_type=Path), default=None,
              help="Replay a Mooncake-format JSONL trace instead of profile sessions.")
@click.option("--trace-speed", type=float, default=0.0, show_default=True,
              help="1 = the trace's timestamps, 2 = twice as fast, 0 = as fast as possible.")
@click.option("--duration", type=DURATION, default=None,
              help="Replay time [sessions: 30s; trace: the whole trace].")
@click.option("--requests", type=click.IntRange(min=0), default=0, show_default=True,
              help="Stop after this many requests (0: no cap).")
@click.option("--queue-depth", "-q", type=int, default=8, show_default=True,
              help="Chunk I/Os in flight (as many chunk buffers; reads via Linux AIO).")
@click.option("--cpu-cache", type=SIZE0, default="0", show_default=True,
              help="Emulated host-RAM tier (real buffers); 0: every restore hits storage.")
@click.option("--capacity", type=SIZE, default="4GiB", show_default=True,
              help="Storage tier size on the target (per rank); LRU eviction when full.")
@click.option("--promote/--no-promote", default=True, show_default=True,
              help="Copy a storage hit into the RAM tier.")
@click.option("--admit-after", type=int, default=1, show_default=True,
              help="Write a chunk to storage only once seen K times (Dynamo: 2).")
@click.option("--fsync", type=click.Choice(FSYNC), default="turn", show_default=True,
              help="When written chunks are made durable.")
@click.option("--decode-time", type=DURATION, default="0", show_default=True,
              help="Emulated decode time per output token (interleaves reads and writes).")
@click.option("--ttft", type=DURATION, default="200ms", show_default=True,
              help="Time-to-first-token budget for the restore (the headline search).")
@click.option("--prefill-rate", type=float, default=10000.0, show_default=True,
              help="Prefill tokens/s to recompute a context (an input, not measured).")
@click.option("--search/--no-search", default=True, show_default=True,
              help="Search the longest context restorable within --ttft at p99.")
@click.option("--search-requests", type=click.IntRange(min=1), default=8, show_default=True,
              help="Restores per user per search probe.")
@click.option("--search-users", type=int, default=1, show_default=True,
              help="Concurrent restores in each search probe (1: a request alone).")
@click.option("--max-context", type=click.IntRange(min=1), default=131072, show_default=True,
              help="Upper limit of the TTFT search, tokens.")
@click.option("--drive-size", type=SIZE, default=None, help="Drive size for DWPD.")
@click.option("--fio-runtime", type=DURATION, default="5s", show_default=True,
              help="--engine fio: seconds of native and of fio chunk reads side by side, "
                   "and of the replay's chunk pattern through fio.")
@click.option("--fio-first", is_flag=True, hidden=True)  # benchmarks alternate the order
@click.option("--verify", is_flag=True, help="CRC-32C check of every restored chunk.")
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(target: Path, json_out: bool, results_dir: Path, force: bool,
            **params: Any) -> None:
    """KV-cache offload of MODEL: sessions restore stored prefixes, write new chunks."""
    spec = spec_from_params(params)
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    """Click's parsed params (the common run options removed) -> a validated Spec."""
    values = dict(params)
    return build(model=values.pop("model_name"), **values)
