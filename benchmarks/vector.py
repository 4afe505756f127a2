#!/usr/bin/env python3
"""`infer vector`: is the harness the bottleneck? Two comparisons, in one run, alternating
rounds, medians with min-max (issue 16):

A. mode 2 (the DiskANN read pattern, native AIO) vs fio randread (libaio, O_DIRECT) on the
   same file at the same effective queue depth: per-read p99 and IOPS (goal: within 10%).
   The pattern's effective depth is measured (Little's law: IOPS x mean read latency),
   because the rounds' dependency leaves slots idle; fio runs at that depth rounded.
   Three shapes: 1 hop x 1 read x 32 queries (no rounds: the harness alone, same shape as
   fio), 1 x 4 x 8 (reads issued and awaited in groups of 4), 8 x 4 x 8 (DiskANN-like).
B. mode 1 (a real DiskANN index): QPS with iobench's per-query timing wrapper vs
   diskannpy's own batch_search (one thread, the same queries, warm) (goal: >= 0.95),
   interleaved in blocks of 50 queries; with every hop reading storage ("storage") and
   with every node in DiskANN's RAM cache ("cached": CPU-bound, the harness's share at
   its largest); then P searcher processes (--search-procs) vs batch_search on P threads.

    python benchmarks/vector.py --target /tmp/vbench [--size 256MiB] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from iobench.engines import batch, native
from iobench.kinds.vector import data, engine, fleet
from iobench.units import parse_size


def fio_randread(path: Path, size: int, bs: int, qd: int, runtime: float,
                 ioengine: str = "libaio") -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["fio", "--name=r", f"--filename={path}", f"--size={size}",
                        "--rw=randread", f"--bs={bs}", f"--ioengine={ioengine}", "--direct=1",
                        f"--iodepth={qd}", "--randrepeat=0", "--norandommap=1",
                        "--time_based=1", f"--runtime={int(runtime * 1000)}ms",
                        "--invalidate=0", "--lat_percentiles=1",
                        "--percentile_list=50:99", "--output-format=json",
                        f"--output={out.name}"], check=True, capture_output=True)
        text = Path(out.name).read_text()
    j = json.loads(text[text.index("{"):])["jobs"][0]["read"]
    pct = j["lat_ns"]["percentile"]
    return {"iops": j["total_ios"] / (j["runtime"] / 1e3), "p99_us": pct["99.000000"] / 1e3}


def pattern_cell(path: Path, bs: int, hops: int, beam: int, conc: int,
                 runtime: float, queue: str | None = None) -> dict[str, float]:
    r = batch.run_rounds(path, block_size=bs, rounds=hops, batch=beam, streams=conc,
                         runtime_s=runtime, queue=queue)
    rh = r["read_hist"]
    iops = r["reads"] / r["seconds"]
    return {"iops": iops, "p99_us": rh.percentile(99) / 1e3, "qps": r["streams"] / r["seconds"],
            "effective_qd": r.get("in_flight_mean") or iops * rh.mean / 1e9}


def machine() -> dict[str, Any]:
    """What the figures were measured on (and how loaded it was), and the queue used."""
    import datetime
    import os
    import platform

    from iobench.engines import batch as b

    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                   platform.processor())
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"date_utc": now.isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "load_avg": os.getloadavg(), "queue": b.queue_kind(),
            "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "cache": "O_DIRECT for both (host page cache bypassed; the virtual disk's own "
                     "host-side cache is not cleared)"}


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def part_a(root: Path, size: int, rounds: int, runtime: float) -> list[dict[str, Any]]:
    """Each shape on each queue the kernel allows, beside fio with the same ioengine
    (io_uring vs io_uring, libaio vs libaio) at the pattern's measured effective depth."""
    from iobench.engines import aio

    path = root / "index.dat"
    if not path.exists() or path.stat().st_size != size:
        native.layout([path], size, seed=0x7EC)
    queues = [q for q in ("io_uring", "libaio") if aio.ring_kind() is not None and
              _ring_ok(q)]
    out = []
    for queue in queues:
        for hops, beam, conc in ((1, 1, 32), (1, 4, 8), (8, 4, 8)):
            pre = pattern_cell(path, 4096, hops, beam, conc, min(runtime, 2.0), queue)
            qd = max(1, round(pre["effective_qd"]))
            nat: list[dict[str, float]] = []
            ref: list[dict[str, float]] = []
            for i in range(rounds):  # alternate who goes first (a host cache favours one)
                for who in ("native", "fio") if i % 2 == 0 else ("fio", "native"):
                    if who == "native":
                        nat.append(pattern_cell(path, 4096, hops, beam, conc, runtime, queue))
                    else:
                        ref.append(fio_randread(path, size, 4096, qd, runtime, queue))
            row: dict[str, Any] = {
                "queue": queue, "hops": hops, "beam": beam, "concurrency": conc,
                "nominal_qd": beam * conc,
                "effective_qd": statistics.median(n["effective_qd"] for n in nat),
                "fio_iodepth": qd,
                "native_iops": summary([n["iops"] for n in nat]),
                "fio_iops": summary([r["iops"] for r in ref]),
                "native_p99_us": summary([n["p99_us"] for n in nat]),
                "fio_p99_us": summary([r["p99_us"] for r in ref]),
                "native_qps": summary([n["qps"] for n in nat]),
                # each round's pair ran back to back: their ratio cancels slow drift
                "paired_iops_ratio": summary([n["iops"] / r["iops"]
                                              for n, r in zip(nat, ref, strict=True)]),
                "paired_p99_ratio": summary([n["p99_us"] / r["p99_us"]
                                             for n, r in zip(nat, ref, strict=True)])}
            row["iops_ratio"] = row["native_iops"]["median"] / row["fio_iops"]["median"]
            row["p99_ratio"] = row["native_p99_us"]["median"] / row["fio_p99_us"]["median"]
            out.append(row)
    return out


