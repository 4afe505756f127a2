"""`iobench train --decode` vs the real DLIO 2.0.0 (and the replica of
benchmarks/train_decode.py) on the same unet3d-shaped npz files: samples/s and peak RSS.

The data set is benchmarks/train_decode.py's (14 files, unet3d's 146.6 +- 68.3 MB sizes
clipped at 8 MB, one sample per file, batch 7, 4 readers), written by `iobench datagen
--layout dlio`: DLIO's own layout (train/img_I_of_N.npz, one array `x` of shape
(d1, d2, 1) uint8 and labels `y`, as DLIO's npz_generator writes it), plus the empty
valid/ folder DLIO lists even without evaluation. All three sides read those same files,
warm in the page cache (read once first), in rounds whose order rotates.

- iobench: `iobench train SPEC --decode --cache allow --compute-time 0 --epochs 1
  --read-threads 4`; samples/s from its result; peak RSS of its one process (wait4).
- DLIO: `dlio_benchmark --config-dir CONF workload=unet3d_iobench` (the config below:
  unet3d, pytorch data loader, read_threads 4, batch 7, computation_time 0, 1 epoch, no
  checkpoint), run with DFTRACER_ENABLE=0 (no trace file: favours DLIO). samples/s is
  DLIO's own `train_throughput_mean_samples_per_second` (summary.json): steps x batch
  over the block's time, which includes starting the DataLoader's workers. Peak RSS: the
  sum over DLIO's processes (the main one and the 4 forked DataLoader workers) of each
  one's VmHWM, read from /proc every 20 ms while it runs (forked pages shared with the
  parent are counted in each, as for the replica).
- the replica: benchmarks/train_decode.py's dlio_replica on these files.

    python benchmarks/train_decode_dlio.py --dlio /tmp/dlio-venv/bin/dlio_benchmark
        [--target DIR --keep] [--rounds 4] [--iobench CMD] [--json-out FILE]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_decode as td  # noqa: E402

DLIO_CONFIG = """model: unet3d
framework: pytorch
workflow:
  generate_data: False
  train: True
  checkpoint: False
dataset:
  data_folder: {folder}
  format: npz
  num_files_train: {files}
  num_samples_per_file: 1
  record_length: 146600628
  record_length_stdev: 68341808
  record_length_resize: 2097152
reader:
  data_loader: pytorch
  batch_size: {batch}
  read_threads: {threads}
  file_shuffle: seed
  sample_shuffle: seed
train:
  epochs: 1
  computation_time: 0
