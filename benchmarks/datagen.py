"""Is datagen storage-bound? Generation rate vs fio sequential write of the same bytes on
the same target (both buffered + fsync at the end), and a content audit of what datagen
wrote (zstd/gzip ratio, duplicate 4 KiB blocks), plus the peak RSS of its processes.

    python benchmarks/datagen.py --target ./iobench-scratch/bench --size 1GiB --rounds 4

Both tools are timed by their own clocks from the first write to the last fsync (fio
3.33's JSON runtime includes end_fsync); rounds alternate which tool goes first; medians
and min-max are printed. CPU seconds per GB (user + system of the tool's process tree,
from wait4, less its start-up: `iobench --help`, `fio --version`) tells on a busy host
whether the tool could be the bottleneck, which a rate ratio cannot when other work takes
the cores.

Pass criteria (issue 13): median rate ratio >= 0.95; compressed/raw >= 0.99;
duplicates = 0.

--baseline CMD adds a third tool to the same alternating rounds: another iobench (an
older checkout: `env PYTHONPATH=/tmp/old python -m iobench`), so a change to datagen is
measured against what it replaces on the same host at the same moment.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iobench.units import parse_size

IOBENCH = [sys.executable, "-m", "iobench"]

# unet3d-like (variable-size npz) and resnet50-like (TFRecord shards) at a small scale
SPECS = {
    "npz": "format: npz\nrecord_size: 48MiB\nrecord_size_stdev: 16MiB\n"
           "record_size_min: 4MiB\nsamples_per_file: 1\n",
    "tfrecord": "format: tfrecord\nrecord_size: 114660\nsamples_per_file: 1251\n",
    "indexed": "format: indexed\nseq_len: 8192\ntoken_dtype: uint32\nsamples_per_file: 4096\n",
}


def _run(cmd: list[str]) -> tuple[str, float, float]:
    """(stdout, CPU seconds of the process and its reaped children, wall seconds)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"failed: {' '.join(cmd)}")
        out.seek(0)
        return out.read().decode(), ru.ru_utime + ru.ru_stime, wall


_STARTUP_CPU: dict[str, float] = {}


def startup_cpu(tool: str) -> float:
    """CPU seconds a tool spends before any I/O (interpreter and imports for iobench),
    measured once: `iobench --help`, `fio --version`."""
    if tool not in _STARTUP_CPU:
        cmd = [*IOBENCH, "--help"] if tool == "iobench" else ["fio", "--version"]
        _STARTUP_CPU[tool] = min(_run(cmd)[1] for _ in range(3))
    return _STARTUP_CPU[tool]


def run_datagen(spec: Path, target: Path, size: int, jobs: int,
                iobench: list[str] | None = None) -> dict:
    cmd = [*(iobench or IOBENCH), "datagen", str(spec), "--target", str(target),
           "--dataset-size", str(size), "--jobs", str(jobs), "--json", "--force",
           "--results-dir", str(target.parent / "bench-results")]
    out, cpu, wall = _run(cmd)
    phase = json.loads(out)["phases"][0]
    return {"bytes": phase["bytes"], "seconds": phase["seconds"],
            "bytes_per_s": phase["bytes_per_s"], "wall_seconds": wall,
            "cpu_s_per_gb": (cpu - startup_cpu("iobench")) / (phase["bytes"] / 1e9),
            "max_rss_bytes": phase["metrics"]["worker_max_rss_bytes"]}


def _fio(directory: Path, per_job: int, jobs: int) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    cmd = ["fio", "--name=seqwrite", f"--directory={directory}", "--rw=write", "--bs=1M",
           f"--size={per_job}", f"--numjobs={jobs}", "--ioengine=psync", "--end_fsync=1",
           "--group_reporting", "--output-format=json"]
    out, cpu, wall = _run(cmd)
    # anything end_fsync left dirty would show here (it is ~0: fio 3.33's end_fsync is
    # complete and inside its runtime)
    t1 = time.perf_counter()
    for p in directory.iterdir():
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    after = time.perf_counter() - t1
    shutil.rmtree(directory)
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return {"wall": wall, "job": job, "fsync_after_s": after, "cpu": cpu}


