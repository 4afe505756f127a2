#!/usr/bin/env python3
"""Measure the native engine against dd and fio on the same files, in one run (issue 13).

Rows: cached sequential read, 1 job vs dd and 2 jobs vs 2 concurrent dd (the files pinned
in the page cache: mapped and touched by this script, residency verified before the
rounds); O_DIRECT sequential read vs fio psync; 4 KiB random read QD1 vs fio psync (and
the p50 overhead); random read QD32 vs fio libaio and io_uring (and the achieved depth);
sequential write + fsync vs fio end_fsync=1 (whose JSON runtime includes the fsync:
checked here, see `fio_end_fsync_check`). Each comparison alternates the two sides
`--rounds` times; the ratio is the median of the per-round ratios, with its min-max.

    python benchmarks/engines.py --target ./iobench-scratch/bench [--size 512MiB]

IOBENCH_RING=io_uring|libaio|python picks the native engine's queue at depth.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from iobench import cache, target
from iobench.engines import IOSpec, aio, native
from iobench.units import parse_size


def fio(args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["fio", "--output-format=json", f"--output={out.name}", *args],
                       check=True, capture_output=True)
        text = Path(out.name).read_text()
    return json.loads(text[text.index("{"):])


def fio_sum(d: dict, direction: str) -> dict[str, float]:
    """Aggregate over jobs: all bytes / the longest job's runtime, as the native engine
    counts (first start to last end); p50 and mean of the total latency (lat_ns)."""
    jobs = d["jobs"]
    seconds = max(j[direction]["runtime"] for j in jobs) / 1e3
    lat = jobs[0][direction].get("lat_ns") or {}
    return {"bytes": sum(j[direction]["io_bytes"] for j in jobs),
            "bps": sum(j[direction]["io_bytes"] for j in jobs) / seconds,
            "iops": sum(j[direction]["total_ios"] for j in jobs) / seconds,
            "p50": float((lat.get("percentile") or {}).get("50.000000", 0.0)),
            "mean": float(lat.get("mean", 0.0)), "runtime_s": seconds}


def dd_read(paths: list[Path]) -> float:
    """len(paths) dd processes at once; all bytes / the longest dd's own elapsed time."""
    procs = [subprocess.Popen(["dd", f"if={p}", "of=/dev/null", "bs=1M"],
                              stderr=subprocess.PIPE, text=True) for p in paths]
    secs = []
    for pr in procs:
        _, err = pr.communicate()
        m = re.search(r"copied, ([0-9.]+) s", err)
        assert m, err
        secs.append(float(m.group(1)))
    return sum(p.stat().st_size for p in paths) / max(secs)


