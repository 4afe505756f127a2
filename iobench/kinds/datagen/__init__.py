"""`iobench datagen`: a training workload's synthetic data set, written resumably, verified
against its checksums; its readers for the training emulator.

    from iobench.kinds import datagen
    result = datagen.run(datagen.build(workload="unet3d", dataset_size="50GiB"),
                         datagen.RunOptions(target=Path("/mnt/nvme/iobench")))
    ds = datagen.open_dataset(Path("/mnt/nvme/iobench"), "unet3d")
"""

from iobench.kinds.base import RunOptions
from iobench.kinds.datagen.metrics import METRICS
from iobench.kinds.datagen.reader import Dataset, decode, list_datasets, open_dataset
from iobench.kinds.datagen.run import execute, run, what_if
from iobench.kinds.datagen.spec import Spec, build

__all__ = ["METRICS", "Dataset", "RunOptions", "Spec", "build", "decode", "execute",
           "list_datasets", "open_dataset", "run", "what_if"]
