"""The data set plan: how many shard files, how many bytes, and the MLPerf sizing rule
(>= 5 x host RAM and >= 500 steps per epoch) behind --auto-size."""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from iobench.errors import SpecError
from iobench.kinds.datagen import dlio as dlio_layout
from iobench.kinds.datagen import hdf5, indexed, npz, raw, tfrecord
from iobench.kinds.datagen.writer import WORKER_BUFFER_BYTES, FileRecord, ShardJob, record_sizes
from iobench.workload import TrainingSpec

FORMAT_MODULES: dict[str, ModuleType] = {
    "raw": raw, "npz": npz, "hdf5": hdf5, "tfrecord": tfrecord, "indexed": indexed,
}
MIN_STEPS_PER_EPOCH = 500
RAM_MULTIPLE = 5
_EXACT_LIMIT = 2_000_000  # beyond this many samples, variable sizes are estimated


def module(fmt: str) -> ModuleType:
    return FORMAT_MODULES[fmt]


def stem(spec: TrainingSpec, shard: int) -> str:
    """Shard file stem; independent of the file count so a data set can grow in place
    (the dlio layout names files as DLIO does: train/img_I_of_N)."""
    if spec.layout == "dlio":
        return dlio_layout.stem(spec, shard)
    return f"{spec.name}-{shard:06d}"


def shard_outputs(spec: TrainingSpec, shard: int) -> list[str]:
    if spec.layout == "dlio":
        return dlio_layout.outputs(spec, stem(spec, shard))
    return list(module(spec.format).outputs(stem(spec, shard)))


@dataclass(frozen=True)
class Plan:
    spec: TrainingSpec
    files: int
    samples: int
    payload_bytes: int  # sample bytes (exact, or estimated from the mean when huge)
    est_bytes: int  # payload + format overhead: what the target must hold
    exact: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def steps_per_epoch(self, accelerators: int) -> int:
        return self.samples // (self.spec.batch_size * accelerators)


def payload_bytes(spec: TrainingSpec, files: int) -> tuple[int, bool]:
    n = files * spec.samples_per_file
    if spec.record_size_stdev == 0:  # O(1): no per-sample array (DLIO dlrm: 4.2e9 samples)
        lo, hi = spec.clip_bytes
        return min(max(spec.mean_record_bytes, lo), hi) * n, True
    if n <= _EXACT_LIMIT:
        return sum(int(record_sizes(spec, s).sum()) for s in range(files)), True
    return spec.mean_record_bytes * n, False


def make_plan(spec: TrainingSpec, reasons: tuple[str, ...] = ()) -> Plan:
    payload, exact = payload_bytes(spec, spec.files)
    overhead = module(spec.format).overhead_bytes(spec) * spec.files
    return Plan(spec, spec.files, spec.files * spec.samples_per_file, payload,
                payload + overhead, exact, reasons)


def files_for_size(spec: TrainingSpec, size_bytes: int) -> int:
    """The fewest shard files whose samples hold at least `size_bytes`.

    Sizes are the shards' real record sizes (each shard's draw is reproducible), not the
    spec's mean: with a clipped, variable size the mean misleads (unet3d's first two
    shards hold 188 MB, not 2 x 146.6 MB), and a data set sized by it could fall short of
    the request, or of the 5 x RAM rule --auto-size promises. So the data set is never
    smaller than asked, and at most one file larger.
    """
    if size_bytes <= 0:
        raise SpecError(f"--dataset-size: {size_bytes} must be > 0, e.g. 10GiB")
    if spec.record_size_stdev == 0:
        per_file = int(record_sizes(spec, 0)[0]) * spec.samples_per_file
        return max(1, math.ceil(size_bytes / per_file))
    files = total = 0
    while total < size_bytes:  # ~20 us a shard: 5 x 1 TiB of unet3d is ~37,500 shards
        total += int(record_sizes(spec, files).sum())
        files += 1
    return files


def auto_size(spec: TrainingSpec, host_ram_bytes: int,
              accelerators: int) -> tuple[int, tuple[str, ...]]:
    """Shard files for the MLPerf rule: data set >= 5 x host RAM, and >= 500 steps per
    epoch with `accelerators` each taking batch_size samples per step."""
    if accelerators <= 0:
        raise SpecError(f"--accelerators: {accelerators} must be >= 1")
    ram_files = files_for_size(spec, RAM_MULTIPLE * host_ram_bytes)
    step_samples = MIN_STEPS_PER_EPOCH * spec.batch_size * accelerators
    step_files = math.ceil(step_samples / spec.samples_per_file)
    files = max(ram_files, step_files)
    per_file = spec.mean_record_bytes * spec.samples_per_file
    why = (
        f"{RAM_MULTIPLE} x host RAM ({host_ram_bytes / 1e9:.1f} GB) = "
        f"{RAM_MULTIPLE * host_ram_bytes / 1e9:.1f} GB -> {ram_files} files of "
        f"~{per_file / 1e6:.1f} MB (their real sizes hold at least that)",
        f"{MIN_STEPS_PER_EPOCH} steps x batch {spec.batch_size} x {accelerators} "
        f"accelerator(s) = {step_samples} samples -> {step_files} files",
        f"taking the larger: {files} files "
        f"({'RAM rule' if ram_files >= step_files else 'steps rule'} decides)",
    )
    return files, why


# --- worker side -----------------------------------------------------------------------
_buf: np.ndarray | None = None


def generate_shard(job: ShardJob) -> tuple[int, list[FileRecord], int]:
    """Write every file of one shard (runs in a worker process, one buffer per process).

    Returns the shard, its files, and this process's peak RSS in bytes so far (a forked
    worker starts from its parent's RSS, so this is an upper bound on its own use).
    """
    global _buf
    if _buf is None:
        _buf = np.empty(WORKER_BUFFER_BYTES, dtype=np.uint8)
    recs = module(job.spec.format).write_shard(job, _buf, stem(job.spec, job.shard))
    return job.shard, recs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
