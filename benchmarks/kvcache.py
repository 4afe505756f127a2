"""`infer kvcache` chunk restores against fio on the same chunk files, same block size
(one chunk) and same iodepth (--queue-depth), O_DIRECT both.

    .venv/bin/python benchmarks/kvcache.py --target /mnt/nvme/ib-bench [--rounds 8]

For each configuration one set of chunks is written once (as `infer kvcache --engine fio`
does after its replay: up to 64 chunk files, or the slots of one slab file), then random
whole-chunk reads run for --runtime seconds natively (the replay's pool: queue-depth
workers, one O_DIRECT pread of a chunk each) and with fio (randread, bs = chunk,
iodepth = queue depth, libaio, direct=1), alternating which goes first, --rounds pairs.
Short alternating pairs, because a shared machine's disk moves by more than the
difference being measured; the ratio is taken per pair and its median reported with the
min-max. Goals (issue 15): native / fio GB/s >= 0.9 and native chunk p99 <= 1.1 x fio's.
Writes at most --capacity (256 MiB) at a time under TARGET/kvcache-bench/, removed after.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

from iobench import model
from iobench.engines import fio
from iobench.kinds.kvcache import geometry
from iobench.kinds.kvcache import run as kvrun
from iobench.kinds.kvcache import store as store_mod
from iobench.kinds.kvcache.engine import COMPARE_UID, Engine, Options
from iobench.kinds.kvcache.tiers import Tiers
from iobench.units import parse_size

CONFIGS = [  # (model, chunk tokens, queue depth): 32 MiB chunks (LMCache), 2 MiB (vLLM-ish)
    ("llama3-8b", 256, 4),
    ("llama3-8b", 16, 16),
]


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def bench(root: Path, name: str, tokens: int, qd: int, layout: str, capacity: int,
          rounds: int, runtime: float) -> tuple[bool, list[str]]:
    g = geometry.geometry(model.load(name), tokens)
    slots = capacity // g.chunk_bytes
    st = store_mod.make(layout, root / layout, g, slots)
    eng = None
    try:
        n = min(slots, kvrun.COMPARE_CHUNKS)
        if isinstance(st, store_mod.Slab):
            st.open()
            n = min(n, st.per_file)
        eng = Engine(st, g, Tiers(0, slots, 1, False), Options(users=1, queue_depth=qd), 0)
        chunks = [(COMPARE_UID + j, 1, j) for j in range(n)]
        eng.write_set(chunks)
        files, file_bytes = st.fio_files(chunks)
        job = kvrun.fio_jobfile(st.root, files, file_bytes, g.chunk_bytes, qd, runtime, layout)
        nat: list[dict] = []
        fp: list[dict] = []
        for i in range(rounds):
            def native() -> None:
                nat.append(eng.compare_native(chunks, runtime))

            def with_fio() -> None:
                fp.append(fio.parse(fio.run_fio(job, st.root), name="fio")[0])

            for step in ((with_fio, native) if i % 2 else (native, with_fio)):
                step()
    finally:
        if eng is not None:
            eng.close()
        st.close(keep=False)
    ratio = [a["gb_per_s"] / b["gb_per_s"] for a, b in zip(nat, fp, strict=True)]
    p99 = [a["latency_ns"]["p99"] / b["latency_ns"]["p99"] for a, b in zip(nat, fp, strict=True)]
    good = statistics.median(ratio) >= 0.9 and statistics.median(p99) <= 1.1
    mib = g.chunk_bytes / 2**20
    return good, [
        f"{name} {tokens} tokens = {mib:g} MiB chunks, {layout} ({n} chunks), QD {qd}, "
        f"{rounds} alternating pairs of {runtime:g} s (median, min-max):",
        f"  GB/s native {spread([a['gb_per_s'] for a in nat])}  fio "
        f"{spread([b['gb_per_s'] for b in fp])}",
        f"  chunk p99 ms native {spread([a['latency_ns']['p99'] / 1e6 for a in nat])}  fio "
        f"{spread([b['latency_ns']['p99'] / 1e6 for b in fp])}",
        f"  per pair: native/fio GB/s {spread(ratio)} (>= 0.9), p99 native/fio {spread(p99)} "
        f"(<= 1.1)  {'ok' if good else 'MISSED'}",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--runtime", type=float, default=2.0)
    ap.add_argument("--capacity", default="256MiB")
    a = ap.parse_args()
    root = a.target / "kvcache-bench"
    if root.exists():
        raise SystemExit(f"{root} exists; remove it or give another --target")
    ok = True
    try:
        for name, tokens, qd in CONFIGS:
            for layout in ("file-per-chunk", "slab"):
                good, lines = bench(root, name, tokens, qd, layout, parse_size(a.capacity),
                                    a.rounds, a.runtime)
                ok = ok and good
                print("\n".join(lines), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
