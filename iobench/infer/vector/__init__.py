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

K = 10  # recall@10: neighbours asked for and compared with the ground truth
METRICS = ("l2", "mips", "cosine")
SECTOR = 4096  # DiskANN's disk sector (graph nodes are packed into 4 KiB sectors)
