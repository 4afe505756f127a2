"""`iobench run SUITE`: a suite's steps, each through its kind's run(), then its criteria.

    from iobench.kinds import suite
    r = suite.run(suite.build("quick"), suite.RunOptions(target=Path("/mnt/x/ib")))
    print(r.metrics["verdict"])
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.suite.metrics import METRICS
from iobench.kinds.suite.run import Spec, build, execute, run

__all__ = ["METRICS", "RunOptions", "Spec", "build", "execute", "run"]
