"""What `iobench infer load MODEL` measures: loading a model's weight files with each
method, precision and cache state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iobench import spec as spec_mod
from iobench.errors import UsageError, did_you_mean
from iobench.kinds.infer_load.layouts import FORMATS, PRECISIONS, check_precision
from iobench.kinds.infer_load.load import METHODS, check_methods
from iobench.units import parse_list

DEFAULT_PRECISIONS = {"safetensors": ("bf16", "fp8", "int4"), "gguf": ("bf16", "int8", "int4")}
DEFAULT_METHODS = {"safetensors": ("read", "pread", "direct", "mmap", "safetensors"),
                   "gguf": ("read", "pread", "direct", "mmap", "gguf")}
STATES = ("cold", "warm")
MAX_WORKERS = 1024  # --threads, --replicas


@dataclass(frozen=True)
class Spec:
    """Load MODEL's weights (a workloads/inference/ preset or a YAML path)."""

    model: str
    format: str = "safetensors"
    precisions: tuple[str, ...] = ()  # () = the format's default
    methods: tuple[str, ...] = ()  # () = every method of the format
    threads: int = 8  # pread/direct reader threads
    chunk: int = spec_mod.size_field(16 << 20)  # bytes per read (pread/direct, --discard)
    replicas: int = 1  # also R processes cold-loading at once
    states: tuple[str, ...] = STATES  # cold (page cache dropped), warm (files cached)
    discard: bool = False  # bounded per-thread buffers instead of the model in memory

    def validate(self) -> Spec:
        """Refuse what cannot run, in one line naming the value and the fix."""
        if self.format not in FORMATS:
            raise UsageError(f"--format {self.format!r}: choose one of {', '.join(FORMATS)}")
        for pr in self.precisions:
            check_precision(pr, self.format)
        check_methods(self.methods, self.format)
        for st in self.states:
            if st not in STATES:
                raise UsageError(f"state {st!r}: choose cold or warm")
        if not self.states:
            raise UsageError("states: give cold, warm or both")
        for name in ("threads", "replicas"):
            v = getattr(self, name)
            if not 1 <= v <= MAX_WORKERS:
                raise UsageError(f"--{name} {v}: give 1 to {MAX_WORKERS}")
        if self.chunk <= 0:
            raise UsageError(f"--chunk {self.chunk}: give at least 1 byte, e.g. 16MiB")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The spec as result.json records it (the keys results have always had)."""
        return {"format": self.format, "precisions": list(self.precisions),
                "methods": list(self.methods), "threads": self.threads, "chunk": self.chunk,
                "replicas": self.replicas, "states": list(self.states),
                "discard": self.discard}


def _words(value: str | Sequence[str], what: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    def one(item: str, w: str) -> str:
        if item not in choices:
            raise UsageError(f"{w} {item!r}: unknown value{did_you_mean(item, choices)}")
        return item

    items = parse_list(value, one, what) if isinstance(value, str) else [
        one(str(v), what) for v in value]
    return tuple(dict.fromkeys(items))


def build(**values: Any) -> Spec:
    """A validated Spec from plain values: precisions and methods as comma strings
    ("bf16,int4") or sequences, chunk as "16MiB", cold True/False/None (both states)."""
    v = {k: x for k, x in values.items() if x is not None}
    fmt = str(v.get("format", "safetensors"))
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    v["precisions"] = _words(v.get("precisions") or DEFAULT_PRECISIONS[fmt], "--precision",
                             PRECISIONS)
    v["methods"] = _words(v.get("methods") or DEFAULT_METHODS[fmt], "--method", METHODS)
    if "cold" in v:
        v["states"] = ("cold",) if v.pop("cold") else ("warm",)
    for key in ("precisions", "methods", "states"):
        if key in v:
            v[key] = list(v[key])
    return spec_mod.from_mapping(Spec, v, "infer load").validate()
