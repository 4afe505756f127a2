"""`iobench io`: plain sequential/random read/write patterns, native or fio.

    from iobench.kinds import io
    result = io.run(io.build(pattern="randread", size="1GiB", block_size="4k",
                             queue_depth=32, cache="direct"),
                    io.RunOptions(target=Path("/mnt/nvme/iobench")))
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.io.metrics import METRICS
from iobench.kinds.io.run import execute, run
from iobench.kinds.io.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