def run_fio(directory: Path, size: int, jobs: int) -> dict:
    """fio 3.33's JSON runtime runs from the first write to the end of end_fsync=1 (the
    sync is inside it: 3.3-3.8 s of a run whose extra sync afterwards took 0.04-0.07 s),
    which is what datagen's phase time covers too: first write to last fsync. Both are
    taken from the tools' own clocks, so neither pays process start-up."""
    per_job = size // jobs // (1 << 20) * (1 << 20)
    r = _fio(directory, per_job, jobs)
    job = r["job"]
    nbytes = job["write"]["io_bytes"]
    seconds = job["write"]["runtime"] / 1e3
    return {"bytes": nbytes, "seconds": seconds, "bytes_per_s": nbytes / seconds,
            "wall_seconds": r["wall"], "fsync_after_s": r["fsync_after_s"],
            "cpu_s_per_gb": (r["cpu"] - startup_cpu("fio")) / (nbytes / 1e9)}


def audit(directory: Path) -> dict:
    """zstd ratio over every file (gzip over the first 256 MiB: it is slow); duplicate
    4 KiB blocks across the whole data set."""
    try:
        import zstandard
        zc = zstandard.ZstdCompressor(level=3)
    except ImportError:
        zc = None
    raw = z = g = graw = blocks = 0
    seen: set[bytes] = set()
    dups = 0
    for p in sorted(directory.iterdir()):
        if p.name == "manifest.json" or p.suffix == ".idx":
            continue
        data = p.read_bytes()
        raw += len(data)
        if zc is not None:
            z += len(zc.compress(data))
        if graw < 256 << 20:
            g += len(gzip.compress(data, compresslevel=1))
            graw += len(data)
        mv = memoryview(data)
        for off in range(0, len(data) - 4095, 4096):
            h = hashlib.blake2b(mv[off : off + 4096], digest_size=16).digest()
            blocks += 1
            if h in seen:
                dups += 1
            seen.add(h)
    return {"bytes": raw, "zstd_ratio": z / raw if zc else None, "gzip_ratio": g / graw,
            "blocks_4k": blocks, "duplicate_blocks_4k": dups}


