"""Opens a generated data set for the replay through datagen's reader API, checking it
first (right workload, every shard present, whole and indexable) so a bad data set is
one line naming the shard before anything is measured."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from iobench.errors import UsageError
from iobench.kinds.datagen import dlio as dlio_layout
from iobench.kinds.datagen import reader as dg_reader
from iobench.kinds.datagen.plan import module
from iobench.kinds.train.emulate import Dataset, SampleStream
from iobench.kinds.train.plan import SampleTable
from iobench.workload import TrainingSpec

INDEX_THREADS = 8  # indexing reads a header per shard: latency-bound, so overlap it


def _regen(spec: TrainingSpec, target: Path) -> str:
    return f"regenerate it with `iobench datagen {spec.name} --target {target}`"


def open_for_training(target: Path, spec: TrainingSpec) -> tuple[dg_reader.Dataset, Dataset]:
    """The datagen data set of `spec` under target/datagen/, and its sample table."""
    ds = dg_reader.open_dataset(target, spec.name)
    want, have = spec.identity(), ds.spec.identity()
    # the data seed only picks contents and sizes, which the index reads back, and the
    # layout only where they lie: neither is checked (the files are read as they are)
    diff = [k for k in want if k not in ("seed", "layout") and want[k] != have.get(k)]
    if diff:
        k = diff[0]
        raise UsageError(
            f"{ds.root}: the data set was generated for another workload spec ({k} "
            f"{have.get(k)!r}, this workload wants {want[k]!r}); {_regen(spec, target)} "
            "or train the workload it was made for")
    if not ds.files:
        raise UsageError(f"{ds.root}: the data set has no files; {_regen(spec, target)}")

    def check(i: int) -> np.ndarray:
        path = ds.files[i]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise UsageError(f"{path}: shard missing from the data set; "
                             f"{_regen(spec, target)}") from None
        if size != ds.file_bytes[i]:
            raise UsageError(
                f"{path}: shard is {size} bytes but datagen wrote {ds.file_bytes[i]}; it is "
                f"truncated or corrupt: {_regen(spec, target)}")
        try:
            table = ds.samples(i)
        except Exception as e:  # noqa: BLE001 - any parse failure means a damaged shard
            msg = e.format_message() if hasattr(e, "format_message") else str(e)
            raise UsageError(f"{path}: shard is corrupt, its sample index cannot be read "
                             f"({msg.removeprefix(str(path) + ': ')}); "
                             f"{_regen(spec, target)}") from None
        if table.shape[0] != spec.samples_per_file or (
                table.size and int((table[:, 0] + table[:, 1]).max()) > size):
            raise UsageError(
                f"{path}: shard is corrupt ({table.shape[0]} samples indexed, "
                f"{spec.samples_per_file} expected, or a sample past the end); "
                f"{_regen(spec, target)}")
        return table

    n = len(ds.files)
    if n > 16:
        with ThreadPoolExecutor(INDEX_THREADS) as pool:
            tables = list(pool.map(check, range(n)))
    else:
        tables = [check(i) for i in range(n)]
    table = SampleTable.from_files([(t[:, 0], t[:, 1]) for t in tables])
    return ds, Dataset(files=list(ds.files), table=table, name=spec.name,
                       file_bytes=tuple(ds.file_bytes))


def open_dlio_folder(folder: Path, spec: TrainingSpec,
                     dlio_format: str) -> tuple[dg_reader.Dataset, Dataset]:
    """A data folder DLIO wrote (or iobench with --layout dlio), replayed without an
    iobench manifest: the files DLIO would pick (dlio_layout.find_files) and each file's
    sample table built from the file itself (npz x array, hdf5 records, .off.idx/.sz.idx
    sidecars, TFRecord length headers)."""
    files = dlio_layout.find_files(folder, dlio_format, spec.files)
    n = spec.samples_per_file

    def check(path: Path) -> np.ndarray:
        try:
            table = module(spec.format).index(path)
        except Exception as e:  # noqa: BLE001 - any parse failure: not DLIO's layout
            msg = e.format_message() if hasattr(e, "format_message") else str(e)
            raise UsageError(f"{path}: not a DLIO {dlio_format} file iobench can read "
                             f"({msg.removeprefix(str(path) + ': ')})") from None
        size = path.stat().st_size
        if table.shape[0] < n or (n and int((table[:n, 0] + table[:n, 1]).max()) > size):
            raise UsageError(f"{path}: {table.shape[0]} samples, the config's "
                             f"dataset.num_samples_per_file is {n} (or a sample lies past "
                             "the end of the file)")
        return table[:n]

    if len(files) > 16:
        with ThreadPoolExecutor(INDEX_THREADS) as pool:
            tables = list(pool.map(check, files))
    else:
        tables = [check(p) for p in files]
    sizes = tuple(p.stat().st_size for p in files)
    dspec = dataclasses.replace(spec, layout="dlio")
    dg = dg_reader.Dataset(folder, spec.name, spec.format, dspec, tuple(files), sizes, True)
    table = SampleTable.from_files([(t[:, 0], t[:, 1]) for t in tables])
    return dg, Dataset(files=list(files), table=table, name=spec.name, file_bytes=sizes)


def decoder(ds: dg_reader.Dataset) -> Callable[[int, memoryview], None]:
    """Parse each sample as the format's framework reader would (datagen's decoders); a
    sample that does not parse names its shard."""
    fmt, spec, files = ds.format, ds.spec, ds.files

    def decode(file_index: int, data: memoryview) -> None:
        try:
            dg_reader.decode(fmt, data, spec)  # parsed in the reader's buffer: no copy
        except Exception as e:  # noqa: BLE001 - a sample that will not parse is corruption
            raise _corrupt(files[file_index], fmt, e) from None

    return decode


def _corrupt(path: Path, fmt: str, e: Exception) -> UsageError:
    msg = e.format_message() if hasattr(e, "format_message") else str(e)
    return UsageError(f"{path}: a sample failed to decode as {fmt} ({msg}); the shard is "
                      "corrupt: regenerate it with iobench datagen")


class _Named:
    """A stream decoder whose failures name the shard (one line, as `decoder`'s do)."""

    def __init__(self, inner: SampleStream, path: Path, fmt: str) -> None:
        self.inner, self.path, self.fmt = inner, path, fmt

    def feed(self, piece: memoryview) -> None:
        try:
            self.inner.feed(piece)
        except Exception as e:  # noqa: BLE001
            raise _corrupt(self.path, self.fmt, e) from None

    def finish(self) -> None:
        try:
            self.inner.finish()
        except Exception as e:  # noqa: BLE001
            raise _corrupt(self.path, self.fmt, e) from None


def stream_decoder(ds: dg_reader.Dataset) -> Callable[[int, int, int], SampleStream] | None:
    """npz: each sample decoded as it streams through the reader's block buffer (header,
    length, zip CRC-32; iobench.kinds.train.decode); other formats: None (whole samples)."""
    if ds.format != "npz":
        return None
    from iobench.kinds.train.decode import NpzStreams

    streams = NpzStreams(list(ds.files))
    files = ds.files

    def start(file_index: int, offset: int, length: int) -> SampleStream:
        try:
            s = streams(file_index, offset, length)
        except Exception as e:  # noqa: BLE001
            raise _corrupt(files[file_index], "npz", e) from None
        return _Named(s, files[file_index], "npz")

    return start
