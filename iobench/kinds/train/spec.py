"""What `iobench train WORKLOAD` measures: the replay of a training workload's reads with
emulated accelerators, and how it is run (accelerators, cache policy, runs, checkpoints).

The workload itself (record sizes, batch, compute per step on each accelerator) is the
workload's YAML (iobench.workload); a DLIO / MLPerf Storage config is
resolved into the same Spec by `resolve_dlio` before the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import spec as spec_mod
from iobench.errors import UsageError
from iobench.limits import MAX_COUNT, MAX_SEED
from iobench.workload import TrainingSpec, load_workload

CACHE_POLICIES = ("drop", "drop-global", "direct", "allow")
ENGINES = ("native", "fio")
CHECKPOINT_MODES = ("blocking", "async")


@dataclass(frozen=True)
class Spec:
    """One training replay. None means "the workload's own value" (epochs, read threads,
    seed) or "not asked for" (runs, checkpoints)."""

    workload: str = ""  # preset name or YAML path; "" with a DLIO config
    accelerator: str = "h100"
    accelerators: int | None = None  # default 1; with find_max where the search starts
    epochs: int | None = None
    engine: str = "native"  # native | fio (fio adds a raw read of the same files)
    cache: str = "drop"
    read_threads: int | None = None  # per accelerator
    prefetch: int = 2  # batches per accelerator read ahead
    decode: bool = False
    runs: int | None = None  # None: one run, no warm-up; R: warm-up + R measured runs
    seed: int | None = None
    find_max: bool = False
    probe_steps: int = 50
    compute_time: float | None = spec_mod.duration_field(None)  # overrides the workload's
    block_size: int = spec_mod.size_field(4 << 20)
    max_steps: int = 0
    checkpoint_every: int | None = None
    checkpoint_size: int | None = spec_mod.size_field(None)
    checkpoint_mode: str = "blocking"
    read_rate_limit: int | None = spec_mod.size_field(None)  # bytes/s, all readers
    data_folder: Path | None = None  # with a DLIO config: its data folder
    # resolved workload: the DLIO config's, or loaded from `workload` by build()
    training: TrainingSpec | None = None
    # a DLIO config's import (iobench.dlio.Import) and what it decided
    dlio: Any = None
    dlio_checkpoint_epochs: int = 0  # checkpoint every N epochs (set in steps at run)
    dlio_compute: bool = False  # compute time from train.computation_time
    dlio_checkpoint_sizing: bool = False  # checkpoint size from DLIO's sizing rule

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix."""
        def choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
            if value not in allowed:
                raise UsageError(f"--{name} {value!r}: choose one of {', '.join(allowed)}")

        choice("cache", self.cache, CACHE_POLICIES)
        choice("engine", self.engine, ENGINES)
        choice("checkpoint-mode", self.checkpoint_mode, CHECKPOINT_MODES)
        if self.training is None:
            raise UsageError("missing WORKLOAD: give a preset name or YAML file, or "
                             "--dlio-config FILE.yaml")
        for name, v in (("accelerators", self.accelerators), ("epochs", self.epochs),
                        ("read-threads", self.read_threads), ("prefetch", self.prefetch),
                        ("runs", self.runs), ("probe-steps", self.probe_steps),
                        ("checkpoint-every", self.checkpoint_every)):
            if v is not None and v <= 0:
                raise UsageError(f"--{name}: {v} must be >= 1")
            if v is not None and v > MAX_COUNT:
                raise UsageError(f"--{name}: {v} is beyond the most iobench runs "
                                 f"({MAX_COUNT})")
        if not 0 <= self.max_steps <= MAX_COUNT:
            raise UsageError(f"--max-steps: {self.max_steps} must be >= 0 (0 = whole "
                             "epochs)")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed {self.seed}: give 0 to {MAX_SEED}")
        if self.block_size <= 0:
            raise UsageError(f"--block-size {self.block_size}: must be at least 1 byte")
        if self.compute_time is not None and self.compute_time < 0:
            raise UsageError(f"--compute-time {self.compute_time}: give 0 (data path "
                             "alone) or more seconds")
        if (self.checkpoint_every is None) != (self.checkpoint_size is None):
            given = ("--checkpoint-every" if self.checkpoint_every is not None
                     else "--checkpoint-size")
            raise UsageError(f"{given} needs the other: give both --checkpoint-every STEPS "
                             "and --checkpoint-size SIZE")
        if self.find_max and self.runs is not None:
            raise UsageError("--find-max and --runs: find the count first, then rerun with "
                             "--accelerators N --runs R")
        if self.find_max and self.checkpoint_every is not None:
            raise UsageError("--find-max and --checkpoint-every: find the count first, then "
                             "rerun with --accelerators N and the checkpoint options")
        if self.cache == "direct" and self.block_size % 4096:
            raise UsageError(f"--block-size {self.block_size}: --cache direct (O_DIRECT) "
                             "needs a multiple of 4096 bytes, e.g. 4MiB")
        if self.data_folder is not None and self.dlio is None:
            raise UsageError(f"--data-folder {self.data_folder}: only with --dlio-config "
                             "(the config says the format and file count DLIO wrote)")
        if self.data_folder is not None and not self.data_folder.is_dir():
            raise UsageError(f"--data-folder {self.data_folder}: not a directory; give the "
                             "DLIO data folder (the one holding train/)")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The replay options as result.json records them (spec.options)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("training", "dlio")}
        d["data_folder"] = str(self.data_folder) if self.data_folder is not None else None
        return d


