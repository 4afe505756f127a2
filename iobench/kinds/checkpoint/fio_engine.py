"""Checkpoint writes and restores by fio: the same bytes per rank, one fio job per rank
(numjobs = ranks), each writing one file with end_fsync=1, so fio's figures sit beside the
native writer's on the same target. fio writes its own content, so restores read fio's
files back without verification."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from iobench import safepath
from iobench.kinds.checkpoint.rankio import CHUNK

if TYPE_CHECKING:
    from iobench.kinds.checkpoint.plan import Plan


def jobfile(sizes: list[tuple[int, Path, int]], *, rw: str, direct: bool,
            block_size: int = CHUNK) -> str:
    """fio job text: one job per (rank, file, bytes), all running at once
    (iobench.engines.fio.jobfile_per_file)."""
    from iobench.engines import fio

    return fio.jobfile_per_file([(f"rank{r}", path, n) for r, path, n in sizes], rw=rw,
                                direct=direct, block_size=block_size,
                                title=f"checkpoint {rw}, one job per rank")


def _phase(doc: dict[str, Any], name: str, direction: str, ranks: list[int], step: int,
           index: int, path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    from iobench.engines import fio

    phases = [p for p in fio.parse(doc, name=name) if p["direction"] == direction]
    phase = phases[0]
    phase["name"] = name
    rows: list[dict[str, Any]] = []
    for job in doc.get("jobs") or []:
        blk = job.get(direction) or {}
        secs = int(blk.get("runtime", 0)) / 1000
        nbytes = int(blk.get("io_bytes", 0))
        rank = int(str(job.get("jobname", "rank0"))[4:] or 0)
        rows.append({"rank": rank, "bytes": nbytes, "files": 1, "seconds": secs,
                     "bytes_per_s": nbytes / secs if secs > 0 else 0.0,
                     "fsync_s": None, "stall_s": None})
    busy = [float(r["bytes_per_s"]) for r in rows if r["bytes"] > 0]
    span = max((float(r["seconds"]) for r in rows), default=0.0)
    phase["metrics"].update({
        "checkpoint": index, "step": step, "path": str(path), "ranks": rows,
        "duration_max_s": span, "rank_min_bytes_per_s": min(busy) if busy else 0.0,
        # fio starts its jobs together and reports each one's runtime: the span is the
        # slowest job's (fio has no common end timestamp to do better)
        "aggregate_bytes_per_s": phase["bytes"] / span if span > 0 else 0.0,
        "fsync_max_s": None, **extra,
    })
    return phase


def write(plan: Plan, step_path: Path, direct: bool, index: int, step: int) -> dict[str, Any]:
    from iobench.engines import fio

    sizes = [(r, step_path / f"fio_rank{r}.dat", b) for r, b in plan.bytes_per_rank.items()
             if b > 0]
    for _, path, _ in sizes:
        safepath.check_writable(path)
    text = jobfile(sizes, rw="write", direct=direct)
    doc = fio.run_fio(text, step_path)
    return _phase(doc, f"write-{index}", "write", [r for r, _, _ in sizes], step, index,
                  step_path, {"jobfile": text, "includes_end_fsync": True})


def read(plan: Plan, step_path: Path, direct: bool, index: int, step: int,
         rank_shift: int) -> dict[str, Any]:
    from iobench.engines import fio

    files = sorted(step_path.glob("fio_rank*.dat"), key=lambda p: int(p.stem[8:]))
    n = len(files)
    sizes = [(i, files[(i + rank_shift) % n], 0) for i in range(n)]
    text = jobfile(sizes, rw="read", direct=direct)
    doc = fio.run_fio(text, step_path)
    phase = _phase(doc, f"read-{index}", "read", list(range(n)), step, index, step_path,
                   {"jobfile": text, "rank_shift": rank_shift, "verified_files": 0,
                    "verify_errors": 0, "note": "fio's content: not verified"})
    for row in phase["metrics"]["ranks"]:
        row["source_rank"] = int(files[(row["rank"] + rank_shift) % n].stem[8:])
    return phase
