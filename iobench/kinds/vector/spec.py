"""What `iobench infer vector` measures: a real DiskANN index (mode 1, engine diskann) or
its read pattern on a plain index file (mode 2, engine native or fio).

Checks here are pure (no file is looked at). Mode 2's `--hops`/`--beam-width`/`--sector`
may come from a mode-1 result (`--calibrate`) and the free space is checked before
anything else, so those are resolved and checked by run.py (`pattern_options`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import spec as spec_mod
from iobench.errors import UsageError

K = 10  # recall@10: neighbours asked for and compared with the ground truth
DISTANCES = ("l2", "mips", "cosine")
SECTOR = 4096  # DiskANN's disk sector (graph nodes are packed into 4 KiB sectors)
ENGINES = ("native", "fio", "diskann")
STATES = ("cold", "warm")
DIAG_BEAMS = (2, 4, 8)  # mode 1's default beam-width sweep
RECALL_TARGET = 0.95
MAX_SEARCH_PROCS = 64  # --search-procs: searcher processes per host, each with the index


@dataclass(frozen=True)
class Spec:
    """One `infer vector` run. Fields marked [diskann] or [pattern] apply to that mode."""

    engine: str = "native"  # diskann | native | fio
    # [diskann]
    dim: int = 768
    vectors: int = 100000
    queries: int = 1000
    metric: str = "l2"  # distance: l2 | mips | cosine
    clusters: int = 0  # mixture components; 0 = automatic
    graph_degree: int = 32
    build_complexity: int = 64
    pq_bytes: int = 0  # 0 = dim / 8
    complexity: tuple[int, ...] = (16, 32, 64, 128)
    beam_width: tuple[int, ...] | None = None  # diskann: (2, 4, 8); pattern: one, 4
    states: str = "cold,warm"
    latency_budget: float = spec_mod.duration_field(0.010)  # s
    cache_nodes: int = 0
    # [diskann] 0 = one query at a time; N = also diskannpy batch_search on N threads
    search_procs: tuple[int, ...] = ()
    # [pattern]
    index_size: int = spec_mod.size_field(1 << 30)
    sector: int | None = spec_mod.size_field(None)  # bytes per read; None = 4 KiB
    hops: int | None = None  # rounds per query; None = 16 (or calibrated)
    concurrency: tuple[int, ...] = (1, 4, 16)
    runtime: float = spec_mod.duration_field(5.0)  # s per concurrency
    calibrate: Path | None = None  # a mode-1 result

    @property
    def is_diskann(self) -> bool:
        return self.engine == "diskann"

    def state_list(self) -> list[str]:
        out = [s.strip() for s in self.states.split(",") if s.strip()]
        bad = [s for s in out if s not in STATES]
        if bad or not out:
            raise UsageError(f"--states {self.states!r}: give cold, warm or cold,warm")
        return list(dict.fromkeys(out))

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix."""
        if self.engine not in ENGINES:
            raise UsageError(f"--engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if not self.is_diskann:
            if not self.concurrency or min(self.concurrency) < 1:
                raise UsageError("--concurrency: give queries in flight >= 1, e.g. 1,4,16")
            return self
        if self.dim <= 0:
            raise UsageError(f"--dim {self.dim}: must be >= 1 (embeddings are 768, 1024 or "
                             "1536)")
        if self.vectors <= 0:
            raise UsageError(f"--vectors {self.vectors}: must be >= 1, e.g. 100000")
        if self.queries <= 0:
            raise UsageError(f"--queries {self.queries}: must be >= 1, e.g. 1000")
        if self.vectors < 2 * K:
            raise UsageError(f"--vectors {self.vectors}: recall@{K} needs at least {2 * K} "
                             "vectors")
        if self.metric not in DISTANCES:
            from iobench.errors import did_you_mean

            raise UsageError(f"--metric {self.metric!r}: unknown distance metric"
                             f"{did_you_mean(self.metric, DISTANCES)}")
        if not self.complexity:
            raise UsageError("--complexity: give search list sizes, e.g. 16,32,64")
        low = min(self.complexity)
        if low < K:
            raise UsageError(f"--complexity {low}: the search list must hold the {K} "
                             f"neighbours asked for; give {K} or more")
        beams = self.beams()
        if min(beams) < 1:
            raise UsageError(f"--beam-width {min(beams)}: give 1 or more")
        if max(beams) > low:
            raise UsageError(f"--beam-width {max(beams)} is larger than --complexity {low}: "
                             "a beam cannot be wider than the search list; give beam widths "
                             f"<= {low} or larger complexities")
        if self.graph_degree < 4 or self.build_complexity < self.graph_degree:
            raise UsageError(f"--graph-degree {self.graph_degree} / --build-complexity "
                             f"{self.build_complexity}: need degree >= 4 and build "
                             "complexity >= degree, e.g. 32 / 64")
        self.state_list()
        if self.clusters < 0:
            raise UsageError(f"--clusters {self.clusters}: give 1 or more, or 0 for "
                             "automatic")
        if self.resolved_pq_bytes() > self.dim:
            raise UsageError(f"--pq-bytes {self.pq_bytes}: at most --dim ({self.dim}) bytes "
                             "per vector")
        if self.latency_budget <= 0:
            raise UsageError("--latency-budget must be > 0, e.g. 10ms")
        if self.cache_nodes < 0:
            raise UsageError(f"--cache-nodes {self.cache_nodes}: give 0 or more")
        if self.search_procs and min(self.search_procs) < 1:
            raise UsageError("--search-procs: give processes >= 1, e.g. 1,2,4")
        if self.search_procs and max(self.search_procs) > MAX_SEARCH_PROCS:
            raise UsageError(f"--search-procs {max(self.search_procs)}: at most "
                             f"{MAX_SEARCH_PROCS} searcher processes per host (each loads "
                             "the index); for more, add hosts with mpirun")
        return self

    def beams(self) -> tuple[int, ...]:
        return tuple(self.beam_width) if self.beam_width else DIAG_BEAMS

    def resolved_pq_bytes(self) -> int:
        d = self.dim
        return self.pq_bytes or max(1, min(d, d // 8 if d >= 64 else d))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["calibrate"] = str(self.calibrate) if self.calibrate is not None else None
        return d


def _ints(value: Any) -> Any:
    """'16,32' or 16 or [16, 32] -> a tuple of ints (other values pass to the checker)."""
    if isinstance(value, str):
        try:
            return tuple(int(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise UsageError(f"{value!r}: give a comma list of whole numbers, e.g. "
                             "16,32") from None
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def build(**values: Any) -> Spec:
    """A checked Spec from plain values: sizes and durations may be strings ("1GiB",
    "10ms"), lists comma strings ("16,32,64") or sequences."""
    vals = {k: v for k, v in values.items() if v is not None}
    if "search_threads" in vals:
        raise UsageError(f"--search-threads {vals['search_threads']}: replaced by "
                         "--search-procs (diskannpy's search holds the GIL, so threads took "
                         "turns); e.g. --search-procs 1,2,4")
    for key in ("complexity", "beam_width", "concurrency", "search_procs"):
        if key in vals:
            vals[key] = _ints(vals[key])
    cal = vals.pop("calibrate", None)
    s = spec_mod.from_mapping(Spec, vals, "infer vector")
    if cal is not None:
        s = dataclasses.replace(s, calibrate=Path(cal))
    return s.validate()
