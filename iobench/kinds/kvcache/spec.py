"""What `iobench infer kvcache MODEL` measures: the KV-cache offload of one model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench import spec as spec_mod
from iobench.errors import UsageError
from iobench.limits import MAX_SEED, MAX_THREADS

LAYOUTS = ("file-per-chunk", "slab")
KV_DTYPES = ("bf16", "fp16", "fp8")
FSYNC = ("chunk", "turn", "none")
ENGINES = ("native", "fio")


@dataclass(frozen=True)
class Spec:
    """Sessions (or a Mooncake trace) restoring stored KV prefixes and writing new chunks
    through a RAM tier and a storage tier, then the TTFT search (and, with engine fio, the
    chunk pattern through fio)."""

    model: str  # a preset in workloads/models/ or a YAML path
    layout: str = "file-per-chunk"  # file-per-chunk | slab
    chunk_tokens: int = 256
    kv_dtype: str = "bf16"
    tp: int = 1
    users: int = 4
    profile: str = "chatbot"
    trace: Path | None = None
    trace_speed: float = 0.0
    duration: float | None = spec_mod.duration_field(None)  # None: 30 s, or the whole trace
    requests: int = 0
    queue_depth: int = 8
    cpu_cache: int = spec_mod.size_field(0)
    capacity: int = spec_mod.size_field(4 << 30)
    promote: bool = True
    admit_after: int = 1
    fsync: str = "turn"
    decode_time: float = spec_mod.duration_field(0.0)
    ttft: float = spec_mod.duration_field(0.2)
    prefill_rate: float = 10000.0
    search: bool = True
    search_requests: int = 8
    search_users: int = 1
    max_context: int = 131072
    drive_size: int | None = spec_mod.size_field(None)
    engine: str = "native"
    fio_runtime: float = spec_mod.duration_field(5.0)
    fio_first: bool = False  # the fio comparison's order (benchmarks alternate it)
    verify: bool = False
    seed: int = 0

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix (the model,
        profile, trace and capacity are checked by run.check_input, RAM and free space by
        run.check_target)."""
        for name, allowed in (("layout", LAYOUTS), ("kv_dtype", KV_DTYPES), ("fsync", FSYNC),
                              ("engine", ENGINES)):
            v = getattr(self, name)
            if v not in allowed:
                raise UsageError(f"--{name.replace('_', '-')} {v!r}: choose one of "
                                 f"{', '.join(allowed)}")
        if not 1 <= self.users <= MAX_THREADS:  # one thread per user: 100000 took > 2 GiB
            raise UsageError(f"--users {self.users}: must be 1 to {MAX_THREADS} (concurrent "
                             "sessions, one thread each)")
        if not 1 <= self.queue_depth <= MAX_THREADS:
            raise UsageError(f"--queue-depth {self.queue_depth}: must be 1 to {MAX_THREADS}")
        if self.admit_after < 1:
            raise UsageError(f"--admit-after {self.admit_after}: must be >= 1 (1 admits every "
                             "chunk to storage; 2 as Dynamo)")
        if self.ttft <= 0:
            raise UsageError("--ttft must be > 0, e.g. 200ms")
        if not 1 <= self.search_users <= MAX_THREADS:
            raise UsageError(f"--search-users {self.search_users}: must be 1 to {MAX_THREADS}")
        if self.search_requests < 1:
            raise UsageError(f"--search-requests {self.search_requests}: must be >= 1")
        if self.max_context < 1:
            raise UsageError(f"--max-context {self.max_context}: must be >= 1 token")
        if self.prefill_rate <= 0:
            raise UsageError(f"--prefill-rate {self.prefill_rate:g}: must be > 0 tokens/s")
        if self.trace_speed < 0:
            raise UsageError(f"--trace-speed {self.trace_speed:g}: must be >= 0 (0: as fast "
                             "as possible, 1: the trace's timestamps)")
        if self.requests < 0:
            raise UsageError(f"--requests {self.requests}: must be >= 0 (0: no cap)")
        if self.chunk_tokens < 1:
            raise UsageError(f"--chunk-tokens {self.chunk_tokens}: must be >= 1 (256 as "
                             "LMCache, 16 as vLLM blocks, 512 as Mooncake)")
        if self.tp < 1:
            raise UsageError(f"--tp {self.tp}: must be >= 1")
        if self.capacity <= 0:
            raise UsageError("--capacity must be at least one chunk, e.g. 4GiB")
        if self.cpu_cache < 0:
            raise UsageError("--cpu-cache must be >= 0 (0: no RAM tier)")
        if self.duration is not None and self.duration < 0:
            raise UsageError(f"--duration {self.duration:g}: must be >= 0 seconds")
        if self.decode_time < 0:
            raise UsageError("--decode-time must be >= 0")
        if self.fio_runtime <= 0:
            raise UsageError("--fio-runtime must be > 0, e.g. 5s")
        if self.drive_size is not None and self.drive_size <= 0:
            raise UsageError("--drive-size must be > 0, e.g. 3.84TB")
        if not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed {self.seed}: give 0 to {MAX_SEED}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trace"] = str(self.trace) if self.trace is not None else None
        return d


def build(**values: Any) -> Spec:
    """A validated Spec from plain values; sizes and durations may be strings ("4GiB",
    "200ms")."""
    trace = values.pop("trace", None)
    s = spec_mod.from_mapping(Spec, {k: v for k, v in values.items() if v is not None},
                              "infer kvcache")
    if trace is not None:
        s = dataclasses.replace(s, trace=Path(trace))
    return s.validate()
