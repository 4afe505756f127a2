"""`infer kvcache` chunk restores on huge-page vs base-page buffers, against fio with its
stock buffers and with huge-page buffers: what the buffers' physical layout does to
whole-chunk O_DIRECT reads (docs/kvcache.md, "Measured figures").

    .venv/bin/python benchmarks/kvcache_pages.py --target /mnt/nvme/ib-bench \
        [--chunk-tokens 16] [--rounds 6] [--runtime 1.5] [--fio-ramp 1]  (root: pagemap)

An O_DIRECT read reaches the device as one segment per physically contiguous run of its
buffer, and a block request carries at most max_segments of them. On 4 KiB pages the runs
are whatever the page allocator handed out; on transparent huge pages one per 2 MiB. For
each configuration (benchmarks/kvcache.py's: 32 MiB chunks at QD 4, 2 MiB at QD 16; both
layouts) one chunk set is written, then in rotating rounds of --runtime seconds each:
  restores     the replay's restore path (ChunkReads) on its buffers as shipped (huge pages);
  restores_4k  the same on base-page buffers (chunks.HUGE_PAGES off: the path before);
  fio          randread, bs = chunk, iodepth = QD, libaio, direct (jobfile_for_chunks),
               on fio's stock buffers;
  fio_huge     the same job with its buffers on huge pages, 2 MiB-aligned (glibc's
               glibc.malloc.hugetlb=1 tunable and iomem_align=2m): fio like for like;
  fio_huge_b   fio_huge again: the noise floor (fio against fio).
Every fio run has ramp_time = --fio-ramp s (default 1) before its --runtime s: fio never
touches its read buffers before its first reads, so those reads fault them in (at 32 MiB
its first QD reads took 200-224 ms against a 48 ms median, and at ~130 reads a round they
were its p99); the ramp resets fio's statistics when it ends (fio's manual: ramp_time;
fio time.c, ramp_time_over: reset_all_stats), as the restores' buffers are touched before
their timing starts. 0 gives the figures as before (start-up included).
Per run: GB/s (10^9 B/s), the chunk read p99 (restores: our histogram of submission to
reaping; fio: lat_ns, its submission to completion), the slowest read and the reads per
run (p99 is an order statistic: at ~130 reads a run it is the 2nd slowest), the block
requests per chunk read (the target's /sys/dev/block/MAJ:MIN/stat: other I/O on the
device counts too) and, for the restores, the median time of one read's io_submit. Printed
first: the physically contiguous runs of each restore buffer (/proc/self/pagemap: needs
root, else n/a). Ratios per round, median (min-max). O_DIRECT for all. Writes at most
--capacity (256 MiB) at a time under TARGET/kvcache-pages/, removed after.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from kvcache import cells, parse_args  # benchmarks/kvcache.py: the same sets and options

from iobench import model
from iobench.engines import chunks as chunk_io
from iobench.engines import fio as fio_mod
from iobench.kinds.kvcache import geometry
from iobench.kinds.kvcache import store as store_mod
from iobench.kinds.kvcache.engine import Engine, Options
from iobench.kinds.kvcache.run import compare_set
from iobench.kinds.kvcache.tiers import Tiers
from iobench.stats import Histogram, LatencyRecorder
from iobench.units import parse_size

ARMS = ["restores", "restores_4k", "fio", "fio_huge", "fio_huge_b"]


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def dev_stat(path: Path) -> Path | None:
    st = os.stat(path)
    p = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat")
    return p if p.exists() else None


def requests_done(stat: Path | None) -> int:
    return int(stat.read_text().split()[0]) if stat else 0  # reads completed


def runs_per_buffer(addr: int, nbytes: int) -> int | None:
    """Physically contiguous runs of [addr, addr + nbytes) (None without PFNs: not root)."""
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(addr // 4096 * 8)
        e = np.frombuffer(f.read(nbytes // 4096 * 8), dtype=np.uint64)
    pfn = (e & np.uint64((1 << 55) - 1)).astype(np.int64)
    if not pfn.any():
        return None
    return int((np.diff(pfn) != 1).sum()) + 1


def restores(eng: Engine, chunks: list[tuple[int, int, int]], runtime: float,
             cb: int) -> dict[str, Any]:
    """Whole-set restores for `runtime` s; also each read's io_submit time (the reaper
    submits: a slow submission holds the next read back)."""
    assert eng.aio is not None, "needs Linux AIO"
    w, ctx = eng.aio.w, eng.aio.ctx
    w.rec["compare"] = LatencyRecorder()
    submit = ctx.submit_slot
    sub_ns: list[int] = []

    def timed_submit(i: int) -> None:
        a = time.monotonic_ns()
        submit(i)
        sub_ns.append(time.monotonic_ns() - a)

    ctx.submit_slot = timed_submit  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    t0 = time.monotonic_ns()
    try:
        while time.monotonic_ns() < t0 + int(runtime * 1e9):
            eng.restore_once([chunks[i] for i in rng.permutation(len(chunks))])
    finally:
        del ctx.submit_slot
    s = (time.monotonic_ns() - t0) / 1e9
    h = Histogram.merged([w.rec["compare"].flush()])
    return {"gb_per_s": h.count * cb / s / 1e9, "p99_ms": (h.percentile(99) or 0.0) / 1e6,
            "max_ms": (h.max or 0) / 1e6, "ops": h.count,
            "submit_us": float(np.median(sub_ns)) / 1e3 if sub_ns else 0.0}


def fio_run(st: store_mod.Store, chunks: list[tuple[int, int, int]], cb: int, qd: int,
            runtime: float, ramp: float, huge: bool, out: Path) -> dict[str, Any]:
    """fio on the set (jobfile_for_chunks), on its stock buffers or on huge pages
    (huge_buffers: iomem_align=2m and glibc's hugetlb tunable): GB/s, chunk p99 (fio's
    lat_ns), the slowest read, reads."""
    files, file_bytes = st.fio_files(chunks)
    text = fio_mod.jobfile_for_chunks(st.root, files, file_bytes=file_bytes,
                                      chunk_sizes={cb: 1}, iodepth=qd, runtime_s=runtime,
                                      ramp_s=ramp, huge_buffers=huge)
    env = {**os.environ, **(fio_mod.huge_buffers_env() if huge else {})}
    job = out / "job.fio"
    job.write_text(text)
    r = subprocess.run(["fio", "--output-format=json", str(job)], capture_output=True,
                       text=True, env=env, cwd=st.root, check=True,
                       timeout=runtime + ramp + 60)
    rd = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]["read"]
    return {"gb_per_s": rd["bw_bytes"] / 1e9,
            "p99_ms": rd["lat_ns"]["percentile"]["99.000000"] / 1e6,
            "max_ms": rd["lat_ns"]["max"] / 1e6, "ops": rd["total_ios"]}


def bench(root: Path, name: str, tokens: int, qd: int, layout: str, capacity: int,
          rounds: int, runtime: float, ramp: float) -> list[str]:
    g = geometry.geometry(model.load(name), tokens)
    cb = g.chunk_bytes
    slots = capacity // cb
    st = store_mod.make(layout, root / layout, g, slots)
    engs: dict[str, Engine] = {}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ARMS}
    stat = dev_stat(root)
    layout_lines = []
    try:
        if isinstance(st, store_mod.Slab):
            st.open()
        for arm, huge in (("restores", True), ("restores_4k", False)):
            chunk_io.HUGE_PAGES = huge
            engs[arm] = Engine(st, g, Tiers(0, slots, 1, False),
                               Options(users=1, queue_depth=qd), 0)
            runs_ = [runs_per_buffer(a, cb) for a in engs[arm].pool.buffers.addrs]
            layout_lines.append(f"  {arm} buffers' physically contiguous runs: "
                                + (" ".join(map(str, runs_)) if None not in runs_ else "n/a"))
        chunk_io.HUGE_PAGES = True
        chunks = compare_set(st)
        engs["restores"].write_set(chunks)
        steps = {
            "restores": lambda: restores(engs["restores"], chunks, runtime, cb),
            "restores_4k": lambda: restores(engs["restores_4k"], chunks, runtime, cb),
            "fio": lambda: fio_run(st, chunks, cb, qd, runtime, ramp, False, root),
            "fio_huge": lambda: fio_run(st, chunks, cb, qd, runtime, ramp, True, root),
            "fio_huge_b": lambda: fio_run(st, chunks, cb, qd, runtime, ramp, True, root),
        }
        for i in range(rounds):
            k = i % len(ARMS)
            for arm in (ARMS[k:] + ARMS[:k])[::(-1 if i % 2 else 1)]:
                a = requests_done(stat)
                ph = steps[arm]()
                ph["requests_per_chunk"] = (requests_done(stat) - a) / max(1, ph["ops"])
                runs[arm].append(ph)
    finally:
        for e in engs.values():
            e.close()
        st.close(keep=False)
    lines = [f"{name} {tokens} tokens = {cb / 2**20:g} MiB chunks, {layout} ({len(chunks)} "
             f"chunks), QD {qd}, {rounds} rotating rounds of {runtime:g} s, fio after a "
             f"{ramp:g} s ramp (median, min-max):", *layout_lines]
    for arm in ARMS:
        r = runs[arm]
        lines.append(f"  {arm:11} GB/s {spread([x['gb_per_s'] for x in r])}  p99 ms "
                     f"{spread([x['p99_ms'] for x in r])}  max ms "
                     f"{spread([x['max_ms'] for x in r])}  reads "
                     f"{statistics.median([x['ops'] for x in r]):g}  block requests per chunk "
                     + (spread([x['requests_per_chunk'] for x in r]) if stat else "n/a")
                     + (f"  io_submit us (median) {spread([x['submit_us'] for x in r])}"
                        if "submit_us" in r[0] else ""))
    for arm, ref in (("restores", "fio"), ("restores", "fio_huge"), ("restores_4k", "fio"),
                     ("fio", "fio_huge"), ("fio_huge_b", "fio_huge")):
        pairs = list(zip(runs[arm], runs[ref], strict=True))
        gbs = [x["gb_per_s"] / y["gb_per_s"] for x, y in pairs]
        p99 = [x["p99_ms"] / y["p99_ms"] for x, y in pairs]
        lines.append(f"    {arm} / {ref} per round: GB/s {spread(gbs)}, p99 {spread(p99)}")
    return lines


def main() -> int:
    a = parse_args(__doc__ or "", 6, 1.5)
    if a is None:
        return 2
    if shutil.which("fio") is None:
        raise SystemExit("fio not found on PATH: install fio")
    root = a.target / "kvcache-pages"
    if root.exists():
        raise SystemExit(f"{root} exists; remove it or give another --target")
    root.mkdir(parents=True)
    try:
        for name, tokens, qd, layout in cells(a):
            print("\n".join(bench(root, name, tokens, qd, layout, parse_size(a.capacity),
                                  a.rounds, a.runtime, a.fio_ramp)), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
