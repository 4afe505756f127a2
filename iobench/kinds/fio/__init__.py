"""`iobench fio`: any fio job file, checked, inside the target, rendered like every run."""

from iobench.kinds.base import RunOptions
from iobench.kinds.fio.metrics import METRICS
from iobench.kinds.fio.run import execute, run
from iobench.kinds.fio.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
