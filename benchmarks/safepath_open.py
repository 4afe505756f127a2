"""Cost of opening files through iobench.safepath (openat2 RESOLVE_BENEATH, or the
O_NOFOLLOW walk) against a plain os.open, creating small files in a tmp target.

Alternating rounds, medians and min-max of microseconds per file create+close.
Usage: python benchmarks/safepath_open.py [--files 2000] [--rounds 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from iobench import safepath

FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def one(kind: str, d: Path, n: int) -> float:
    sub = d / "a" / "b"
    t = time.perf_counter()
    for i in range(n):
        p = sub / f"{kind}{i}"
        if kind == "plain":
            fd = os.open(p, FLAGS, 0o644)
        else:
            safepath._openat2_ok = None if kind == "openat2" else False
            fd = safepath.open_write(p, FLAGS)
        os.close(fd)
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default="/tmp")
    a = ap.parse_args()
    have = safepath.openat2_available()
    d = Path(tempfile.mkdtemp(dir=a.dir, prefix="iobench-safepath-"))
    try:
        safepath.register_root(d)
        (d / "a" / "b").mkdir(parents=True)
        out: dict[str, list[float]] = {"plain": [], "openat2": [], "walk": []}
        for r in range(a.rounds):
            order = list(out) if r % 2 == 0 else list(reversed(out))
            for kind in order:
                out[kind].append(one(kind, d, a.files))
                for p in (d / "a" / "b").iterdir():
                    p.unlink()
        print(f"openat2 available: {have}")
        for kind, v in out.items():
            print(f"{kind:8s} median {statistics.median(v):7.1f} us/file  "
                  f"(min {min(v):.1f}, max {max(v):.1f}, {a.rounds} rounds x {a.files})")
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
