"""`infer kvcache` chunk restores against fio on the same chunk files, same block size
(one chunk) and same iodepth (--queue-depth), O_DIRECT both.

    .venv/bin/python benchmarks/kvcache.py --target /mnt/nvme/ib-bench [--rounds 3]

Each round is one `iobench infer kvcache --engine fio` run: a short replay (a small
profile: 256-512 token contexts, so it writes little), then random whole-chunk reads of
one set of chunk files (or slab slots) for --runtime seconds natively and then with fio
(libaio), the order alternating between rounds. Goals (issue 15): native / fio GB/s >= 0.9
and native chunk p99 <= 1.1 x fio's, on medians over the rounds (min-max shown).
Writes at most --capacity (256 MiB) per configuration under the target, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGS = [  # (model, chunk tokens, queue depth): 32 MiB chunks (LMCache), 2 MiB (vLLM-ish)
    ("llama3-8b", 256, 4),
    ("llama3-8b", 16, 16),
]
PROFILE = """name: bench
description: short contexts, one turn (the benchmark measures the chunk reads after it)
context_tokens: [256, 512]
turns: [1, 1]
turn_tokens: [0, 0]
output_tokens: [0, 0]
"""


def one(target: Path, results: Path, profile: Path, model: str, tokens: int, qd: int,
        layout: str, runtime: float, capacity: str, fio_first: bool) -> dict:
    cmd = [sys.executable, "-m", "iobench", "infer", "kvcache", model, "--target", str(target),
           "--results-dir", str(results), "--json", "--engine", "fio", "--layout", layout,
           "--chunk-tokens", str(tokens), "-q", str(qd), "--capacity", capacity,
           "--profile", str(profile), "--users", "1", "--requests", "2", "--no-search",
           "--fio-runtime", f"{runtime}s"] + (["--fio-first"] if fio_first else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\nfailed: {p.stderr.strip()}")
    return json.loads(p.stdout)["metrics"]


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtime", type=float, default=3.0)
    ap.add_argument("--capacity", default="256MiB")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kvbench-"))
    profile = work / "bench.yaml"
    profile.write_text(PROFILE)
    target = a.target / "kvcache-bench"
    ok = True
    try:
        for model, tokens, qd in CONFIGS:
            for layout in ("file-per-chunk", "slab"):
                rows = [one(target, work / "r", profile, model, tokens, qd, layout,
                            a.runtime, a.capacity, fio_first=bool(i % 2))
                        for i in range(a.rounds)]
                mib = rows[0]["chunk_bytes"] / 2**20
                nat = [r["native_chunk_read_gb_per_s"] for r in rows]
                fio = [r["fio_chunk_read_gb_per_s"] for r in rows]
                ratio = [r["native_to_fio"] for r in rows]
                p99 = [r["native_chunk_read_p99_ms"] / r["fio_chunk_read_p99_ms"]
                       for r in rows]
                good = statistics.median(ratio) >= 0.9 and statistics.median(p99) <= 1.1
                ok = ok and good
                print(f"{model} {tokens} tokens = {mib:g} MiB chunks, {layout}, QD {qd}, "
                      f"{a.rounds} rounds (median, min-max):")
                print(f"  native GB/s {spread(nat)}   fio GB/s {spread(fio)}")
                print(f"  native/fio GB/s {spread(ratio)} (>= 0.9)   chunk p99 native/fio "
                      f"{spread(p99)} (<= 1.1)   "
                      f"p99 ms native {spread([r['native_chunk_read_p99_ms'] for r in rows])} "
                      f"fio {spread([r['fio_chunk_read_p99_ms'] for r in rows])}   "
                      f"{'ok' if good else 'MISSED'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "iobench", "clean", "--target", str(target)],
                       capture_output=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