def _ring_ok(kind: str) -> bool:
    from iobench.engines import aio

    try:
        aio.fastio().Ring(kind, 1, 4096).close()
    except OSError:
        return False
    return True


def _interleaved(s: Any, q: np.ndarray, rounds: int, block: int) -> dict[str, Any]:
    """The wrapper (`Searcher.run`: each query timed) vs `batch_search` (one thread) on the
    same queries, in blocks of `block` queries, each block searched by both back to back
    (which goes first alternates by block and round): drift of the disk between the two
    sides is limited to one block (~0.1 s). Per round: batch seconds / wrapper seconds."""
    ours_s: list[float] = []
    theirs_s: list[float] = []
    for r in range(rounds):
        mine = theirs = 0.0
        for k, lo in enumerate(range(0, len(q), block)):
            qb = q[lo:lo + block]
            for who in ("ours", "batch") if (k + r) % 2 == 0 else ("batch", "ours"):
                if who == "ours":
                    mine += s.run(qb, 64, 4, None)["seconds"]
                else:
                    theirs += s.batch(qb, 64, 4, threads=1)[0]
        ours_s.append(mine)
        theirs_s.append(theirs)
    ratios = [t / m for m, t in zip(ours_s, theirs_s, strict=True)]
    nq = len(q)
    return {"iobench_qps": summary([nq / x for x in ours_s]),
            "batch_search_qps": summary([nq / x for x in theirs_s]),
            "ratio": summary(ratios),
            "overhead_us_per_query": summary([(m - t) / nq * 1e6
                                              for m, t in zip(ours_s, theirs_s, strict=True)])}