def nat(spec: IOSpec) -> dict[str, Any]:
    p = native.run(spec)[0]
    m = p["metrics"]
    return {"bytes": p["bytes"], "bps": p["bytes_per_s"], "iops": p["ops_per_s"],
            "p50": p["latency_ns"]["p50"],
            "mean": p["latency_ns"]["mean"], "in_flight": m.get("in_flight_mean"),
            "queue": m.get("queue")}


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (dd, fio) so far."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timed(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one side and add its CPU seconds per GB moved (the tool's own cost, which a
    busy host does not blur the way it blurs throughput)."""
    c0 = _cpu()
    out = fn()
    out["cpu_s_per_gb"] = (_cpu() - c0) / (out["bytes"] / 1e9) if out.get("bytes") else None
    return out


def rotated(fns: list[Callable[[], dict[str, Any]]], rounds: int,
            key: Callable[[dict[str, Any]], float]) -> list[dict[str, Any]]:
    """Run the sides `rounds` times, rotating who goes first (a hypervisor or array cache
    favours whoever reads second; load moves all of them); for each reference side k >= 1:
    per-round ratios native / side k, with medians and min-max."""
    runs: list[list[dict[str, Any]]] = [[] for _ in fns]
    for i in range(rounds):
        order = list(range(len(fns)))
        order = order[i % len(fns):] + order[: i % len(fns)]
        for k in order:
            runs[k].append(timed(fns[k]))
    out = []
    for k in range(1, len(fns)):
        ratios = [key(a) / key(b) for a, b in zip(runs[0], runs[k], strict=True) if key(b)]
        cn = [x["cpu_s_per_gb"] for x in runs[0] if x.get("cpu_s_per_gb")]
        cr = [x["cpu_s_per_gb"] for x in runs[k] if x.get("cpu_s_per_gb")]
        out.append({"native": runs[0], "ref": runs[k], "ratio": statistics.median(ratios),
                    "min": min(ratios), "max": max(ratios),
                    "cpu_native": statistics.median(cn) if cn else None,
                    "cpu_ref": statistics.median(cr) if cr else None})
    return out


def paired(native_fn: Callable[[], Any], ref_fn: Callable[[], Any], rounds: int,
           key: Callable[[Any], float]) -> dict[str, Any]:
    return rotated([native_fn, ref_fn], rounds, key)[0]


class Pin:
    """Keep files in the page cache for the cached rounds: map each whole file and touch
    every page (mapped pages survive other processes' drop_caches and fadvise), then
    verify with `cache.residency` that all of it is resident."""

    def __init__(self, paths: list[Path]) -> None:
        self.maps = []
        for p in paths:
            with open(p, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            int(np.frombuffer(mm, dtype=np.uint8)[::mmap.PAGESIZE].sum())
            self.maps.append(mm)
        self.residency = cache.residency(paths)

    def close(self) -> None:
        for mm in self.maps:
            mm.close()


def fio_end_fsync_check(path: Path, size: int) -> dict[str, float]:
    """Does fio 3.33's JSON write runtime include end_fsync? The same buffered write with
    and without end_fsync=1, plus the wall time of the run and of a sync after it."""
    out = {}
    for fs in (0, 1):
        path.unlink(missing_ok=True)
        os.sync()
        t0 = time.perf_counter()
        d = fio(["--name=w", f"--filename={path}", "--rw=write", "--bs=1M",
                 "--ioengine=psync", f"--size={size}", f"--end_fsync={fs}",
                 "--refill_buffers", "--buffer_compress_percentage=0"])
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        os.sync()
        out[f"runtime_s_end_fsync{fs}"] = d["jobs"][0]["write"]["runtime"] / 1e3
        out[f"wall_s_end_fsync{fs}"] = wall
        out[f"sync_after_s_end_fsync{fs}"] = time.perf_counter() - t1
    path.unlink(missing_ok=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", required=True)
    ap.add_argument("--size", default="512MiB", help="file size per job")
    ap.add_argument("--runtime", type=float, default=3.0, help="seconds per random-read cell")
    ap.add_argument("--rounds", type=int, default=6,
                    help="alternating rounds per comparison (even: each side goes first "
                         "as often as the other)")
    ap.add_argument("--only", default="", help="comma list of row keys to run "
                    "(cached,direct,qd1,qd32,write,fsync)")
    a = ap.parse_args()
    if shutil.which("fio") is None:
        print("fio is not installed; apt-get install fio", file=sys.stderr)
        return 2
    only = set(filter(None, a.only.split(",")))
    size = parse_size(a.size)
    t = target.prepare(a.target)
    d = t.subdir("bench-engines")
    files = [d / "f0.dat", d / "f1.dat"]
    native.layout(files, size)
    os.sync()
    r = a.rounds
    rows: list[tuple[str, dict[str, Any], str, float, str]] = []
    noise: list[str] = []
    la0 = os.getloadavg()
    t_start = time.monotonic()

    def seq(jobs: int, direct: bool) -> IOSpec:
        return IOSpec(pattern="seqread", size=size, block_size=1 << 20,
                      files=tuple(files[:jobs]), jobs=jobs, direct=direct)

    if not only or "cached" in only:
        pin = Pin(files)
        print(f"cached rounds: {pin.residency['resident_pct']:.1f}% of the files resident "
              f"({pin.residency['method']}), pinned by this script's mappings")
        res = paired(lambda: nat(seq(1, False)),
                     lambda: {"bps": dd_read(files[:1]), "bytes": size}, 4 * r,
                     lambda x: x["bps"])
        rows.append(("cached seq read 1 MiB, 1 job", res, "dd bs=1M", 0.97, "GB/s"))
        res = paired(lambda: nat(seq(2, False)),
                     lambda: {"bps": dd_read(files), "bytes": 2 * size}, 4 * r,
                     lambda x: x["bps"])
        rows.append(("cached seq read 1 MiB, 2 jobs", res, "2 x dd bs=1M at once", 0.97,
                     "GB/s"))
        after = cache.residency(files)["resident_pct"]
        print(f"  after the cached rounds: {after:.1f}% resident")
        pin.close()

    if not only or "direct" in only:
        def fio_seq() -> dict[str, float]:
            args = []
            for i, f in enumerate(files):
                args += [f"--name=seq{i}", f"--filename={f}", "--rw=read", "--bs=1M",
                         "--direct=1", "--ioengine=psync", f"--size={size}"]
            return fio_sum(fio(args), "read")

        res = paired(lambda: nat(seq(2, True)), fio_seq, r, lambda x: x["bps"])
        rows.append(("O_DIRECT seq read 1 MiB, 2 jobs", res, "fio psync direct=1", 0.95,
                     "GB/s"))

    def rr(qd: int) -> dict[str, Any]:
        return nat(IOSpec(pattern="randread", size=size, block_size=4096, files=(files[0],),
                          jobs=1, queue_depth=qd, direct=True, runtime=a.runtime, seed=qd))

    def fio_rr(engine: str, qd: int) -> dict[str, float]:
        return fio_sum(fio(["--name=rr", f"--filename={files[0]}", "--rw=randread",
                            "--bs=4k", "--direct=1", f"--ioengine={engine}",
                            f"--iodepth={qd}", f"--size={size}", "--time_based",
                            f"--runtime={a.runtime}", "--randrepeat=0",
                            "--lat_percentiles=1"]), "read")

    if not only or "qd1" in only:
        res = paired(lambda: rr(1), lambda: fio_rr("psync", 1), r, lambda x: x["iops"])
        res["p50_overhead_us"] = statistics.median(
            (n["p50"] - f["p50"]) / 1e3 for n, f in zip(res["native"], res["ref"], strict=True))
        rows.append(("4 KiB rand read QD1, O_DIRECT", res, "fio psync", 0.97, "IOPS"))
    if not only or "qd32" in only:
        def rr_ring(kind: str, fixed: bool = True) -> dict[str, Any]:
            saved = list(aio._ring_kind)  # the probed queue, forced for this side
            aio._ring_kind[:] = [kind]
            os.environ["IOBENCH_URING_FIXED"] = "1" if fixed else "0"
            try:
                return rr(32)
            finally:
                aio._ring_kind[:] = saved
                os.environ.pop("IOBENCH_URING_FIXED", None)

        sides = [lambda: rr_ring("io_uring"), lambda: fio_rr("libaio", 32),
                 lambda: fio_rr("io_uring", 32), lambda: rr_ring("libaio"),
                 lambda: rr_ring("io_uring", fixed=False)]
        four = rotated(sides, 2 * r, lambda x: x["iops"])
        for (eng, goal), res in zip((("libaio", 0.95), ("io_uring", 0.85)), four[:2],
                                    strict=True):
            res["in_flight"] = statistics.median(x["in_flight"] for x in res["native"])
            res["little"] = statistics.median(x["mean"] / 1e9 * x["iops"]
                                              for x in res["native"])
            res["ref_little"] = statistics.median(x["mean"] / 1e9 * x["iops"]
                                                  for x in res["ref"])
            rows.append((f"4 KiB rand read QD32, O_DIRECT ({res['native'][0]['queue']})",
                         res, f"fio {eng} iodepth=32", goal, "IOPS"))
        # the noise floor on this host: the same figure between two fio engines, between
        # the native engine's two queues, and each side's own spread over the rounds
        fl, fu, nl, nf = four[0]["ref"], four[1]["ref"], four[2]["ref"], four[3]["ref"]
        nu = four[0]["native"]

        def per_round(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
            q = [x["iops"] / y["iops"] for x, y in zip(a, b, strict=True) if y["iops"]]
            return f"{statistics.median(q):.3f} ({min(q):.3f}-{max(q):.3f})"

        def spread(a: list[dict[str, Any]]) -> str:
            v = [x["iops"] for x in a]
            m = statistics.median(v)
            return f"{min(v) / m:.2f}-{max(v) / m:.2f} x median"

        noise.append("QD32 noise floor (same rounds): fio io_uring / fio libaio "
                     f"{per_round(fu, fl)}; native libaio ring / fio libaio "
                     f"{per_round(nl, fl)}; native io_uring / native libaio "
                     f"{per_round(nu, nl)}; native io_uring with / without registered "
                     f"buffers {per_round(nu, nf)} (CPU s/GB {four[0]['cpu_native']:.3f} / "
                     f"{four[3]['cpu_ref']:.3f}); run-to-run spread: fio libaio {spread(fl)}, "
                     f"fio io_uring {spread(fu)}, native io_uring {spread(nu)}, "
                     f"native libaio {spread(nl)}")

    if not only or "write" in only:
        wfile = d / "w0.dat"

        def nat_write() -> dict[str, Any]:
            wfile.unlink(missing_ok=True)
            os.sync()
            return nat(IOSpec(pattern="seqwrite", size=size, block_size=1 << 20,
                              files=(wfile,), jobs=1))

        def fio_write() -> dict[str, float]:
            wfile.unlink(missing_ok=True)
            os.sync()
            return fio_sum(fio(["--name=w", f"--filename={wfile}", "--rw=write", "--bs=1M",
                                "--ioengine=psync", f"--size={size}", "--end_fsync=1",
                                "--refill_buffers", "--buffer_compress_percentage=0"]),
                           "write")

        res = paired(nat_write, fio_write, r, lambda x: x["bps"])
        wfile.unlink(missing_ok=True)
        rows.append(("seq write 1 MiB + fsync", res, "fio end_fsync=1", 0.95, "GB/s"))
    fs = fio_end_fsync_check(d / "fs.dat", size) if not only or "fsync" in only else None

    la1 = os.getloadavg()
    print(f"\n{'pattern':48} {'native':>10} {'reference':>10} {'ratio':>7} {'min-max':>13}"
          f"  goal   against")
    for name, res, against, goal, unit in rows:
        div = 1e9 if unit == "GB/s" else 1.0
        key = "bps" if unit == "GB/s" else "iops"
        n = statistics.median(x[key] for x in res["native"]) / div
        f = statistics.median(x[key] for x in res["ref"]) / div
        mark = "ok" if res["ratio"] >= goal else "LOW"
        fmt = ".2f" if unit == "GB/s" else ",.0f"
        print(f"{name:48} {n:>10{fmt}} {f:>10{fmt}} {res['ratio']:7.3f} "
              f"{res['min']:6.3f}-{res['max']:5.3f}  >={goal} {against} [{mark}]")
        extra = []
        if "p50_overhead_us" in res:
            extra.append(f"p50 overhead {res['p50_overhead_us']:+.1f} us")
        if "in_flight" in res:
            extra.append(f"native in flight {res['in_flight']:.1f} (measured), "
                         f"{res['little']:.1f} (Little); fio {res['ref_little']:.1f} (Little)")
        if res.get("cpu_native") and res.get("cpu_ref"):
            extra.append(f"CPU s/GB native {res['cpu_native']:.3f}, reference "
                         f"{res['cpu_ref']:.3f} (ratio {res['cpu_native'] / res['cpu_ref']:.2f})")
        if extra:
            print(f"{'':48} " + "; ".join(extra))
    for line in noise:
        print(line)
    if fs:
        print("fio end_fsync check (same write, end_fsync=0 vs 1): JSON runtime "
              f"{fs['runtime_s_end_fsync0']:.2f} s vs {fs['runtime_s_end_fsync1']:.2f} s; "
              f"a sync after fio {fs['sync_after_s_end_fsync0']:.2f} s vs "
              f"{fs['sync_after_s_end_fsync1']:.2f} s: end_fsync is "
              + ("inside" if fs["runtime_s_end_fsync1"] > fs["runtime_s_end_fsync0"] +
                 fs["sync_after_s_end_fsync1"] else "NOT inside") + " fio's runtime")
    print(f"units: GB/s = 10^9 B/s, random reads in IOPS; ratio = median of the per-round "
          f"ratios of {r} alternating rounds ({4 * r} for the cached rows, {2 * r} rotating five "
          "ways for QD32: native io_uring, fio libaio, fio io_uring, native libaio, native "
          "io_uring without registered buffers), min-max; "
          f"{size / 2**20:.0f} MiB per file; native depth queue: "
          f"{aio.ring_kind() or 'python'}; load average {la0[0]:.1f} -> {la1[0]:.1f} on "
          f"{os.cpu_count()} cores; {time.monotonic() - t_start:.0f} s")
    shutil.rmtree(d)
    return 0 if all(res["ratio"] >= goal for _, res, _, goal, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
