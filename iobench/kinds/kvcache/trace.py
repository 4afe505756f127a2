"""Mooncake-format request traces: one JSON object a line with `timestamp` (ms since the
first request), `input_length` and `output_length` (tokens) and `hash_ids` (one id per
512-token block of the input; a shared id is a shared prefix, since a block's hash covers
every token before it). Public traces: github.com/kvcache-ai/Mooncake, FAST25-release/traces.

`python -m iobench.kinds.kvcache.trace OUT.jsonl` writes a synthetic trace in that format
(shared system prompts and multi-turn conversations that extend earlier requests); the
one shipped under workloads/inference/kvcache/traces/ was made that way.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iobench.errors import UsageError

BLOCK_TOKENS = 512  # Mooncake's hash block
FORMAT = ("each line must be a JSON object with timestamp, input_length, output_length and "
          "hash_ids (the Mooncake trace format)")


@dataclass(frozen=True)
class Request:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]

    def chunk_keys(self, chunk_tokens: int) -> list[tuple[int, int]]:
        """Keys of the full chunks of the input, in order: chunk j is named by the hash id of
        the block holding its last token (that id covers the whole prefix) and j."""
        n = min(self.input_length, len(self.hash_ids) * BLOCK_TOKENS) // chunk_tokens
        return [(self.hash_ids[((j + 1) * chunk_tokens - 1) // BLOCK_TOKENS], j)
                for j in range(n)]


def _bad(path: Path, n: int, what: str) -> UsageError:
    return UsageError(f"--trace {path}: line {n}: {what}; {FORMAT}")


def _int(path: Path, n: int, d: dict, key: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _bad(path, n, f"{key} {v!r} is not an integer >= 0")
    return v


def load(path: Path) -> list[Request]:
    """Parse a trace; a malformed line is one error naming its line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--trace {path}: no such file; give a Mooncake-format JSONL "
                         "trace") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--trace {path}: cannot read it ({e})") from None
    out: list[Request] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise _bad(path, n, f"not valid JSON ({e.msg})") from None
        if not isinstance(d, dict):
            raise _bad(path, n, "not a JSON object")
        ts = d.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0:
            raise _bad(path, n, f"timestamp {ts!r} is not a number >= 0")
        hashes = d.get("hash_ids")
        if not isinstance(hashes, list) or not all(
                isinstance(h, int) and not isinstance(h, bool) for h in hashes):
            raise _bad(path, n, "hash_ids is not a list of integers")
        out.append(Request(float(ts), _int(path, n, d, "input_length"),
                           _int(path, n, d, "output_length"), tuple(hashes)))
    if not out:
        raise UsageError(f"--trace {path}: has no requests; {FORMAT}")
    if any(b.timestamp_ms < a.timestamp_ms for a, b in zip(out, out[1:], strict=False)):
        out.sort(key=lambda r: r.timestamp_ms)  # replayed in arrival order
    return out


def synthetic(requests: int = 200, seed: int = 0, prompts: int = 4,
              mean_gap_ms: float = 50.0) -> list[dict]:
    """A trace with Mooncake's shape: every request starts with one of `prompts` shared
    system prompts (1-4 blocks); 60% continue an earlier conversation (its ids, then new
    ones), the others start a new one; new ids are the next unused integers."""
    rng = np.random.default_rng(seed)
    next_id = 0

    def fresh(k: int) -> list[int]:
        nonlocal next_id
        ids = list(range(next_id, next_id + k))
        next_id += k
        return ids

    systems = [fresh(int(rng.integers(1, 5))) for _ in range(prompts)]
    convs: list[list[int]] = []
    out: list[dict] = []
    t = 0.0
    for _ in range(requests):
        if convs and rng.random() < 0.6:
            i = int(rng.integers(0, len(convs)))
            ids = convs[i] + fresh(int(rng.integers(1, 4)))
            convs[i] = ids
        else:
            ids = systems[int(rng.integers(0, prompts))] + fresh(int(rng.integers(1, 9)))
            convs.append(ids)
        tail = int(rng.integers(1, BLOCK_TOKENS + 1))  # the last block is partial
        out.append({"timestamp": int(t), "input_length": (len(ids) - 1) * BLOCK_TOKENS + tail,
                    "output_length": int(rng.integers(16, 513)), "hash_ids": ids})
        t += float(rng.exponential(mean_gap_ms))
    return out


def write(rows: Sequence[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="write a synthetic Mooncake-format trace")
    ap.add_argument("out", type=Path)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    write(synthetic(a.requests, a.seed), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
