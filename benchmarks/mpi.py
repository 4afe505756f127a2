#!/usr/bin/env python3
"""Measure the MPI path: scaling of cached sequential reads from 1 to 2 ranks, and the
overhead of running under mpirun with one rank versus no MPI at all, in one run.

    python benchmarks/mpi.py --target ./iobench-scratch/bench-mpi [--size 1GiB] [--rounds 3]

Goals (issue 7): 2 ranks / 1 rank >= 1.6x; (mpirun -np 1) / (no MPI) >= 0.97.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path


def env() -> dict[str, str]:
    e = dict(os.environ)
    if os.geteuid() == 0:
        e["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        e["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    e["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    return e


def run(args: list[str], np_: int | None, target: Path, results: Path) -> float:
    """Aggregate GB/s of one `iobench io seqread` run (cached: --cache allow)."""
    cmd = [sys.executable, "-m", "iobench", *args, "--target", str(target), "--results-dir",
           str(results), "--json"]
    if np_ is not None:
        cmd = ["mpirun", "-np", str(np_), "--bind-to", "none", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env(), check=True)
    d = json.loads(p.stdout[p.stdout.index("{"):])
    return float(d["phases"][0]["bytes_per_s"]) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", required=True, type=Path)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if shutil.which("mpirun") is None:
        print("mpirun is not installed: apt-get install openmpi-bin", file=sys.stderr)
        return 2
    results = a.target.with_name(a.target.name + "-results")
    io = ["io", "seqread", "--size", a.size, "--block-size", "1MiB", "--cache", "allow"]
    # lay out job0 and job1 and warm the page cache with both
    run([*io, "--jobs", "2"], None, a.target, results)
    run([*io, "--jobs", "2"], None, a.target, results)
    one, two, plain, mpi1 = [], [], [], []
    for _ in range(a.rounds):
        plain.append(run(io, None, a.target, results))
        mpi1.append(run(io, 1, a.target, results))
        one.append(run(io, 1, a.target, results))
        two.append(run(io, 2, a.target, results))
    m = statistics.median
    scale = m(two) / m(one)
    overhead = m(mpi1) / m(plain)
    print(f"cached seq read, 1 MiB blocks, {a.size} per rank, medians of {a.rounds} rounds")
    print(f"  no MPI, 1 process        {m(plain):7.2f} GB/s")
    print(f"  mpirun -np 1             {m(mpi1):7.2f} GB/s   ratio {overhead:.3f} (goal >= 0.97)")
    print(f"  mpirun -np 2 (aggregate) {m(two):7.2f} GB/s   vs -np 1: {scale:.2f}x (goal >= 1.6x)")
    print("GB/s = 10^9 B/s; aggregate = total bytes / (last rank end - first rank start)")
    subprocess.run([sys.executable, "-m", "iobench", "clean", "--target", str(a.target)],
                   check=False, capture_output=True)
    shutil.rmtree(results, ignore_errors=True)
    return 0 if scale >= 1.6 and overhead >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
