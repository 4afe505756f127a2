"""Small random reads over a file set (embedding / KV / vector lookups): one cell per
block size x queue depth, native (iobench.engines.randfiles) or fio on the same files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iobench.engines import randfiles
from iobench.errors import UsageError
from iobench.results import make_phase
from iobench.units import format_bytes


def file_set(root: Path, count: int) -> list[Path]:
    return [root / f"file-{i:03d}.dat" for i in range(count)]


def cell_name(block_size: int, queue_depth: int) -> str:
    return f"randread bs={format_bytes(block_size).replace(' ', '')} qd={queue_depth}"


def cell_key(block_size: int, queue_depth: int) -> str:
    """The `{cell}` of a cell's result metrics: randread.bs4096.qd4."""
    return f"randread.bs{block_size}.qd{queue_depth}"


def check(block_sizes: Sequence[int], file_size: int, direct: bool) -> None:
    for bs in block_sizes:
        if direct and bs % 4096:
            raise UsageError(f"--block-size {bs}: O_DIRECT (--cache direct) needs a multiple "
                             "of 4096; use e.g. 4k, 16k, or --cache drop")
        if bs > file_size:
            raise UsageError(f"--block-size {format_bytes(bs)} is larger than --file-size "
                             f"{format_bytes(file_size)}; give a larger --file-size")


def native_cell(files: Sequence[Path], block_size: int, queue_depth: int, runtime_s: float,
                direct: bool, seed: int = 0) -> dict[str, Any]:
    """One cell on the native engine (iobench.engines.randfiles), as a phase."""
    r = randfiles.run(files, block_size, queue_depth, runtime_s, direct, seed)
    return make_phase(cell_name(block_size, queue_depth), nbytes=r.bytes, seconds=r.seconds,
                      ops=r.ops, latency=r.latency, engine="native", direction="read",
                      metrics={"block_bytes": block_size, "queue_depth": queue_depth,
                               "direct": direct, "threads": r.threads, "queue": r.queue,
                               **({"in_flight_mean": r.in_flight_mean}
                                  if r.in_flight_mean is not None else {})})


def fio_jobfile(files: Sequence[Path], block_size: int, queue_depth: int, runtime_s: float,
                direct: bool, ioengine: str, file_size: int) -> str:
    """One fio job, `queue_depth` I/Os in flight over all files (the native total)."""
    from iobench.engines import fio

    return fio.jobfile_random_files(files, block_size=block_size, iodepth=queue_depth,
                                    runtime_s=runtime_s, direct=direct, ioengine=ioengine,
                                    file_size=file_size,
                                    name=cell_name(block_size, queue_depth))


def fio_cell(files: Sequence[Path], block_size: int, queue_depth: int, runtime_s: float,
             direct: bool, ioengine: str, file_size: int, workdir: Path) -> dict[str, Any]:
    from iobench.engines import fio

    name = cell_name(block_size, queue_depth)
    text = fio_jobfile(files, block_size, queue_depth, runtime_s, direct, ioengine, file_size)
    doc = fio.run_fio(text, workdir)
    phase = fio.parse(doc, name=name)[0]
    phase["metrics"].update({"block_bytes": block_size, "queue_depth": queue_depth,
                             "direct": direct, "ioengine": ioengine})
    phase["fio"] = {"jobfile": text, "command": (doc.get("iobench") or {}).get("command")}
    return phase
