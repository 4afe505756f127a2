"""`iobench checkpoint`: sharded training checkpoints written and restored per rank.

    from iobench.kinds import checkpoint
    result = checkpoint.run(checkpoint.build(model="llama3-8b", mode="subset", ranks=2,
                                             scale=0.001),
                            checkpoint.RunOptions(target=Path("/mnt/nvme/iobench")))
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.checkpoint.metrics import METRICS
from iobench.kinds.checkpoint.run import execute, run
from iobench.kinds.checkpoint.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
