"""I/O engines: native (Python threads, preadv/pwritev, O_DIRECT) and fio (subprocess).

Both take an IOSpec and the files to use, and return phases in the results schema, so
one pattern can be measured by both on the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PATTERNS = ("seqread", "seqwrite", "randread", "randwrite")
IOENGINES = ("psync", "libaio", "io_uring")
Pattern = Literal["seqread", "seqwrite", "randread", "randwrite"]


@dataclass(frozen=True)
class IOSpec:
    """One plain I/O pattern. `files` holds one file per job, each `size` bytes."""

    pattern: Pattern
    size: int
    block_size: int
    files: tuple[Path, ...] = field(default_factory=tuple)
    jobs: int = 1
    queue_depth: int = 1
    runtime: float = 0.0  # seconds; 0 = one pass over `size` per job
    direct: bool = False
    ioengine: str = "psync"  # fio only; the native engine uses threads for depth
    end_fsync: bool = True  # writes: fsync at the end, timed separately
    seed: int = 0
    first_job: int = 0  # global index of files[0] (MPI ranks own consecutive jobs)

    @property
    def is_write(self) -> bool:
        return self.pattern.endswith("write")

    @property
    def is_random(self) -> bool:
        return self.pattern.startswith("rand")
