#!/usr/bin/env python3
"""Measure what iobench's fio engine costs: the same jobs through fio.run (json+ bins,
lat_percentiles, one status document a second) and through plain `fio --output-format=json`,
on the same file, in one run. Prints throughput/IOPS ratios (should be ~1.0). Usage:

    python benchmarks/fio.py --target ./iobench-scratch/bench [--size 256MiB] [--runtime 2s]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iobench import target
from iobench.engines import IOSpec, fio, native
from iobench.units import parse_duration, parse_size


def plain_fio(jobfile: str, workdir: Path) -> tuple[float, float, float]:
    """(bytes/s, IOPS, wall s) of plain fio on the same job file text, json output."""
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.fio"
        out = Path(tmp) / "out.json"
        # plain fio's defaults: no lat_percentiles, no json+ bins, no status documents
        job.write_text(jobfile.replace("lat_percentiles=1\n", ""))
        t0 = time.monotonic()
        subprocess.run(["fio", "--output-format=json", f"--output={out}", str(job)],
                       check=True, cwd=workdir, capture_output=True)
        wall = time.monotonic() - t0
        text = out.read_text()
    d = json.loads(text[text.index("{"):])
    bw = sum(j["read"]["bw_bytes"] for j in d["jobs"])
    iops = sum(j["read"]["iops"] for j in d["jobs"])
    return bw, iops, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--size", default="256MiB")
    ap.add_argument("--runtime", default="2s")
    a = ap.parse_args()
    if shutil.which("fio") is None:
        print("fio is not installed; apt-get install fio", file=sys.stderr)
        return 2
    size = parse_size(a.size, "--size")
    runtime = parse_duration(a.runtime, "--runtime")
    tgt = target.prepare(a.target)
    work = tgt.subdir("bench-fio")
    files = (work / "f0.dat",)
    native.layout(files, size)
    cases = [
        ("4 KiB rand read QD1, cached", dict(pattern="randread", block_size=4096)),
        ("1 MiB seq read O_DIRECT", dict(pattern="seqread", block_size=1 << 20, direct=True)),
        ("4 KiB rand read libaio QD32 O_DIRECT",
         dict(pattern="randread", block_size=4096, direct=True, ioengine="libaio",
              queue_depth=32)),
    ]
    print(f"{'case':40s} {'iobench fio':>14s} {'plain fio':>14s} {'ratio':>6s} "
          f"{'wall':>12s}")
    for label, kw in cases:
        spec = IOSpec(size=size, files=files, jobs=1, runtime=runtime, **kw)  # type: ignore[arg-type]
        t0 = time.monotonic()
        (p,) = fio.run(spec, work)
        wall = time.monotonic() - t0
        bw, iops, pwall = plain_fio(fio.jobfile_for(spec, spec.pattern), work)
        if spec.block_size == 4096:
            ours, theirs, unit = p["iops"], iops, "IOPS"
        else:
            ours, theirs, unit = p["bytes_per_s"] / 1e9, bw / 1e9, "GB/s"
        print(f"{label:40s} {ours:>9.4g} {unit:4s} {theirs:>9.4g} {unit:4s} "
              f"{ours / theirs:6.3f} {wall:5.2f}/{pwall:5.2f}s")
    print("ratio = iobench's fio engine / plain fio on the same job file and file; "
          "wall = iobench / plain, seconds")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