"""


def _tree(root: int) -> list[int]:
    """root and its descendants, from /proc/*/stat."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def _hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def real_dlio(exe: str, conf: Path, run_dir: Path) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "out"
    env = dict(os.environ, DFTRACER_ENABLE="0")
    cmd = [exe, f"--config-dir={conf}", "workload=unet3d_iobench", f"++hydra.run.dir={out}"]
    t0 = time.perf_counter()
    with open(run_dir / "stdout.log", "wb") as log:
        p = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak: dict[int, int] = {}
        names: dict[int, str] = {}
        while p.poll() is None:
            for pid in _tree(p.pid):
                h = _hwm(pid)
                if h is not None:
                    peak[pid] = max(peak.get(pid, 0), h)
                    if pid not in names:
                        try:
                            names[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
                        except OSError:
                            pass
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    summary = out / "summary.json"
    if p.returncode or not summary.exists():
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}; see {run_dir}/stdout.log")
    m = json.loads(summary.read_text())["metric"]
    return {"samples_per_s": float(m["train_throughput_mean_samples_per_second"]),
            "wall_s": wall, "processes": len(peak), "rss_sum": sum(peak.values()),
            "rss_max": max(peak.values()),
            "rss_by_process": {f"{names.get(k, '?')}[{k}]": v for k, v in peak.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dlio", required=True, help="DLIO 2.0.0's dlio_benchmark executable")
    ap.add_argument("--target", type=Path, default=None)
    ap.add_argument("--files", type=int, default=14)
    ap.add_argument("--batch-size", type=int, default=7)
    ap.add_argument("--read-threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--iobench", default=None, help="command that runs iobench")
    a = ap.parse_args()
    if a.iobench:
        td.IOBENCH[:] = a.iobench.split()
    work = a.target or Path(tempfile.mkdtemp(prefix="iobench-bench-dlio-"))
    work.mkdir(parents=True, exist_ok=True)
    target, results, spec = work / "t", work / "results", work / "unet3d-decode.yaml"
    folder = target / "datagen" / "unet3d-decode"
    spec.write_text("name: unet3d-decode\nformat: npz\nrecord_size: 146600628\n"
                    "record_size_stdev: 68341808\nrecord_size_min: 8MB\nsamples_per_file: 1\n"
                    f"files: {a.files}\nbatch_size: {a.batch_size}\n"
                    f"read_threads: {a.read_threads}\n")
    conf = work / "conf"
    (conf / "workload").mkdir(parents=True, exist_ok=True)
    (conf / "workload" / "unet3d_iobench.yaml").write_text(DLIO_CONFIG.format(
        folder=folder, files=a.files, batch=a.batch_size, threads=a.read_threads))
    try:
        if not (folder / "manifest.json").exists():
            td.run_child([*td.IOBENCH, "datagen", str(spec), "--layout", "dlio",
                          "--target", str(target), "--results-dir", str(results)])
        (folder / "valid").mkdir(exist_ok=True)  # DLIO lists it even without eval
        files = sorted((folder / "train").glob("*.npz"))
        total = sum(p.stat().st_size for p in files)
        for p in files:
            with open(p, "rb") as f:
                while f.read(8 << 20):
                    pass
        print(f"{len(files)} unet3d-shaped npz files (DLIO layout), {total / 1e9:.3f} GB, "
              f"cached; batch {a.batch_size}, {a.read_threads} readers; {os.cpu_count()} "
              f"CPUs, load {os.getloadavg()[0]:.1f}")
        sides = {
            "iobench": lambda k: td.iobench_decode(spec, target, results, a.read_threads),
            "dlio": lambda k: real_dlio(a.dlio, conf, work / "dlio-run"),
            "replica": lambda k: td.dlio_replica(files, a.batch_size, a.read_threads, k),
        }
        res: dict[str, list[dict]] = {s: [] for s in sides}
        order = list(sides)
        for k in range(a.rounds):
            for s in order[k % 3:] + order[: k % 3]:
                r = sides[s](k)
                res[s].append(r)
                print(f"  round {k} {s}: {r['samples_per_s']:.2f} samples/s", flush=True)
        io_r, dl_r, rp_r = res["iobench"], res["dlio"], res["replica"]
        ratio = [i["samples_per_s"] / d["samples_per_s"] for i, d in zip(io_r, dl_r, strict=True)]
        mem = [i["rss"] / d["rss_sum"] for i, d in zip(io_r, dl_r, strict=True)]
        print(f"iobench train --decode: {td._stats([r['samples_per_s'] for r in io_r])} "
              f"samples/s, peak RSS {td._stats([r['rss'] / 2**20 for r in io_r], '.0f')} MiB")
        print(f"DLIO 2.0.0 (real, {dl_r[0]['processes']} processes): "
              f"{td._stats([r['samples_per_s'] for r in dl_r])} samples/s (its own metric; "
              f"wall {td._stats([r['wall_s'] for r in dl_r], '.1f')} s per run), peak RSS "
              f"summed {td._stats([r['rss_sum'] / 2**20 for r in dl_r], '.0f')} MiB (largest "
              f"process {td._stats([r['rss_max'] / 2**20 for r in dl_r], '.0f')} MiB)")
        print(f"DLIO replica: {td._stats([r['samples_per_s'] for r in rp_r])} samples/s, "
              f"peak RSS summed {td._stats([r['rss_sum'] / 2**20 for r in rp_r], '.0f')} MiB")
        print(f"samples/s ratio iobench / DLIO: {td._stats(ratio)} "
              f"({'PASS' if statistics.median(ratio) >= 1.5 else 'FAIL'}: >= 1.5)")
        print(f"RSS ratio iobench / DLIO: {td._stats(mem, '.3f')} "
              f"({'PASS' if statistics.median(mem) <= 0.5 else 'FAIL'}: <= 0.5)")
        if a.json_out:
            a.json_out.write_text(json.dumps({**res, "ratios": ratio, "rss_ratios": mem},
                                             indent=1))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
