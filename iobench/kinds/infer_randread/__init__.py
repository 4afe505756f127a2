"""`iobench infer randread`: a block size x queue depth grid of small random reads over a
file set (embedding / KV / vector lookups), native or fio on the same files.

    from iobench.kinds import infer_randread as rr
    result = rr.run(rr.build(file_size="1GiB", block_sizes="4k,64k", queue_depths="1,16",
                             runtime="5s"),
                    rr.RunOptions(target=Path("/mnt/nvme/iobench")))
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.infer_randread.metrics import METRICS
from iobench.kinds.infer_randread.run import execute, run
from iobench.kinds.infer_randread.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
