"""Checkpoint benchmark: iobench's rank writers and readers against fio on the same target.

1. write + fsync throughput, native vs fio (same bytes per rank, numjobs = ranks,
   end_fsync=1): ratio >= 0.95 expected;
2. restore throughput, native (read + CRC32C verify) vs fio reading the same files, the
   page cache dropped before each: ratio >= 0.95 expected;
3. peak RSS per rank while writing and restoring a checkpoint 10x larger than the 256 MiB
   bound: growth over the rank's start <= 256 MiB expected.

Usage: python benchmarks/checkpoint.py [--target DIR] [--gib 1.0] [--ranks 4] [--repeat 3]
Disk use: about max(--gib, --rss-gib) GiB at a time; everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iobench import cache
from iobench.engines import fio
from iobench.kinds.checkpoint import fio_engine

LAYER_BYTES = (2 * 1024 + 4 * 1024 * 1024 + 3 * 1024 * 4096) * 14  # hidden 1024, ffn 4096


def model_yaml(path: Path, gib: float, ranks: int) -> Path:
    """A checkpoint preset and its model (Hugging Face config.json keys) beside it."""
    layers = max(1, round(gib * 2**30 / LAYER_BYTES))
    model = path.with_name(path.stem + "-model.yaml")
    model.write_text(
        f"name: {path.stem}-model\nvocab_size: 1024\nhidden_size: 1024\n"
        f"intermediate_size: 4096\nnum_hidden_layers: {layers}\nnum_attention_heads: 8\n"
        "num_key_value_heads: 8\n")
    path.write_text(
        f"name: bench\nmodel: {model.name}\n"
        f"parallelism: {{tp: 1, pp: 1, dp: {ranks}, zero: 3}}\nlayout: dcp\n")
    return path


def iobench(*args: str) -> dict:
    exe = Path(sys.executable).with_name("iobench")
    r = subprocess.run([str(exe), "checkpoint", *args, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"iobench failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout)


def fio_read(step: Path, direct: bool) -> float:
    files = sorted(step.glob("__*_0.distcp"), key=lambda p: int(p.name[2:].split("_")[0]))
    cache.drop(files)
    text = fio_engine.jobfile([(i, f, 0) for i, f in enumerate(files)], rw="read",
                              direct=direct)
    doc = fio.run_fio(text, step)
    nbytes = sum(int(j["read"]["io_bytes"]) for j in doc["jobs"])
    secs = max(int(j["read"]["runtime"]) for j in doc["jobs"]) / 1000
    return nbytes / secs


def settle() -> None:
    os.sync()
    time.sleep(1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, default=Path("iobench-scratch/bench-checkpoint"))
    ap.add_argument("--gib", type=float, default=1.0, help="checkpoint size for the ratios")
    ap.add_argument("--rss-gib", type=float, default=2.6, help="checkpoint size for RSS")
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cache", choices=["drop", "direct"], default="drop")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iobench-bench-"))
    results = tmp / "results"
    target = a.target
    direct = a.cache == "direct"
    try:
        yml = model_yaml(tmp / "bench.yaml", a.gib, a.ranks)
        common = ["--target", str(target), "--results-dir", str(results), "--cache", a.cache]
        w_nat, w_fio, r_nat, r_fio = [], [], [], []
        nbytes = 0
        for i in range(a.repeat):
            # fio writes first (a write replaces the model's checkpoint directory, and the
            # restores need the native one); writeback settles before each run; restores
            # run in their own invocations (a read right after a write also measures the
            # device still flushing what the write left in its caches), order alternating
            for engine in ("fio", "native"):
                settle()
                if engine == "fio":
                    d = iobench(str(yml), *common, "--engine", "fio", "--no-read")
                    w_fio.append(d["metrics"]["write_gb_per_s"])
                else:
                    d = iobench(str(yml), *common, "--no-read")
                    nbytes = d["metrics"]["checkpoint_bytes"]
                    w_nat.append(d["metrics"]["write_gb_per_s"])
            for engine in (("fio", "native") if i % 2 == 0 else ("native", "fio")):
                settle()
                if engine == "fio":
                    r_fio.append(fio_read(target / "checkpoint" / "bench" / "step_1",
                                          direct) / 1e9)
                else:
                    d = iobench(str(yml), *common, "--no-write")
                    r_nat.append(d["metrics"]["read_gb_per_s"])
        wn, wf, rn, rf = (statistics.median(x) for x in (w_nat, w_fio, r_nat, r_fio))
        print(f"checkpoint {nbytes / 2**30:.2f} GiB, {a.ranks} ranks, cache {a.cache}, "
              f"median of {a.repeat}")
        print("  runs GB/s: write native " + " ".join(f"{x:.2f}" for x in w_nat)
              + " | fio " + " ".join(f"{x:.2f}" for x in w_fio))
        print("  runs GB/s: read native " + " ".join(f"{x:.2f}" for x in r_nat)
              + " | fio " + " ".join(f"{x:.2f}" for x in r_fio))
        print(f"write+fsync  native {wn:.3f} GB/s  fio {wf:.3f} GB/s  ratio {wn / wf:.3f} "
              f"{'OK' if wn / wf >= 0.95 else 'BELOW 0.95'}")
        print(f"restore      native {rn:.3f} GB/s  fio {rf:.3f} GB/s  ratio {rn / rf:.3f} "
              f"{'OK' if rn / rf >= 0.95 else 'BELOW 0.95'}  (native also verifies CRC32C)")
        shutil.rmtree(target / "checkpoint", ignore_errors=True)
        big = model_yaml(tmp / "big.yaml", a.rss_gib, 2)
        d = iobench(str(big), *common)
        for p in d["phases"]:
            for row in p["metrics"]["ranks"]:
                growth = row["peak_rss_bytes"] - row["base_rss_bytes"]
                print(f"{p['name']:8s} rank {row['rank']}: {row['bytes'] / 2**30:.2f} GiB, "
                      f"RSS at start {row['base_rss_bytes'] / 2**20:.0f} MiB, peak "
                      f"{row['peak_rss_bytes'] / 2**20:.0f} MiB, growth {growth / 2**20:.0f} MiB "
                      f"{'OK' if growth <= 256 << 20 else 'ABOVE 256 MiB'}")
        print(f"RSS checkpoint: {d['metrics']['checkpoint_bytes'] / 2**30:.2f} GiB in total "
              f"(>= 10 x 256 MiB)")
    finally:
        shutil.rmtree(target / "checkpoint", ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
