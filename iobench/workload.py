"""The training workload spec (workloads/training/*.yaml) and the accelerator table
(workloads/accelerators.yaml): frozen dataclasses, loaded and checked before any I/O.

A training workload is one YAML file: what datagen writes, what the replay reads, and the
emulated compute time of one step on each accelerator type (compute_seconds_per_step).
accelerators.yaml describes the accelerators only (name, host RAM per accelerator)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from iobench import presets, safepath
from iobench.errors import SpecError, did_you_mean
from iobench.spec import from_mapping, load_yaml, size_field

FORMATS = ("raw", "npz", "hdf5", "tfrecord", "indexed")
TOKEN_BYTES = {"uint16": 2, "uint32": 4}
NPZ_MAX_RECORD = 0xFFFFFFFF - 4096  # no ZIP64: one member must stay below 4 GiB


@dataclass(frozen=True)
class TrainingSpec:
    """One training workload: what datagen writes and what the training replay reads.

    Fields that shape the bytes on disk (format, record sizes, samples per file, seed,
    token layout) are the data set's identity; `files` only says how many shard files.
    The rest (batch size, AU threshold, epochs, reader threads) is for the replay.
    """

    name: str
    format: Literal["raw", "npz", "hdf5", "tfrecord", "indexed"]
    record_size: int = size_field(0)  # mean bytes per sample (indexed: derived from seq_len)
    record_size_stdev: int = size_field(0)  # 0 = fixed size; else normal(mean, stdev)
    record_size_min: int = size_field(0)  # lower clip; 0 = max(1, mean - 3 stdev)
    record_size_max: int = size_field(0)  # upper clip; 0 = mean + 3 stdev
    samples_per_file: int = 1
    files: int = 1  # shard files in the data set (indexed: .bin/.idx pairs)
    batch_size: int = 1  # samples per step per accelerator
    au_threshold_pct: float = 90.0  # MLPerf minimum accelerator utilisation
    seed: int = 0
    seq_len: int = 0  # indexed: tokens per sequence (one sample)
    token_dtype: Literal["uint16", "uint32"] = "uint16"
    hdf5_chunk_bytes: int = size_field(1 << 20)  # hdf5: chunk size of the data set
    epochs: int = 1  # replay: passes over the data set
    read_threads: int = 4  # replay: reader threads per accelerator (DLIO read_threads)
    shuffle: Literal["none", "file", "sample"] = "sample"  # replay: sample order
    # on-disk layout: iobench's own, or DLIO's (names, train/ folder, npz key x, hdf5
    # records (n, d1, d2), .off.idx/.sz.idx sidecars) so DLIO's readers open the files
    layout: Literal["iobench", "dlio"] = "iobench"
    description: str = ""
    source: str = ""  # where the numbers come from
    # emulated compute of one step (one batch per accelerator), s, per accelerator type
    # (a100, h100, b200: workloads/accelerators.yaml); the replay sleeps this long per step
    compute_seconds_per_step: dict[str, float] = field(default_factory=dict)

    @property
    def mean_record_bytes(self) -> int:
        if self.format == "indexed":
            return self.seq_len * TOKEN_BYTES[self.token_dtype]
        return self.record_size

    @property
    def clip_bytes(self) -> tuple[int, int]:
        """(min, max) sample size after clipping the normal distribution."""
        mean, sd = self.mean_record_bytes, self.record_size_stdev
        lo = self.record_size_min or max(1, mean - 3 * sd)
        hi = self.record_size_max or mean + 3 * sd
        return lo, hi

    def identity(self) -> dict[str, Any]:
        """What decides the bytes of each shard; a data set is reusable when it matches."""
        d = dataclasses.asdict(self)
        keep = ("format", "record_size", "record_size_stdev", "record_size_min",
                "record_size_max", "samples_per_file", "seed", "seq_len", "token_dtype",
                "hdf5_chunk_bytes", "layout")
        return {k: d[k] for k in keep}


def validate(spec: TrainingSpec, where: str) -> TrainingSpec:
    """Refuse specs that cannot be generated; one line naming the key and the fix."""
    safepath.check_name(spec.name, f"{where}.name")  # it names datagen/<name>/
    if spec.format == "indexed":
        if spec.seq_len <= 0:
            raise SpecError(f"{where}.seq_len: indexed data sets need seq_len > 0 tokens "
                            "(e.g. 8192)")
        if spec.record_size and spec.record_size != spec.mean_record_bytes:
            raise SpecError(f"{where}.record_size: {spec.record_size} disagrees with "
                            f"seq_len x {spec.token_dtype} = {spec.mean_record_bytes} bytes; "
                            "drop record_size for indexed data sets")
        if spec.record_size_stdev:
            raise SpecError(f"{where}.record_size_stdev: indexed sequences are fixed "
                            "(seq_len tokens); remove record_size_stdev")
    else:
        if spec.record_size <= 0:
            if spec.record_size_stdev:
                raise SpecError(f"{where}.record_size_stdev: given without a mean; add "
                                "record_size (the mean), e.g. record_size: 146.6MB")
            raise SpecError(f"{where}.record_size: must be > 0 bytes, e.g. 115KB or 1MiB")
        if spec.seq_len:
            raise SpecError(f"{where}.seq_len: only for format indexed; remove it")
    if spec.layout not in ("iobench", "dlio"):
        raise SpecError(f"{where}.layout: {spec.layout!r} is not a layout; use iobench or "
                        "dlio")
    if spec.layout == "dlio" and spec.format == "raw":
        raise SpecError(f"{where}.layout: DLIO has no raw format; use layout iobench, or "
                        "format npz, hdf5, tfrecord or indexed")
    lo, hi = spec.clip_bytes
    if lo <= 0 or hi < lo:
        raise SpecError(f"{where}: record size clip [{lo}, {hi}] is empty; fix "
                        "record_size_min/record_size_max")
    if spec.format == "npz" and hi > NPZ_MAX_RECORD:
        raise SpecError(f"{where}: npz records must stay below 4 GiB (largest possible "
                        f"{hi} bytes); lower record_size_max or record_size_stdev")
    for key, most in (("samples_per_file", 2**32), ("files", 2**40), ("batch_size", 2**32),
                      ("epochs", 2**40), ("read_threads", 1024)):
        v = getattr(spec, key)
        if v <= 0:
            raise SpecError(f"{where}.{key}: {v} must be >= 1")
        if v > most:
            raise SpecError(f"{where}.{key}: {v} is beyond the most iobench runs ({most})")
    if hi * spec.samples_per_file > 2**62 or lo * spec.samples_per_file * spec.files > 2**62:
        raise SpecError(f"{where}: record size x samples_per_file x files is beyond what a "
                        "file system holds (2^62 bytes); lower them")
    if not 0 < spec.hdf5_chunk_bytes <= 64 << 20:
        raise SpecError(f"{where}.hdf5_chunk_bytes: {spec.hdf5_chunk_bytes} must be in "
                        "(0, 64 MiB], e.g. 1MiB (a worker holds one batch of chunks)")
    if not 0 < spec.au_threshold_pct <= 100:
        raise SpecError(f"{where}.au_threshold_pct: {spec.au_threshold_pct} must be in "
                        "(0, 100]")
    if spec.seed < 0:
        raise SpecError(f"{where}.seed: {spec.seed} must be >= 0")
    for accel, secs in spec.compute_seconds_per_step.items():
        if not accel or accel != accel.lower():
            raise SpecError(f"{where}.compute_seconds_per_step: accelerator {accel!r}: "
                            "write its name in lower case (a100, h100, b200)")
        if not 0 <= secs <= 86400:
            raise SpecError(f"{where}.compute_seconds_per_step.{accel}: {secs} must be in "
                            "[0, 86400] seconds")
    return spec


def load_workload(name_or_path: str) -> TrainingSpec:
    """A training preset by name (workloads/training/NAME.yaml) or a YAML path."""
    path = presets.find("training", name_or_path)
    data = load_yaml(path)
    if isinstance(data, dict) and "format" in data and data["format"] not in FORMATS:
        raise SpecError(f"{path.stem}.format: unknown format {data['format']!r}"
                        f"{did_you_mean(str(data['format']), FORMATS)}")
    if isinstance(data, dict) and "name" not in data:
        data = {"name": path.stem, **data}
    spec = from_mapping(TrainingSpec, data, path.stem)
    return validate(spec, path.stem)


# --- accelerators ----------------------------------------------------------------------
@dataclass(frozen=True)
class Accelerator:
    description: str = ""
    host_ram_per_accelerator: int = size_field(0)  # MLPerf: ~0.5 GB per simulated one


@dataclass(frozen=True)
class AcceleratorTable:
    accelerators: dict[str, Accelerator]
    source: str = ""


def accelerators_path() -> Path:
    return presets.presets_root() / "accelerators.yaml"


def load_accelerators(path: Path | None = None) -> AcceleratorTable:
    p = path or accelerators_path()
    return from_mapping(AcceleratorTable, load_yaml(p), p.stem)


def accelerator(name: str, table: AcceleratorTable | None = None) -> Accelerator:
    t = table or load_accelerators()
    key = name.lower()
    if key not in t.accelerators:
        raise SpecError(f"--accelerator: unknown accelerator {name!r}"
                        f"{did_you_mean(key, list(t.accelerators))}")
    return t.accelerators[key]


def compute_seconds(workload: TrainingSpec | str, accel: str) -> float:
    """Emulated compute time of one step of `workload` on one `accel`, from the workload's
    own YAML (compute_seconds_per_step). A workload imported from a DLIO config without
    train.computation_time takes the figures of the shipped preset of the same name."""
    spec = load_workload(workload) if isinstance(workload, str) else workload
    accelerator(accel)  # unknown name: one line with a did-you-mean
    key = accel.lower()
    table = spec.compute_seconds_per_step
    if not table and spec.layout == "dlio" and spec.name in presets.names("training"):
        table = load_workload(spec.name).compute_seconds_per_step
    if key not in table:
        have = ", ".join(sorted(table)) or "none"
        raise SpecError(f"{spec.name}: no compute time on {key} (it has {have}); add "
                        f"compute_seconds_per_step: {{{key}: SECONDS}} to the workload's "
                        "YAML")
    return table[key]