def part_b(root: Path, rounds: int, n: int, dim: int, nq: int) -> dict[str, Any]:
    import diskannpy  # noqa: F401  (the [vector] extra)

    mix = data.Mixture(dim, data.default_clusters(n), 0)
    vec = root / "vectors.bin"
    idx = root / "index"
    log = root / "diskann.log"
    if not (idx / "ann_disk.index").exists():
        data.write_vectors(vec, mix, n)
        shutil.rmtree(idx, ignore_errors=True)
        idx.mkdir()
        engine.build(vec, idx, n, dim, engine.BuildParams("l2", 32, 64, max(8, dim // 8), 2),
                     log)
    q = mix.sample(nq, 1, 0)
    cells: dict[str, Any] = {}
    # "storage": no node cache, every hop reads the index (O_DIRECT); "cached": every node
    # in DiskANN's RAM cache, no reads, CPU-bound: the harness's share is largest there
    for name, cache_nodes in (("storage", 0), ("cached", n)):
        s = engine.Searcher(idx, "l2", dim, cache_nodes, log, threads=4)
        try:
            s.run(q, 64, 4, None)  # warm both alike
            _, ids_b = s.batch(q, 64, 4, threads=1)
            r = s.run(q, 64, 4, None)
            cell = _interleaved(s, q, rounds, 50)
            cell["same_neighbours"] = bool(np.array_equal(r["found"], ids_b.astype(np.int64)))
            cells[name] = cell
            if name != "storage":
                continue
            # concurrency: P searcher processes of iobench (each query timed) vs
            # batch_search on P threads (its OpenMP threads), alternating, the same queries
            curve = []
            for t in (1, 2, 4):
                f = fleet.SearcherFleet(idx, "l2", dim, 0, log, q, t)
                try:
                    f.start()
                    f.run(64, 4)  # warm
                    ours_t: list[float] = []
                    p99_t: list[float] = []
                    batch_t: list[float] = []
                    for i in range(rounds):
                        for who in ("ours", "batch") if i % 2 == 0 else ("batch", "ours"):
                            if who == "ours":
                                rt = f.run(64, 4)
                                ours_t.append(nq / rt["seconds"])
                                p99_t.append(rt["hist"].percentile(99) / 1e3)
                            else:
                                secs, _ = s.batch(q, 64, 4, threads=t)
                                batch_t.append(nq / secs)
                finally:
                    f.close()
                curve.append({"procs": t, "iobench_qps": summary(ours_t),
                              "iobench_p99_us": summary(p99_t),
                              "batch_search_qps": summary(batch_t),
                              "ratio": statistics.median(ours_t) / statistics.median(batch_t)})
            cell["procs"] = curve
        finally:
            s.close()
    return {"vectors": n, "dim": dim, "queries": nq, "beam_width": 4, "complexity": 64,
            "block": 50, **cells}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=Path, required=True)
    ap.add_argument("--size", default="256MiB")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runtime", type=float, default=2.0)
    ap.add_argument("--vectors", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--parts", default="a,b", help="a: pattern vs fio; b: mode 1 wrapper vs "
                    "batch_search (and searcher processes)")
    a = ap.parse_args()
    a.target.mkdir(parents=True, exist_ok=True)
    parts = set(a.parts.split(","))
    doc: dict[str, Any] = {"machine": machine()}
    if "a" in parts:
        doc["a_pattern_vs_fio"] = part_a(a.target, parse_size(a.size), a.rounds, a.runtime)
    if "b" in parts:
        doc["b_wrapper_vs_batch_search"] = part_b(a.target, a.rounds, a.vectors, a.dim,
                                                  a.queries)
    print(json.dumps(doc, indent=1))
    for row in doc.get("a_pattern_vs_fio", []):
        print(f"A {row['queue']} hops={row['hops']} W={row['beam']} C={row['concurrency']}: "
              f"effective QD {row['effective_qd']:.1f} (fio iodepth {row['fio_iodepth']}); IOPS "
              f"{row['native_iops']['median']:.0f} vs fio {row['fio_iops']['median']:.0f} "
              f"(x{row['iops_ratio']:.3f}); read p99 {row['native_p99_us']['median']:.0f} us "
              f"vs fio {row['fio_p99_us']['median']:.0f} us (x{row['p99_ratio']:.3f}); paired "
              f"IOPS ratio {row['paired_iops_ratio']['median']:.3f}")
    if "b_wrapper_vs_batch_search" not in doc:
        return
    b = doc["b_wrapper_vs_batch_search"]
    for name in ("storage", "cached"):
        c = b[name]
        print(f"B {name}: QPS per-query wrapper {c['iobench_qps']['median']:.0f} vs "
              f"batch_search {c['batch_search_qps']['median']:.0f}; paired ratio "
              f"{c['ratio']['median']:.3f} ({c['ratio']['min']:.3f}-{c['ratio']['max']:.3f}); "
              f"overhead {c['overhead_us_per_query']['median']:.1f} us/query; same "
              f"neighbours: {c['same_neighbours']}")
    for c in b["storage"]["procs"]:
        print(f"B P={c['procs']}: iobench processes {c['iobench_qps']['median']:.0f} queries/s "
              f"(p99 {c['iobench_p99_us']['median']:.0f} us) vs batch_search "
              f"{c['batch_search_qps']['median']:.0f} (x{c['ratio']:.3f})")


if __name__ == "__main__":
    main()
