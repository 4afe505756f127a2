"""`iobench train --decode` on unet3d-shaped npz samples vs a replica of DLIO 2.0.0's
NPZReader + PyTorch DataLoader, on the same cached files: samples/s and peak memory.

The real DLIO 2.0.0 runs beside it in benchmarks/train_decode_dlio.py (a CPU build of
PyTorch is on the development VM's disk: `pip install torch==2.13.0`); this script
keeps the replica, which needs neither PyTorch nor TensorFlow.
The baseline replays what DLIO does per sample, read from the 2.0.0 wheel
(dlio_benchmark/reader/npz_reader.py, reader_handler.py, data_loader/torch_data_loader.py):

- `read_threads` worker processes (DLIO's TorchDataLoader: num_workers = read_threads,
  forked), each taking whole batches in turn (the DataLoader's batch sampler);
- per sample, NPZReader.open: `np.load(filename, allow_pickle=True)['x']` (here the one
  member each iobench npz file has: unet3d keeps one sample per file), then get_sample's
  view of it; read_type ON_DEMAND (the default) opens and closes the file per sample;
- FormatReader.read_index returns `resized_image` (uint8 of sqrt(record_length_resize)^2,
  2 MiB for unet3d), and the DataLoader collates batch_size of them: here np.stack into a
  batch buffer the worker allocated once in shared memory (torch allocates a new
  shared-memory tensor per batch; reusing one favours the baseline). Only a small message
  goes back to the parent; there is no pin_memory thread and no torch import, which also
  favours the baseline.

iobench: `iobench train SPEC --decode --cache allow --compute-time 0` (1 accelerator,
read_threads reader threads), samples/s from its result. Both read the same files, warm
in the page cache (read once first), alternating rounds; medians and min-max.

Memory: iobench is one process, its peak RSS (wait4's ru_maxrss). The baseline is
read_threads + 1 processes: the sum of each worker's peak RSS plus the parent's (forked
workers share the parent's ~30 MB of interpreter and numpy pages, counted in each, so
the sum overstates the baseline by up to read_threads x 30 MB; its largest single
worker is printed too).

    python benchmarks/train_decode.py [--target DIR] [--files 14] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

IOBENCH = [sys.executable, "-m", "iobench"]
RESIZE = 2097152  # unet3d record_length_resize (DLIO configs/workload/unet3d_*.yaml)


def run_child(cmd: list[str]) -> tuple[str, int]:
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        err = p.stderr.read().decode() if p.stderr else ""
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
        out.seek(0)
        return out.read().decode(), ru.ru_maxrss * 1024


# --- the DLIO replica -------------------------------------------------------------------
def _dlio_worker(wid: int, files: list[str], batches: list[list[int]], batch_size: int,
                 ready: mp.Queue, go: mp.Event, done: mp.Queue) -> None:
    dim = int(RESIZE ** 0.5)
    resized_image = np.random.randint(255, size=(dim, dim), dtype=np.uint8)
    shm = shared_memory.SharedMemory(create=True, size=batch_size * dim * dim)
    out = np.ndarray((batch_size, dim, dim), dtype=np.uint8, buffer=shm.buf)
    nbytes = 0
    ready.put(wid)
    go.wait()
    for batch in batches:
        for i in batch:
            z = np.load(files[i], allow_pickle=True)  # NPZReader.open (ON_DEMAND)
            image = z[z.files[0]]
            image = image[..., 0:]  # get_sample: a view of the sample
            nbytes += image.nbytes
            del image, z  # NPZReader.close
        np.stack([resized_image] * batch_size, out=out)  # default_collate into shm
        done.put(("batch", wid, len(batch)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del out
    shm.close()
    shm.unlink()
    done.put(("end", wid, nbytes, rss))


def dlio_replica(files: list[Path], batch_size: int, workers: int, seed: int) -> dict:
    n = len(files) // batch_size * batch_size  # drop_last, as iobench's steps
    order = np.random.default_rng(seed).permutation(len(files))[:n].tolist()
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    ctx = mp.get_context("fork")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_dlio_worker,
                         args=(w, [str(f) for f in files], batches[w::workers], batch_size,
                               ready, go, done)) for w in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    t0 = time.perf_counter()
    go.set()
    samples = 0
    ends = []
    while len(ends) < workers:
        msg = done.get()
        if msg[0] == "batch":
            samples += msg[2]
            t_last = time.perf_counter()
        else:
            ends.append(msg)
    for p in procs:
        p.join()
    seconds = t_last - t0
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds,
            "bytes": sum(e[2] for e in ends), "rss_sum": sum(e[3] for e in ends) + parent,
            "rss_workers_max": max(e[3] for e in ends), "rss_parent": parent}


# --- iobench ----------------------------------------------------------------------------
def iobench_decode(spec: Path, target: Path, results: Path, threads: int) -> dict:
    text, rss = run_child([*IOBENCH, "train", str(spec), "--target", str(target),
                           "--results-dir", str(results), "--json", "--decode",
                           "--cache", "allow", "--compute-time", "0", "--epochs", "1",
                           "--read-threads", str(threads)])
    m = json.loads(text)["metrics"]
    return {"samples": m["samples"], "samples_per_s": m["samples_per_s"],
            "bytes": m["bytes"], "rss": rss}


def _stats(xs: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(xs):{fmt}} ({min(xs):{fmt}}-{max(xs):{fmt}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, default=None)
    ap.add_argument("--files", type=int, default=14, help="unet3d files (one sample each)")
    ap.add_argument("--batch-size", type=int, default=7)
    ap.add_argument("--read-threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--iobench", default=None,
                    help="command that runs iobench (default: this python -m iobench), "
                         "e.g. to measure another checkout")
    a = ap.parse_args()
    if a.iobench:
        IOBENCH[:] = a.iobench.split()
    work = a.target or Path(tempfile.mkdtemp(prefix="iobench-bench-decode-"))
    work.mkdir(parents=True, exist_ok=True)
    target, results = work / "t", work / "results"
    spec = work / "unet3d-decode.yaml"
    # unet3d's own record sizes (146.6 MB +- 68.3 MB, clipped at 8 MB), one per file
    spec.write_text("name: unet3d-decode\nformat: npz\nrecord_size: 146600628\n"
                    "record_size_stdev: 68341808\nrecord_size_min: 8MB\nsamples_per_file: 1\n"
                    f"files: {a.files}\nbatch_size: {a.batch_size}\n"
                    f"read_threads: {a.read_threads}\n")
    try:
        if not (target / "datagen" / "unet3d-decode" / "manifest.json").exists():
            run_child([*IOBENCH, "datagen", str(spec), "--target", str(target),
                       "--results-dir", str(results)])
        files = sorted((target / "datagen" / "unet3d-decode").glob("*.npz"))
        total = sum(p.stat().st_size for p in files)
        for p in files:  # warm the page cache for both
            with open(p, "rb") as f:
                while f.read(8 << 20):
                    pass
        print(f"{len(files)} unet3d-shaped npz files, {total / 1e9:.2f} GB, cached; batch "
              f"{a.batch_size}, {a.read_threads} readers; {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}")
        io_r, dl_r = [], []
        for k in range(a.rounds):
            if k % 2 == 0:
                io_r.append(iobench_decode(spec, target, results, a.read_threads))
                dl_r.append(dlio_replica(files, a.batch_size, a.read_threads, k))
            else:
                dl_r.append(dlio_replica(files, a.batch_size, a.read_threads, k))
                io_r.append(iobench_decode(spec, target, results, a.read_threads))
        ratios = [i["samples_per_s"] / d["samples_per_s"] for i, d in zip(io_r, dl_r,
                                                                           strict=True)]
        mem = [i["rss"] / d["rss_sum"] for i, d in zip(io_r, dl_r, strict=True)]
        print(f"iobench train --decode: {_stats([r['samples_per_s'] for r in io_r])} "
              f"samples/s, peak RSS {_stats([r['rss'] / 2**20 for r in io_r], '.0f')} MiB")
        print(f"DLIO 2.0.0 NPZReader replica ({a.read_threads} worker processes): "
              f"{_stats([r['samples_per_s'] for r in dl_r])} samples/s, peak RSS summed "
              f"{_stats([r['rss_sum'] / 2**20 for r in dl_r], '.0f')} MiB (largest worker "
              f"{_stats([r['rss_workers_max'] / 2**20 for r in dl_r], '.0f')} MiB)")
        print(f"samples/s ratio iobench / DLIO replica: {_stats(ratios)} "
              f"({'PASS' if statistics.median(ratios) >= 1.5 else 'FAIL'}: >= 1.5)")
        print(f"RSS ratio iobench / DLIO replica: {_stats(mem)} "
              f"({'PASS' if statistics.median(mem) <= 0.5 else 'FAIL'}: <= 0.5)")
        if a.json_out:
            a.json_out.write_text(json.dumps({"iobench": io_r, "dlio_replica": dl_r,
                                              "ratios": ratios, "rss_ratios": mem}, indent=1))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