def _stats(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, default=None,
                    help="scratch directory on the storage to test (default: a temp dir)")
    ap.add_argument("--size", default="1GiB", help="bytes per run (default 1GiB)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--formats", default="npz,tfrecord,indexed")
    ap.add_argument("--rounds", type=int, default=4,
                    help="alternating rounds (even: each tool goes first half the time)")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--iobench", default=None,
                    help="command that runs iobench (default: this python -m iobench), "
                         "e.g. to measure another checkout")
    ap.add_argument("--baseline", default=None,
                    help="command of a second iobench run in the same rounds (before/after)")
    a = ap.parse_args()
    baseline = a.baseline.split() if a.baseline else None
    if a.iobench:
        IOBENCH[:] = a.iobench.split()
    size = parse_size(a.size, "--size")
    base = a.target or Path(tempfile.mkdtemp(prefix="iobench-bench-datagen-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"target {base}, {size / 2**30:.2f} GiB per run, {a.jobs} jobs, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; GB/s = 1e9 B/s; "
          "medians (min-max) of alternating rounds")
    rows = []
    out: dict = {}
    try:
        for fmt in a.formats.split(","):
            spec = base / f"bench-{fmt}.yaml"
            spec.write_text(f"name: bench-{fmt}\n{SPECS[fmt]}")
            gen, fio, ratios = [], [], []
            cpu_ratios: list[float] = []  # per round: datagen's CPU per GB / fio's
            old, old_ratios, new_to_old = [], [], []
            t = base / "t"
            for k in range(a.rounds):
                tools = ["fio", "datagen"] + (["baseline"] if baseline else [])
                got: dict[str, dict] = {}
                for tool in tools[k % len(tools):] + tools[:k % len(tools)]:  # rotate
                    shutil.rmtree(t, ignore_errors=True)
                    if tool == "fio":
                        got[tool] = run_fio(base / "fio", size, a.jobs)
                    else:
                        got[tool] = run_datagen(spec, t, size, a.jobs,
                                                baseline if tool == "baseline" else None)
                        if tool == "datagen":  # the audit below reads this tool's files
                            shutil.rmtree(base / "t-audit", ignore_errors=True)
                            t.rename(base / "t-audit")
                g, f = got["datagen"], got["fio"]
                gen.append(g)
                fio.append(f)
                ratios.append(g["bytes_per_s"] / f["bytes_per_s"])
                cpu_ratios.append(g["cpu_s_per_gb"] / f["cpu_s_per_gb"]
                                  if f["cpu_s_per_gb"] > 0 else float("nan"))
                if baseline:
                    old.append(got["baseline"])
                    old_ratios.append(got["baseline"]["bytes_per_s"] / f["bytes_per_s"])
                    new_to_old.append(g["bytes_per_s"] / got["baseline"]["bytes_per_s"])
            rss = max(r["max_rss_bytes"] for r in gen)  # per worker, from the Result
            au = audit(base / "t-audit" / "datagen" / f"bench-{fmt}")
            shutil.rmtree(base / "t", ignore_errors=True)
            shutil.rmtree(base / "t-audit", ignore_errors=True)
            ratio = statistics.median(ratios)
            rows.append((fmt, ratio, au))
            zr = f"{au['zstd_ratio']:.4f}" if au["zstd_ratio"] is not None else "n/a"
            g_bps = [r["bytes_per_s"] / 1e9 for r in gen]
            f_bps = [r["bytes_per_s"] / 1e9 for r in fio]
            out[fmt] = {"datagen_gb_per_s": g_bps, "fio_gb_per_s": f_bps, "ratios": ratios,
                        "datagen_bytes": [r["bytes"] for r in gen],
                        "fio_fsync_after_s": [r["fsync_after_s"] for r in fio],
                        "datagen_cpu_s_per_gb": [r["cpu_s_per_gb"] for r in gen],
                        "fio_cpu_s_per_gb": [r["cpu_s_per_gb"] for r in fio],
                        "cpu_ratios": cpu_ratios,
                        "audit": au, "worker_max_rss_bytes": rss}
            if baseline:
                out[fmt].update(baseline_gb_per_s=[r["bytes_per_s"] / 1e9 for r in old],
                                baseline_ratios=old_ratios, datagen_to_baseline=new_to_old,
                                baseline_cpu_s_per_gb=[r["cpu_s_per_gb"] for r in old])
            print(f"{fmt:9s} datagen {_stats(g_bps)} GB/s | fio seqwrite end_fsync "
                  f"{_stats(f_bps)} GB/s | ratio {_stats(ratios)} "
                  f"{'PASS' if ratio >= 0.95 else 'FAIL'} | zstd {zr} "
                  f"gzip {au['gzip_ratio']:.4f} | dup 4KiB blocks "
                  f"{au['duplicate_blocks_4k']} of {au['blocks_4k']} | worker peak RSS "
                  f"{rss / 2**20:.0f} MiB | fio extra fsync "
                  f"{max(r['fsync_after_s'] for r in fio):.3f} s max | CPU s/GB datagen "
                  f"{_stats([r['cpu_s_per_gb'] for r in gen])} fio "
                  f"{_stats([r['cpu_s_per_gb'] for r in fio])}, paired ratio "
                  f"{_stats(cpu_ratios)}")
            if baseline:
                print(f"{'':9s} baseline {_stats([r['bytes_per_s'] / 1e9 for r in old])} GB/s"
                      f" | baseline/fio {_stats(old_ratios)} | datagen/baseline "
                      f"{_stats(new_to_old)} | CPU s/GB baseline "
                      f"{_stats([r['cpu_s_per_gb'] for r in old])}")
    finally:
        if a.target is None:
            shutil.rmtree(base, ignore_errors=True)
    if a.json_out:
        a.json_out.write_text(json.dumps(out, indent=1))
    ok = all(r[1] >= 0.95 and r[2]["duplicate_blocks_4k"] == 0 and r[2]["gzip_ratio"] >= 0.99
             and (r[2]["zstd_ratio"] is None or r[2]["zstd_ratio"] >= 0.99) for r in rows)
    print("all criteria met" if ok else "SOME CRITERIA FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
