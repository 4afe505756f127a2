#!/usr/bin/env python3
"""Compare two installed iobench versions on the same commands, in one run (issue 12).

The structure change must not cost speed: this runs each case with the OLD and the NEW
iobench executable, alternating which goes first, `--rounds` times, each version on its
own target directory (same sizes, same flags), and prints per case the median of the
per-round ratios NEW/OLD with their min-max. Results of either schema are read with this
checkout's loader (schema-1 files are upgraded on load), so the same metric name is read
from both.

    python benchmarks/versions.py --old /path/to/old/.venv/bin/iobench \
        [--new .venv/bin/iobench] --dir /tmp/versions [--rounds 5]

Cache state per case is in its flags: `--cache direct` cases use O_DIRECT; the cached
sequential read reads a file the previous pass of the same version just read (resident:
its result's measured residency is printed).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from iobench.results import load

# (name, argv after the executable, phase name, metric in that phase)
CASES: list[tuple[str, list[str], str, str]] = [
    ("seqread 1 MiB cached", ["io", "seqread", "--size", "256MiB", "--block-size", "1MiB",
                              "--cache", "allow", "--jobs", "1"], "seqread", "bytes_per_s"),
    ("randread 4 KiB QD1 direct", ["io", "randread", "--size", "64MiB", "--block-size", "4KiB",
                                   "--cache", "direct", "--runtime", "3"],
     "randread", "ops_per_s"),
    ("randread 4 KiB QD32 direct", ["io", "randread", "--size", "64MiB", "--block-size",
                                    "4KiB", "--cache", "direct", "--queue-depth", "32",
                                    "--runtime", "3"], "randread", "ops_per_s"),
    ("seqwrite 1 MiB direct", ["io", "seqwrite", "--size", "128MiB", "--block-size", "1MiB",
                               "--cache", "direct"], "seqwrite", "bytes_per_s"),
    ("vector pattern, 4 queries", ["infer", "vector", "--index-size", "256MiB", "--concurrency",
                                   "4", "--runtime", "3"],
     "concurrency=4", "bytes_per_s"),
    ("checkpoint 8B subset write", ["checkpoint", "llama3-8b", "--mode", "subset", "--ranks",
                                    "2", "--scale", "0.002", "--cache", "direct"],
     "write", "bytes_per_s"),
    ("checkpoint 8B subset restore", ["checkpoint", "llama3-8b", "--mode", "subset", "--ranks",
                                      "2", "--scale", "0.002", "--cache", "direct", "--read"],
     "read", "bytes_per_s"),
]


def one(exe: str, argv: list[str], target: Path, results: Path) -> Path | None:
    if results.exists():
        shutil.rmtree(results)
    p = subprocess.run([exe, *argv, "--target", str(target), "--results-dir", str(results),
                        "--json"], capture_output=True, text=True)
    files = sorted(results.glob("*/result.json"))
    if p.returncode != 0 or not files:
        print(f"  {exe} {' '.join(argv)}: exit {p.returncode}: "
              f"{(p.stderr or p.stdout).strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return files[-1]


def metric(path: Path, phase: str, name: str) -> float | None:
    r = load(path)
    for ph in r.phases:
        if ph.get("name") == phase or phase in str(ph.get("name")):
            v = ph.get(name)
            if isinstance(v, (int, float)):
                return float(v)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the old version's iobench executable")
    ap.add_argument("--new", default=str(Path(sys.executable).parent / "iobench"))
    ap.add_argument("--dir", type=Path, default=None, help="scratch directory (removed after)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--case", action="append", help="only cases whose name contains this")
    a = ap.parse_args()
    base = a.dir or Path(tempfile.mkdtemp(prefix="iobench-versions-"))
    base.mkdir(parents=True, exist_ok=True)
    cases = [c for c in CASES if not a.case or any(s in c[0] for s in a.case)]
    for side in ("old", "new"):
        exe = getattr(a, side)
        v = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{side}: {exe} ({v})")
    try:
        for name, argv, phase, m in cases:
            ratios, olds, news = [], [], []
            for side in ("old", "new"):  # a warm-up pass each: layout, cache state
                one(getattr(a, side), argv, base / side / "t", base / side / "r")
            for i in range(a.rounds):
                order = ("old", "new") if i % 2 == 0 else ("new", "old")
                got: dict[str, float | None] = {}
                for side in order:
                    path = one(getattr(a, side), argv, base / side / "t", base / side / "r")
                    got[side] = metric(path, phase, m) if path else None
                if got["old"] and got["new"]:
                    olds.append(got["old"])
                    news.append(got["new"])
                    ratios.append(got["new"] / got["old"])
            if not ratios:
                print(f"{name:30s} no paired rounds")
                continue
            print(f"{name:30s} {m:12s} new/old median {statistics.median(ratios):.3f} "
                  f"({min(ratios):.3f}-{max(ratios):.3f}), n={len(ratios)}; "
                  f"old {statistics.median(olds):.4g}, new {statistics.median(news):.4g}")
    finally:
        if a.dir is None:
            shutil.rmtree(base, ignore_errors=True)
        else:
            for side in ("old", "new"):
                shutil.rmtree(base / side, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
