"""`iobench infer vector`: retrieval (RAG) I/O.

Mode 1 (`engine="diskann"`, extra `[vector]`): a real DiskANN disk index built on the
target from clustered vectors iobench generates, searched with diskannpy's
StaticDiskIndex; recall@10 against exact ground truth, reads per query measured
independently of the engine (engine.py, data.py here).

Mode 2 (`engine="native"|"fio"`): no engine, no vectors: a large incompressible index
file read in DiskANN's pattern, `hops` dependent rounds of `beam_width` random sector
reads per query (iobench.engines.batch).

    from iobench.kinds import vector
    result = vector.run(vector.build(index_size="1GiB", hops=16, beam_width=[4],
                                     concurrency=[1, 4, 16], runtime="5s"),
                        vector.RunOptions(target=Path("/mnt/nvme/iobench")))
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.vector.metrics import METRICS
from iobench.kinds.vector.run import execute, run
from iobench.kinds.vector.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
