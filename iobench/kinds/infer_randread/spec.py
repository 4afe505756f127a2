"""What `iobench infer randread` measures: a block size x queue depth grid of random reads
over a set of files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from iobench import spec as spec_mod
from iobench.errors import UsageError
from iobench.kinds.infer_randread.randread import check
from iobench.limits import MAX_THREADS, check_open_files
from iobench.units import parse_list, parse_positive_size

CACHE_POLICIES = ("drop", "drop-global", "direct", "allow")
ENGINES = ("native", "fio")
IOENGINES = ("io_uring", "libaio")


@dataclass(frozen=True)
class Spec:
    """`files` files of `file_size` under <target>/infer/randread/; one cell per block
    size x queue depth, `runtime` seconds each."""

    file_size: int = spec_mod.size_field(1 << 30)
    files: int = 4
    block_sizes: tuple[int, ...] = spec_mod.size_field((4096, 16384, 65536, 131072))
    queue_depths: tuple[int, ...] = (1, 4, 16, 64)
    runtime: float = spec_mod.duration_field(5.0)  # seconds per cell
    cache: str = "direct"
    engine: str = "native"
    ioengine: str = "libaio"  # fio's (--engine fio)

    @property
    def direct(self) -> bool:
        return self.cache == "direct"

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix."""
        for name, value, allowed in (("cache", self.cache, CACHE_POLICIES),
                                     ("engine", self.engine, ENGINES),
                                     ("ioengine", self.ioengine, IOENGINES)):
            if value not in allowed:
                raise UsageError(f"--{name} {value!r}: choose one of {', '.join(allowed)}")
        if not self.block_sizes or not self.queue_depths:
            raise UsageError("--block-size and --queue-depth need one value or more")
        if self.file_size <= 0:
            raise UsageError(f"--file-size {self.file_size}: give at least 1 byte, e.g. 1GiB")
        if min(self.block_sizes) <= 0:
            raise UsageError(f"--block-size {min(self.block_sizes)}: give at least 1 byte")
        check(self.block_sizes, self.file_size, self.direct)
        if not 1 <= self.files <= MAX_THREADS:
            raise UsageError(f"--files {self.files}: give 1 to {MAX_THREADS}")
        check_open_files(self.files, "--files")
        if min(self.queue_depths) < 1:
            raise UsageError(f"--queue-depth {min(self.queue_depths)}: give 1 or more")
        if max(self.queue_depths) > MAX_THREADS:
            raise UsageError(f"--queue-depth {max(self.queue_depths)}: at most {MAX_THREADS} "
                             "I/Os in flight per cell")
        if self.runtime <= 0:
            raise UsageError("--runtime must be > 0 for the sweep, e.g. 5s")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The spec as result.json records it (the keys results have always had)."""
        return {"file_size": self.file_size, "files": self.files,
                "block_sizes": list(self.block_sizes), "queue_depths": list(self.queue_depths),
                "runtime_s": self.runtime, "cache": self.cache, "engine": self.engine,
                "ioengine": self.ioengine if self.engine == "fio" else None}


def _positive_int(text: str, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a whole number") from None
    if v < 1:
        raise UsageError(f"{what}: {v} must be >= 1")
    return v


def build(**values: Any) -> Spec:
    """A validated Spec from plain values; sizes may be strings ("1GiB", "4k"), the lists
    comma strings ("4k,64k", "1,16") or sequences."""
    v = {k: x for k, x in values.items() if x is not None}
    if isinstance(v.get("block_sizes"), str):
        v["block_sizes"] = parse_list(v["block_sizes"], parse_positive_size, "--block-size")
    if isinstance(v.get("queue_depths"), str):
        v["queue_depths"] = parse_list(v["queue_depths"], _positive_int, "--queue-depth")
    for key in ("block_sizes", "queue_depths"):
        if key in v:
            v[key] = list(v[key])
    s = spec_mod.from_mapping(Spec, v, "infer randread")
    return dataclasses.replace(s).validate()
