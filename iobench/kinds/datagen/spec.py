"""What `iobench datagen` does: which training workload's data set, how large, with what
content, and whether to write it or verify it.

The training workload itself (record sizes, format, samples per file) is a
TrainingSpec (iobench.workload); this Spec names it and says how to size and write
its data set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import spec as spec_mod
from iobench.content import CONTENTS
from iobench.errors import UsageError
from iobench.limits import MAX_COUNT, MAX_SEED, MAX_THREADS

LAYOUTS = ("iobench", "dlio")
MAX_ACCELERATORS = 2**20


@dataclass(frozen=True)
class Spec:
    """One data set to write (or verify) under TARGET/datagen/WORKLOAD/."""

    workload: str | None = None  # a preset name or a YAML path
    dlio_config: Path | None = None  # a DLIO / MLPerf Storage YAML (names the workload)
    # sizing: at most one of files, dataset_size, auto_size (default: the workload's files)
    files: int | None = None
    dataset_size: int | None = spec_mod.size_field(None)  # sample bytes wanted
    auto_size: bool = False  # MLPerf: >= 5 x host RAM and >= 500 steps per epoch
    accelerators: int = 1  # for --auto-size's steps-per-epoch rule
    accelerator: str = "h100"  # a type from workloads/accelerators.yaml
    host_ram: int | None = spec_mod.size_field(None)  # default: this host's RAM
    jobs: int | None = None  # worker processes (default: CPU cores)
    content: str = "random"  # random | bf16 | zeros
    seed: int | None = None  # overrides the workload's seed
    layout: str | None = None  # iobench | dlio (default: dlio under dlio_config)
    verify: bool = False  # check every file against the manifest; write nothing

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix."""
        if self.workload is None and self.dlio_config is None:
            raise UsageError("missing WORKLOAD: give a preset name or YAML file, or "
                             "--dlio-config FILE.yaml")
        given = [n for n, v in (("--files", self.files), ("--dataset-size", self.dataset_size),
                                ("--auto-size", self.auto_size or None)) if v is not None]
        if len(given) > 1:
            raise UsageError(f"{' and '.join(given)}: give only one way to size the data set")
        if self.files is not None and not 1 <= self.files <= MAX_COUNT:
            raise UsageError(f"--files: {self.files} must be >= 1" if self.files <= 0 else
                             f"--files: {self.files} is more than {MAX_COUNT}; give fewer")
        if self.dataset_size is not None and self.dataset_size <= 0:
            raise UsageError(f"--dataset-size {self.dataset_size}: give at least 1 byte")
        if self.host_ram is not None and self.host_ram <= 0:
            raise UsageError(f"--host-ram {self.host_ram}: give at least 1 byte")
        if self.jobs is not None and not 1 <= self.jobs <= MAX_THREADS:
            raise UsageError(f"--jobs: {self.jobs} must be >= 1" if self.jobs <= 0 else
                             f"--jobs {self.jobs}: give 1 to {MAX_THREADS}")
        if not 1 <= self.accelerators <= MAX_ACCELERATORS:
            raise UsageError(f"--accelerators: {self.accelerators} must be >= 1"
                             if self.accelerators <= 0 else
                             f"--accelerators {self.accelerators}: give 1 to "
                             f"{MAX_ACCELERATORS}")
        if self.content not in CONTENTS:
            raise UsageError(f"--content {self.content!r}: choose one of {', '.join(CONTENTS)}")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise UsageError(f"--layout {self.layout!r}: choose one of {', '.join(LAYOUTS)}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed {self.seed}: give 0 to {MAX_SEED}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dlio_config"] = str(self.dlio_config) if self.dlio_config is not None else None
        return d


def build(**values: Any) -> Spec:
    """A validated Spec from plain values; sizes may be strings ("50GiB")."""
    config = values.pop("dlio_config", None)
    s = spec_mod.from_mapping(Spec, {k: v for k, v in values.items() if v is not None},
                              "datagen")
    if config is not None:
        s = dataclasses.replace(s, dlio_config=Path(config))
    return s.validate()
