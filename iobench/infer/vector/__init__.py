"""`iobench infer vector`: retrieval (RAG) I/O.

Mode 1 (`--engine diskann`, extra `[vector]`): a real DiskANN disk index built on the
target from clustered vectors iobench generates, searched with diskannpy's
StaticDiskIndex; recall@10 against exact ground truth, reads per query measured
independently of the engine (iobench.infer.vector.engine, .data).

Mode 2 (`--engine native|fio`): no engine, no vectors: a large incompressible index file
read in DiskANN's pattern, `hops` dependent rounds of `beam_width` random sector reads
per query (iobench.infer.vector.pattern).
"""

from __future__ import annotations

from typing import Any

K = 10  # recall@10: neighbours asked for and compared with the ground truth
METRICS = ("l2", "mips", "cosine")
SECTOR = 4096  # DiskANN's disk sector (graph nodes are packed into 4 KiB sectors)


def _declare() -> None:
    from iobench.suite.metrics import declare

    declare("infer vector", {
        "qps": "diskann: headline QPS (recall@10 >= 0.95 within the latency budget, 0 if "
               "none); pattern: best QPS over the concurrency sweep",
        "max_qps": "best QPS of any setting, queries/s",
        "recall_at_10": "diskann: best recall@10 of any setting",
        "reads_per_query": "diskann: measured 4 KiB reads per query of the headline setting; "
                           "pattern: hops x beam width",
        "p99_ms": "diskann: headline p99 query latency; pattern: worst p99 over the sweep, ms",
        "read_p99_us": "pattern: worst per-read p99 over the sweep, us",
        "build_seconds": "diskann: index build time, s",
        "index_bytes": "diskann: bytes of the index files",
    }, {"qps": "queries per second of the setting", "recall_at_10": "recall@10 of the setting",
        "reads_4k_per_query": "measured 4 KiB reads per query (diskann)",
        "read_iops": "reads per second (pattern)"})


def _tables(result: Any) -> list[Any]:
    from iobench.infer.vector.command import tables

    return tables(result)


def _register() -> None:  # so `iobench report` shows the tables without running a search
    from iobench.report import terminal

    terminal.register("infer-vector", _tables)


_declare()
_register()
