"""Context profiles (workloads/inference/kvcache/*.yaml): how long a session's context is,
how many turns it has, how many tokens each later turn adds and how many it outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iobench import presets, spec
from iobench.errors import SpecError

KIND = "inference/kvcache"


@dataclass(frozen=True)
class Profile:
    name: str
    context_tokens: list[int]  # [min, max]: the first turn's prompt, drawn uniformly
    description: str = ""
    turns: list[int] = field(default_factory=lambda: [2, 4])  # [min, max] per session
    turn_tokens: list[int] = field(default_factory=lambda: [64, 512])  # user tokens per turn
    output_tokens: list[int] = field(default_factory=lambda: [64, 512])  # per turn

    def check(self, path: str) -> None:
        for key in ("context_tokens", "turns", "turn_tokens", "output_tokens"):
            v = getattr(self, key)
            if len(v) != 2 or v[0] < 0 or v[1] < v[0]:
                raise SpecError(f"{path}.{key}: {v} must be [min, max] with 0 <= min <= max")
        if self.turns[0] < 1:
            raise SpecError(f"{path}.turns: {self.turns} needs at least 1 turn")

    def draw(self, rng: np.random.Generator, key: str) -> int:
        lo, hi = getattr(self, key)
        return int(rng.integers(lo, hi + 1))


def load(name_or_path: str) -> Profile:
    path = presets.find(KIND, name_or_path)
    p = spec.load(Profile, path)
    p.check(path.stem)
    return p


def names() -> list[str]:
    return presets.names(KIND)
