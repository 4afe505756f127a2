"""`iobench infer kvcache` and `iobench infer vector` (not yet moved to iobench/kinds/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import RenderableType

from iobench import dist
from iobench import target as target_mod
from iobench.cli import (
    DURATION,
    INT_LIST,
    SIZE,
    SIZE0,
    common_run_options,
    engine_option,
)
from iobench.kinds import infer_group
from iobench.report import terminal
from iobench.results import Recorder, Result
from iobench.runner import execute

# the `iobench infer` group: randread and load are iobench/kinds/infer_*/ commands
infer = infer_group.group


# --- vector (retrieval: a DiskANN index, or its read pattern; iobench/infer/vector/) -----
from iobench.infer import vector as _vector  # noqa: E402,F401 (declares its suite metrics)


@infer.command("vector")
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
              help="[diskann] Headline: best QPS at recall@10 >= 0.95 within this p99.")
@click.option("--cache-nodes", type=click.IntRange(min=0), default=0, show_default=True,
              help="[diskann] Graph nodes DiskANN caches in RAM.")
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
def vector_cmd(target: Path, json_out: bool, results_dir: Path, force: bool, engine: str,
               **kw: Any) -> None:
    """Vector search I/O: a real DiskANN index (--engine diskann) or its pattern at any size."""
    from iobench.infer.vector import cli as vcli

    vcli.run(target, json_out, results_dir, force, engine, **kw)


# --- kvcache (iobench/infer/kvcache/) --------------------------------------------------------
@infer.command("kvcache")
@click.argument("model_name", metavar="MODEL")
@common_run_options
@engine_option
@click.option("--layout", type=click.Choice(["file-per-chunk", "slab"]),
              default="file-per-chunk", show_default=True,
              help="One file per chunk (LMCache) or preallocated slab files (Dynamo).")
@click.option("--chunk-tokens", type=int, default=256, show_default=True,
              help="Tokens per chunk (256 LMCache, 16 vLLM blocks, 512 Mooncake).")
@click.option("--kv-dtype", type=click.Choice(["bf16", "fp16", "fp8"]), default="bf16",
              show_default=True)
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
@click.option("--fsync", type=click.Choice(["chunk", "turn", "none"]), default="turn",
              show_default=True, help="When written chunks are made durable.")
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
              help="--engine fio: seconds of native and of fio chunk reads side by side.")
@click.option("--fio-first", is_flag=True, hidden=True)  # benchmarks alternate the order
@click.option("--verify", is_flag=True, help="CRC-32C check of every restored chunk.")
@click.option("--seed", type=int, default=0, show_default=True)
def kvcache_cmd(model_name: str, target: Path, json_out: bool, results_dir: Path, force: bool,
                engine: str, **kw: Any) -> None:
    """KV-cache offload of MODEL: sessions restore stored prefixes, write new chunks."""
    from iobench.infer.kvcache import run as kv

    o = kv.Options(**{k: kw.pop(k) for k in ("users", "queue_depth", "promote",
                                              "admit_after", "fsync", "requests", "verify",
                                              "seed", "trace_speed")},
                   decode_s=kw.pop("decode_time"), duration_s=kw.pop("duration"))
    c = kv.Config(model=model_name, engine=engine, ttft_s=kw.pop("ttft"),
                  fio_runtime_s=kw.pop("fio_runtime"), opts=o, **kw)
    w = dist.world()
    m, g, profile, trace = dist.root_first(lambda: kv.check(c, target, w.size), w)
    tgt = dist.root_first(lambda: target_mod.prepare(target, force), w)
    result = Recorder("infer-kvcache", m.name, spec=kv.spec_dict(c, m, g, w.size), engine=engine)
    execute(result, lambda res: kv.body(res, c, tgt, g, profile, trace),
            results_dir=results_dir, json_out=json_out, target=tgt.root)


def _kvcache_tables(result: Result) -> list[RenderableType]:
    from iobench.infer.kvcache import report

    return report.tables(result)


terminal.register("infer-kvcache", _kvcache_tables)


def _declare_kvcache() -> None:
    from iobench.infer.kvcache.report import METRICS
    from iobench.suite.metrics import declare

    declare("infer kvcache", METRICS)


_declare_kvcache()
