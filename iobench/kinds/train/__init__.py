"""`iobench train`: replay a training workload's reads with emulated accelerators.

    from iobench.kinds import train
    result = train.run(train.build(workload="unet3d", accelerators=4, epochs=1),
                       train.RunOptions(target=Path("/mnt/nvme/iobench")))
    result.metrics["au_pct"], result.metrics["samples_per_s"]

A workload is one YAML file (workloads/training/<name>.yaml, or any path): the data set's
shape and the compute time per step on each accelerator type.
"""

from iobench.workload import TrainingSpec, load_workload  # noqa: I001 - first

from iobench.kinds.base import RunOptions
from iobench.kinds.train.metrics import METRICS
from iobench.kinds.train.run import execute, run
from iobench.kinds.train.spec import Spec, build

__all__ = ["METRICS", "RunOptions", "Spec", "TrainingSpec", "build", "execute",
           "load_workload", "run"]