_DLIO_PICKS = ("compute_time", "max_steps", "prefetch", "cache", "block_size",
               "checkpoint_size", "checkpoint_every")


def resolve_dlio(values: dict[str, Any], config: Path, given: Callable[[str], bool],
                 ) -> dict[str, Any]:
    """A DLIO / MLPerf Storage config's workload and options merged into `values` (plain
    Spec values): an option the caller `given` wins over the config's value, which wins
    over the default. Prints the import's warning (rank 0) as the command always did."""
    from iobench import dlio

    out = dict(values)
    imp = dlio.load(config, "train", out.get("workload") or None,
                    find_max=bool(out.get("find_max")))
    for option in _DLIO_PICKS:
        if option in imp.options and not given(option):
            out[option] = imp.options[option]
    if out.get("checkpoint_every") is None and out.get("checkpoint_size") is not None:
        out["dlio_checkpoint_epochs"] = imp.checkpoint_every_epochs  # steps at run time
        out["checkpoint_every"] = 1 if imp.checkpoint_every_epochs else None
    imp.announce()
    out["dlio"] = imp
    out["training"] = imp.spec
    out["dlio_compute"] = "compute_time" in imp.options and not given("compute_time")
    out["dlio_checkpoint_sizing"] = (imp.checkpoint_sizing is not None
                                     and not given("checkpoint_size"))
    return out


def build(**values: Any) -> Spec:
    """A validated Spec from plain values; sizes and durations may be strings ("4MiB",
    "30ms"). `workload` is a preset name or a YAML path; `dlio_config` a DLIO config
    (then the values given here win over the config's)."""
    config = values.pop("dlio_config", None)
    if config is not None:
        values = resolve_dlio(values, Path(config),
                              lambda k: values.get(k) is not None)
    special = {k: values.pop(k) for k in ("training", "dlio") if k in values}
    folder = values.pop("data_folder", None)
    s = spec_mod.from_mapping(Spec, {k: v for k, v in values.items() if v is not None},
                              "train")
    training = special.get("training")
    if training is None and s.workload:
        training = load_workload(s.workload)
    s = dataclasses.replace(s, training=training, dlio=special.get("dlio"),
                            data_folder=Path(folder) if folder is not None else None)
    return s.validate()
