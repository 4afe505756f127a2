"""What `iobench checkpoint MODEL` measures: writes and restores of one preset's checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import spec as spec_mod
from iobench.errors import UsageError
from iobench.kinds.checkpoint.rankio import CHUNK
from iobench.limits import MAX_SEED, MAX_THREADS
from iobench.units import format_bytes

MAX_RANK_BUFFER_BYTES = 256 << 20  # the memory bound per rank the issue promises
CACHE_POLICIES = ("drop", "drop-global", "direct", "allow")
ENGINES = ("native", "fio")
MODES = ("full", "subset")
LAYOUTS = ("deepspeed", "dcp")


@dataclass(frozen=True)
class Spec:
    """A checkpoint run: the preset (workloads/checkpoint/) or a DLIO config, how the job
    is parallelised (None: the preset's), how many checkpoints, and what to measure."""

    model: str = ""  # preset name or YAML path; "" with dlio_config: the config's model
    ranks: int | None = None  # full: must equal TP x PP x DP; subset: default 8
    mode: str = "full"  # full | subset
    count: int = 1
    keep: int | None = None
    layout: str | None = None  # deepspeed | dcp (None: the preset's)
    zero: int | None = None
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    scale: float = 1.0
    write: bool = True
    read: bool = True
    rank_shift: int = 0
    cache: str = "drop"
    async_mode: bool = False
    staging: int = spec_mod.size_field(128 << 20)  # --async staging buffer per rank
    mtbf: float | None = None  # job MTBF, hours
    mtbf_per_gpu: float | None = None  # hours
    engine: str = "native"
    seed: int = 0
    space_check: bool = True
    dlio_config: Path | None = None

    @property
    def direct(self) -> bool:
        return self.cache == "direct"

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix."""
        if not self.model and self.dlio_config is None:
            raise UsageError("missing MODEL: give a preset name or YAML file, or "
                             "--dlio-config FILE.yaml")
        for key, choices in (("mode", MODES), ("cache", CACHE_POLICIES), ("engine", ENGINES)):
            if getattr(self, key) not in choices:
                raise UsageError(f"--{key} {getattr(self, key)}: give one of "
                                 f"{', '.join(choices)}")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise UsageError(f"--layout {self.layout}: give deepspeed or dcp")
        if self.zero is not None and self.zero not in (0, 1, 2, 3):
            raise UsageError(f"--zero {self.zero}: ZeRO stage must be 0, 1, 2 or 3")
        for key in ("tp", "pp", "dp"):
            v = getattr(self, key)
            if v is not None and not 1 <= v <= 2**20:
                raise UsageError(f"--{key} {v}: give 1 .. {2**20}")
        if self.ranks is not None and not 1 <= self.ranks <= MAX_THREADS:
            raise UsageError(f"--ranks {self.ranks}: give 1 .. {MAX_THREADS}")
        if not 1 <= self.count <= 100_000:
            raise UsageError(f"--count {self.count}: give 1 .. 100000")
        if self.keep is not None and not 1 <= self.keep <= 100_000:
            raise UsageError(f"--keep {self.keep}: give 1 .. 100000")
        if not 0 < self.scale <= 1:
            raise UsageError(f"--scale {self.scale}: give a fraction in (0, 1]")
        if not 0 <= self.rank_shift <= 2**20:
            raise UsageError(f"--rank-shift {self.rank_shift}: give 0 .. {2**20}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed {self.seed}: give 0 .. {MAX_SEED}")
        for key in ("mtbf", "mtbf_per_gpu"):
            v = getattr(self, key)
            if v is not None and not v > 0:
                raise UsageError(f"--{key.replace('_', '-')} {v}: give hours > 0")
        if not self.write and not self.read:
            raise UsageError("--no-write with --no-read leaves nothing to do; drop one of them")
        if self.mtbf is not None and self.mtbf_per_gpu is not None:
            raise UsageError("--mtbf and --mtbf-per-gpu both given; give one (job or per GPU)")
        if self.staging > MAX_RANK_BUFFER_BYTES - 16 * 2**20 or self.staging < 2 * CHUNK:
            raise UsageError(f"--staging {self.staging}: give {format_bytes(2 * CHUNK)} .. "
                             "240 MiB (memory per rank stays under 256 MiB)")
        if self.engine == "fio" and self.async_mode:
            raise UsageError("--async with --engine fio: fio has no stall/persist split; "
                             "use --engine native")
        return self

    def options_dict(self) -> dict[str, Any]:
        """What result.json records under spec.options (the run's choices)."""
        return {"count": self.count, "keep": self.keep, "write": self.write,
                "read": self.read, "rank_shift": self.rank_shift, "policy": self.cache,
                "async_mode": self.async_mode, "staging_bytes": self.staging,
                "engine": self.engine, "seed": self.seed, "space_check": self.space_check,
                "job_mtbf_h": self.mtbf, "gpu_mtbf_h": self.mtbf_per_gpu}


def build(**values: Any) -> Spec:
    """A validated Spec from plain values; sizes may be strings ("128MiB")."""
    dlio = values.pop("dlio_config", None)
    if isinstance(values.get("zero"), str):
        values["zero"] = int(values["zero"])
    s = spec_mod.from_mapping(Spec, {k: v for k, v in values.items() if v is not None},
                              "checkpoint")
    if dlio is not None:
        s = dataclasses.replace(s, dlio_config=Path(dlio))
    return s.validate()
