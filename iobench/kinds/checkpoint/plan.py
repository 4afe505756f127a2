"""The plan of a checkpoint run: which ranks write which files, and its summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iobench.errors import UsageError
from iobench.kinds.checkpoint import layout
from iobench.kinds.checkpoint import model as model_mod
from iobench.kinds.checkpoint.layout import FileEntry
from iobench.kinds.checkpoint.model import ModelSpec

SUBSET_RANKS = 8  # MLPerf's subset mode: the GPUs of one host


@dataclass(frozen=True)
class Plan:
    spec: ModelSpec
    mode: str
    ranks: tuple[int, ...]  # world ranks simulated; process i is ranks[i]
    files: dict[int, tuple[FileEntry, ...]]  # world rank -> its files (scaled)
    scale: float
    layout: str

    @property
    def bytes_per_rank(self) -> dict[int, int]:
        return {r: sum(f.bytes for f in fs) for r, fs in self.files.items()}

    @property
    def checkpoint_bytes(self) -> int:
        return sum(self.bytes_per_rank.values())

    @property
    def nfiles(self) -> int:
        return sum(len(fs) for fs in self.files.values())


def make_plan(spec: ModelSpec, mode: str, ranks: int | None, scale: float) -> Plan:
    world = spec.parallelism.world
    if mode == "full":
        if ranks is not None and ranks != world:
            p = spec.parallelism
            raise UsageError(
                f"--ranks {ranks}: full mode runs every rank of {spec.name}'s "
                f"TP {p.tp} x PP {p.pp} x DP {p.dp} = {world}; use --mode subset --ranks "
                f"{ranks} to write the first {ranks} ranks' share, or change --tp/--pp/--dp")
        chosen = tuple(range(world))
    else:
        n = ranks if ranks is not None else min(SUBSET_RANKS, world)
        if n > world:
            raise UsageError(f"--ranks {n}: {spec.name} has only {world} ranks; "
                             f"use --ranks <= {world}")
        chosen = tuple(range(n))
    shares = model_mod.shares(spec)
    files = {r: tuple(layout.rank_files(shares[r], spec, spec.layout, scale)) for r in chosen}
    return Plan(spec, mode, chosen, files, scale, spec.layout)


def plan_dict(plan: Plan, count: int, keep: int | None) -> dict[str, Any]:
    s = plan.spec
    total = model_mod.total_bytes(s)
    bpr = plan.bytes_per_rank
    on_disk = plan.checkpoint_bytes * min(count, (keep + 1) if keep else count)
    out: dict[str, Any] = {
        "model": s.name, "params": model_mod.params(s),
        "model_bytes": total, "model_gb": total / 1e9, "model_gib": total / 2**30,
        "tp": s.parallelism.tp, "pp": s.parallelism.pp, "dp": s.parallelism.dp,
        "zero": s.parallelism.zero, "world": s.parallelism.world, "mode": plan.mode,
        "ranks": len(plan.ranks), "layout": plan.layout, "scale": plan.scale,
        "files_per_checkpoint": plan.nfiles,
        "rank_bytes_min": min(bpr.values()) if bpr else 0,
        "rank_bytes_max": max(bpr.values()) if bpr else 0,
        "checkpoint_bytes": plan.checkpoint_bytes,
        "checkpoint_gb": plan.checkpoint_bytes / 1e9,
        "checkpoint_gib": plan.checkpoint_bytes / 2**30,
        "count": count, "keep": keep, "peak_disk_bytes": on_disk,
    }
    if s.mlperf_total:
        out["mlperf_total_gib"] = s.mlperf_total / 2**30
        out["vs_mlperf"] = total / s.mlperf_total
    return out
