"""The reader side of a generated data set: which files, where each sample lies
(offset, length for one pread), and decoders that parse a sample as a framework would.

The training replay uses this: `open_dataset(target)` -> Dataset; `ds.samples(i)` gives
file i's (offset, length) table from the file itself (raw/indexed index sidecars, npz
central directory, TFRecord length headers, HDF5 chunk table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iobench.errors import UsageError
from iobench.kinds.datagen.plan import module, shard_outputs
from iobench.kinds.datagen.writer import load_manifest
from iobench.spec import from_mapping
from iobench.workload import TrainingSpec

DATAGEN_DIR = "datagen"


@dataclass(frozen=True)
class Dataset:
    """A generated data set: spec, its data files in shard order, and sample lookup."""

    root: Path
    workload: str
    format: str
    spec: TrainingSpec
    files: tuple[Path, ...]  # data files only (sidecar indexes are not read per sample)
    file_bytes: tuple[int, ...]
    complete: bool
    _index: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def total_bytes(self) -> int:
        return sum(self.file_bytes)

    @property
    def samples_per_file(self) -> int:
        return self.spec.samples_per_file

    @property
    def num_samples(self) -> int:
        return len(self.files) * self.spec.samples_per_file

    def samples(self, i: int) -> np.ndarray:
        """(n, 2) int64 array: (offset, length) of every sample of file i; cached."""
        if i not in self._index:
            self._index[i] = module(self.format).index(self.files[i])
        return self._index[i]

    def read_sample(self, i: int, j: int, fd: int | None = None) -> bytes:
        """The bytes of sample j of file i (one pread)."""
        off, length = (int(x) for x in self.samples(i)[j])
        own = fd is None
        f = os.open(self.files[i], os.O_RDONLY) if fd is None else fd
        try:
            return os.pread(f, length, off)
        finally:
            if own:
                os.close(f)

    def decode(self, data: bytes | memoryview) -> Any:
        return decode(self.format, data, self.spec)


def decode(fmt: str, data: bytes | memoryview, spec: TrainingSpec | None = None) -> Any:
    """Parse one sample's bytes as the format's framework reader would: np.load of the
    .npy member (npz), the TFRecord framing with both CRCs + Example (tfrecord), tokens
    (indexed), h5py for a whole HDF5 file image, a uint8 view (raw)."""
    if spec is not None and spec.layout == "dlio" and fmt in ("npz", "hdf5", "indexed"):
        # DLIO's readers take a sample as raw uint8 (x[..., i], records[i], a byte range)
        return np.frombuffer(data, dtype=np.uint8)
    if fmt == "indexed":
        return module(fmt).decode(data, spec.token_dtype if spec else "uint16")
    try:
        return module(fmt).decode(data)
    except KeyError:
        raise UsageError(f"unknown format {fmt!r}") from None


def dataset_dir(target: Path, workload: str) -> Path:
    return Path(target) / DATAGEN_DIR / workload


def list_datasets(target: Path) -> list[str]:
    d = Path(target) / DATAGEN_DIR
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if (p / "manifest.json").is_file())


def open_dataset(target: Path | str, workload: str | None = None,
                 require_complete: bool = True) -> Dataset:
    """Open the data set `workload` under target/datagen/ (the only one if not named)."""
    target = Path(target)
    have = list_datasets(target)
    if workload is None:
        if len(have) != 1:
            raise UsageError(
                f"--target {target}: {'no' if not have else len(have)} generated data sets "
                f"({', '.join(have) or 'none'}); name one, or run iobench datagen first")
        workload = have[0]
    root = dataset_dir(target, workload)
    m = load_manifest(root)
    if m is None:
        raise UsageError(f"--target {target}: no data set for {workload!r} "
                         f"(have: {', '.join(have) or 'none'}); run "
                         f"`iobench datagen {workload} --target {target}` first")
    spec = from_mapping(TrainingSpec, m["spec"], "manifest.spec")
    entries = m["entries"]
    files: list[Path] = []
    sizes: list[int] = []
    complete = True
    for shard in range(int(m["files_planned"])):
        names = shard_outputs(spec, shard)
        ok = all(entries.get(n, {}).get("complete") for n in names)
        complete &= ok
        if ok:
            files.append(root / names[0])
            sizes.append(int(entries[names[0]]["size"]))
    if require_complete and not complete:
        raise UsageError(f"{root}: the data set is incomplete ({len(files)} of "
                         f"{m['files_planned']} files); re-run `iobench datagen {workload} "
                         f"--target {target}` to finish it")
    return Dataset(root, workload, spec.format, spec, tuple(files), tuple(sizes), complete)
