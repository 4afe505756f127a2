"""What `iobench io PATTERN` measures: one plain pattern over one file per job."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import spec as spec_mod
from iobench.engines import IOENGINES, PATTERNS
from iobench.errors import UsageError
from iobench.limits import MAX_SEED, MAX_THREADS, check_open_files

CACHE_POLICIES = ("drop", "drop-global", "direct", "allow")
ENGINES = ("native", "fio")


@dataclass(frozen=True)
class Spec:
    """One plain I/O pattern: `jobs` files of `size` bytes under <target>/io/."""

    pattern: str  # seqread | seqwrite | randread | randwrite
    size: int = spec_mod.size_field(64 << 20)  # per job
    block_size: int = spec_mod.size_field(1 << 20)
    jobs: int = 1  # per MPI rank (as fio's numjobs per client)
    queue_depth: int = 1  # native: threads (or the AIO ring under direct); fio: iodepth
    runtime: float = spec_mod.duration_field(0.0)  # seconds, time-based; 0 = one pass
    cache: str = "drop"  # drop | drop-global | direct | allow
    engine: str = "native"  # native | fio
    ioengine: str | None = None  # fio's; default psync at QD1, libaio above
    seed: int = 0
    fio_hosts: Path | None = None  # a host file of `fio --server` daemons (engine fio)

    @property
    def direct(self) -> bool:
        return self.cache == "direct"

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix."""
        def choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
            if value not in allowed:
                raise UsageError(f"--{name.replace('_', '-')} {value!r}: choose one of "
                                 f"{', '.join(allowed)}")
        choice("pattern", self.pattern, PATTERNS)
        choice("cache", self.cache, CACHE_POLICIES)
        choice("engine", self.engine, ENGINES)
        if self.ioengine is not None:
            choice("ioengine", self.ioengine, IOENGINES)
        for name in ("jobs", "queue_depth"):
            v = getattr(self, name)
            if not 1 <= v <= MAX_THREADS:
                raise UsageError(f"--{name.replace('_', '-')} {v}: give 1 to {MAX_THREADS}")
        if self.size <= 0 or self.block_size <= 0:
            raise UsageError("--size and --block-size must be at least 1 byte")
        if not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed {self.seed}: give 0 to {MAX_SEED}")
        if self.runtime < 0:
            raise UsageError(f"--runtime {self.runtime}: give 0 (one pass) or more seconds")
        if self.block_size > self.size:
            raise UsageError(f"--block-size {self.block_size} is larger than --size "
                             f"{self.size}; give a larger --size or a smaller --block-size")
        check_open_files(self.jobs, "--jobs")
        if self.engine == "native" and self.jobs * self.queue_depth > MAX_THREADS and not (
                self.direct and self.queue_depth > 1):  # threads; O_DIRECT QD>1 uses AIO
            raise UsageError(f"--jobs {self.jobs} x --queue-depth {self.queue_depth}: the "
                             f"native engine runs one thread per I/O in flight, at most "
                             f"{MAX_THREADS}; lower them or use --cache direct (native AIO) "
                             "or --engine fio")
        if self.direct and self.block_size % 4096:
            raise UsageError(f"--block-size {self.block_size}: --cache direct (O_DIRECT) "
                             "needs a multiple of 4096 bytes, e.g. 4k")
        return self

    @property
    def fio_ioengine(self) -> str:
        return self.ioengine or ("psync" if self.queue_depth == 1 else "libaio")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fio_hosts"] = str(self.fio_hosts) if self.fio_hosts is not None else None
        return d


def build(**values: Any) -> Spec:
    """A validated Spec from plain values; sizes may be strings ("64MiB", "4k")."""
    hosts = values.pop("fio_hosts", None)
    s = spec_mod.from_mapping(Spec, {k: v for k, v in values.items() if v is not None}, "io")
    if hosts is not None:
        s = dataclasses.replace(s, fio_hosts=Path(hosts))
    return s.validate()
