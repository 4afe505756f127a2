"""Per-epoch read order: seeded file and sample shuffle, cut into per-accelerator batches.

As DLIO does, the file list is shuffled per epoch and then the samples; step s of
accelerator a gets samples [(s*A + a)*B, (s*A + a + 1)*B) of the epoch's order, and the
samples that do not fill a whole step (A x B) are dropped (drop_last).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iobench.errors import UsageError

SHUFFLES = ("none", "file", "sample")


@dataclass(frozen=True)
class SampleTable:
    """Every sample of a data set: which file, where it starts and how long it is."""

    file_index: np.ndarray  # int64 per sample
    offset: np.ndarray  # int64 bytes from the start of the file
    length: np.ndarray  # int64 bytes

    @classmethod
    def from_files(cls, per_file: Sequence[tuple[np.ndarray, np.ndarray]]) -> SampleTable:
        """Build from one (offsets, lengths) pair per file, in file order."""
        fi = [np.full(len(o), i, dtype=np.int64) for i, (o, _) in enumerate(per_file)]
        if not fi:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty)
        return cls(np.concatenate(fi),
                   np.concatenate([np.asarray(o, dtype=np.int64) for o, _ in per_file]),
                   np.concatenate([np.asarray(n, dtype=np.int64) for _, n in per_file]))

    @property
    def count(self) -> int:
        return int(self.file_index.size)

    @property
    def total_bytes(self) -> int:
        return int(self.length.sum())


@dataclass(frozen=True)
class EpochPlan:
    """The samples of one epoch in read order (step-major, then accelerator, then batch)."""

    order: np.ndarray  # indices into the SampleTable, length steps * accelerators * batch
    steps: int
    accelerators: int
    batch_size: int

    def batch(self, step: int, accel: int) -> np.ndarray:
        b = self.batch_size
        i = (step * self.accelerators + accel) * b
        return self.order[i:i + b]


def steps_per_epoch(samples: int, accelerators: int, batch_size: int) -> int:
    return samples // (accelerators * batch_size)


def epoch_order(table: SampleTable, seed: int, epoch: int, shuffle: str) -> np.ndarray:
    """Sample indices in the order one epoch reads them; the same (seed, epoch) gives the
    same order, a different epoch a different one."""
    if shuffle not in SHUFFLES:
        raise UsageError(f"shuffle {shuffle!r}: must be one of {', '.join(SHUFFLES)}")
    n = table.count
    if shuffle == "none" or n == 0:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch, 0x7A1B])
    nfiles = int(table.file_index.max()) + 1
    file_rank = np.empty(nfiles, dtype=np.int64)
    file_rank[rng.permutation(nfiles)] = np.arange(nfiles)
    # stable sort by the shuffled file rank keeps each file's samples in file order
    by_file = np.argsort(file_rank[table.file_index], kind="stable")
    if shuffle == "file":
        return by_file
    return by_file[rng.permutation(n)]


def plan_epoch(table: SampleTable, *, accelerators: int, batch_size: int, seed: int,
               epoch: int, shuffle: str, max_steps: int = 0) -> EpochPlan:
    """The epoch's batches; `max_steps` > 0 cuts it short (find-max probes)."""
    steps = steps_per_epoch(table.count, accelerators, batch_size)
    if steps < 1:
        raise UsageError(
            f"the data set has {table.count} samples but {accelerators} accelerator(s) x "
            f"batch {batch_size} need {accelerators * batch_size} per step; generate a "
            "larger data set (iobench datagen --files N) or use fewer --accelerators"
        )
    if max_steps > 0:
        steps = min(steps, max_steps)
    order = epoch_order(table, seed, epoch, shuffle)[: steps * accelerators * batch_size]
    return EpochPlan(order=order, steps=steps, accelerators=accelerators,
                     batch_size=batch_size)
