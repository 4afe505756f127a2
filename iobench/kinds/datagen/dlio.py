"""DLIO's on-disk layout (`--layout dlio`): what DLIO 2.0.0's own readers open, so a data
set iobench writes can be read by a DLIO / MLPerf Storage run, and a data folder DLIO
generated can be replayed by `iobench train` without regenerating it.

DLIO 2.0.0 (dlio_benchmark/data_generator/data_generator.py, generate()) names training
files DATA_FOLDER/train/{file_prefix}_{i}_of_{N}.{format} with i zero-padded to the
digits of N (utils/utility.py add_padding) and finds them again by listing
DATA_FOLDER/train and keeping the names ending in the config's format, sorted (main.py
initialize). Per format, what its readers read (dlio_benchmark/reader/*):

- npz: np.load(f)['x'][..., i]: one array `x` of shape (d1, d2, samples) uint8 (and `y`
  labels), as np.savez(x=..., y=...) writes it (data_generator/npz_generator.py);
- hdf5: h5py.File(f)['records'][i]: a data set `records` of shape (samples, d1, d2)
  uint8 and `labels` (data_generator/hdf5_generator.py);
- indexed_binary / mmap_indexed_binary: the data file and two sidecars, F.off.idx and
  F.sz.idx, each num_samples_per_file native uint64 offsets / sizes read with
  np.empty(n, int64) + readinto (reader/indexed_binary_reader.py load_index_file);
- tfrecord: tf.train.Example records with features 'image' (bytes) and 'size' (int64),
  parsed with FixedLenFeature (reader/tf_reader.py _parse_image) - iobench's TFRecord
  shards already are that, only the names and the train/ folder differ.

DLIO draws one (d1, d2) per file, so all samples of a file are the same size; the dlio
layout does the same (one draw per file from iobench's size distribution, d1 x d2 equal
to it exactly: d1 the largest divisor of the size not above its square root).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from iobench import safepath
from iobench.errors import UsageError
from iobench.workload import TrainingSpec

LAYOUTS = ("iobench", "dlio")
TRAIN_DIR = "train"
PREFIX = "img"  # DLIO's default dataset.file_prefix
# iobench format -> DLIO's file extension (its dataset.format value). DLIO keeps the
# names that end in the format, so .mmap_indexed_binary is found by both an
# indexed_binary and a mmap_indexed_binary config (and .off.idx / .sz.idx by neither).
EXTENSIONS = {"npz": "npz", "hdf5": "hdf5", "tfrecord": "tfrecord",
              "indexed": "mmap_indexed_binary"}
OFF_IDX = ".off.idx"
SZ_IDX = ".sz.idx"


def stem(spec: TrainingSpec, shard: int) -> str:
    """train/img_{shard}_of_{files} (relative to the data set directory), as DLIO names."""
    digits = len(str(spec.files))
    return f"{TRAIN_DIR}/{PREFIX}_{str(shard).rjust(digits, '0')}_of_{spec.files}"


def outputs(spec: TrainingSpec, stem_: str) -> list[str]:
    data = f"{stem_}.{EXTENSIONS[spec.format]}"
    if spec.format == "indexed":
        return [data, data + OFF_IDX, data + SZ_IDX]
    return [data]


def dims(size: int) -> tuple[int, int]:
    """(d1, d2) with d1 * d2 == size exactly, d1 the largest divisor <= sqrt(size)."""
    d1 = math.isqrt(size)
    while size % d1:
        d1 -= 1
    return d1, size // d1


def file_sizes(spec: TrainingSpec, shard: int) -> np.ndarray:
    """Sample sizes of one shard in the dlio layout: one size drawn per file (DLIO's
    get_dimension draws per file), repeated for every sample of it."""
    mean = spec.mean_record_bytes
    lo, hi = spec.clip_bytes
    if spec.record_size_stdev == 0:
        one = min(max(mean, lo), hi)
    else:
        rng = np.random.default_rng([spec.seed, shard, 0x5123])  # as writer.record_sizes
        one = int(np.clip(np.rint(rng.normal(mean, spec.record_size_stdev)), lo, hi))
    return np.full(spec.samples_per_file, one, dtype=np.int64)


def prepare(directory: Path) -> None:
    safepath.makedirs(directory / TRAIN_DIR)


def find_files(folder: Path, dlio_format: str, count: int) -> list[Path]:
    """The training files DLIO would read from `folder` (its dataset.data_folder): the
    names in folder/train (or its subfolders) ending in the format, sorted, the first
    `count` (DLIO uses a subset when there are more)."""
    train = folder / TRAIN_DIR
    if not train.is_dir():
        raise UsageError(f"--target {folder}: no {TRAIN_DIR}/ folder: not a DLIO data folder "
                         f"(DLIO writes DATA_FOLDER/{TRAIN_DIR}/*.{dlio_format})")
    entries = sorted(train.iterdir())
    if entries and entries[0].is_dir():
        files = sorted((p for d in entries if d.is_dir() for p in d.glob(f"*.{dlio_format}")),
                       key=lambda p: p.name)
    else:
        files = [p for p in entries if p.name.endswith(dlio_format) and p.is_file()]
    if len(files) < count:
        raise UsageError(f"{train}: {len(files)} *.{dlio_format} files, the config's "
                         f"dataset.num_files_train wants {count}; generate them (iobench "
                         "datagen --dlio-config, or DLIO) or lower num_files_train")
    return files[:count]
