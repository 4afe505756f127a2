"""Synthetic data set writers, one module per file format, and the reader API the
training replay uses (open_dataset, Dataset.samples, decode)."""

from iobench.datagen.reader import Dataset, decode, list_datasets, open_dataset
from iobench.kinds.train.workload import FORMATS, TrainingSpec, load_workload

__all__ = ["FORMATS", "Dataset", "TrainingSpec", "decode", "list_datasets", "load_workload",
           "open_dataset"]
