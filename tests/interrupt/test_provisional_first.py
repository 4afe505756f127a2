"""The provisional result exists before a run's first collective across MPI ranks.

A world of two ranks seen from rank 0 (no mpirun: the order is what is tested, and it is
deterministic here) whose first collective finds out whether result.json exists yet, then
stops the run as mpirun does when a peer was killed (SIGTERM to rank 0). The run must end
with a failed result on disk, not with nothing. Every kind's `execute` belongs in KINDS
(see STRUCTURE.md, "Provisional result first")."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iobench import dist, interrupt
from iobench.kinds import (
    checkpoint,
    datagen,
    fio,
    infer_load,
    infer_randread,
    io,
    kvcache,
    train,
    vector,
)
from iobench.kinds.base import Ctx, RunOptions


class _Stopped(dist.World):
    """Rank 0 of 2; its first collective records what was on disk, then is interrupted."""

    rank = 0
    size = 2

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = results_dir
        self.seen: list[tuple[str, list[Path]]] = []
        self.peers = []
        self.missing = []

    def _collective(self, what: str) -> None:
        self.seen.append((what, sorted(self.results_dir.glob("*/result.json"))))
        raise interrupt.Terminated()

    def barrier(self, what: str = "a barrier") -> None:
        self._collective("barrier")

    def gather(self, obj: Any) -> Any:
        self._collective("gather")

    def allgather(self, obj: Any) -> Any:
        self._collective("allgather")

    def bcast(self, obj: Any) -> Any:
        self._collective("bcast")

    def gather_peers(self) -> None:
        self._collective("gather_peers")


def _io(target: Path, options: RunOptions, ctx: Any) -> Any:
    spec = io.build(pattern="seqread", size="256KiB", block_size="64KiB", cache="allow")
    return io.execute(spec, options, ctx)


def _fio(target: Path, options: RunOptions, ctx: Any) -> Any:
    job = target.parent / "j.fio"
    job.write_text("[r]\nrw=read\nsize=64k\nbs=4k\n")
    return fio.execute(fio.build(job), options, ctx)


def _kvcache(target: Path, options: RunOptions, ctx: Any) -> Any:
    spec = kvcache.build(model="tiny", capacity="4MiB", users=1, requests=2, search=False,
                         queue_depth=2)
    return kvcache.execute(spec, options, ctx)


def _vector(target: Path, options: RunOptions, ctx: Any) -> Any:
    spec = vector.build(index_size="1MiB", hops=2, concurrency="2", runtime="0.1s")
    return vector.execute(spec, options, ctx)


def _checkpoint(target: Path, options: RunOptions, ctx: Any) -> Any:
    return checkpoint.execute(checkpoint.build(model="tiny", count=1, cache="allow"),
                              options, ctx)


def _datagen(target: Path, options: RunOptions, ctx: Any) -> Any:
    return datagen.execute(datagen.build(workload="tiny", jobs=1), options, ctx)


def _train(target: Path, options: RunOptions, ctx: Any) -> Any:
    # a data set on the target, written by a world of one: the target is ready, so only
    # the order of the provisional result and the first collective decides
    made = datagen.execute(datagen.build(workload="tiny", jobs=1),
                           RunOptions(target=target, results_dir=target.parent / "dg"))
    assert made.code == 0, made.message
    return train.execute(train.build(workload="tiny", epochs=1, cache="allow"), options, ctx)


def _infer_load(target: Path, options: RunOptions, ctx: Any) -> Any:
    spec = infer_load.build(model="tiny", precisions="bf16", methods="pread", chunk="256k")
    return infer_load.execute(spec, options, ctx)


def _infer_randread(target: Path, options: RunOptions, ctx: Any) -> Any:
    spec = infer_randread.build(file_size="64KiB", files=2, block_sizes="4k",
                                queue_depths="1", runtime="0.05s", cache="allow")
    return infer_randread.execute(spec, options, ctx)


KINDS: dict[str, Callable[[Path, RunOptions, Any], Any]] = {
    "checkpoint": _checkpoint,
    "datagen": _datagen,
    "fio": _fio,
    "infer-load": _infer_load,
    "infer-randread": _infer_randread,
    "io": _io,
    "kvcache": _kvcache,
    "train": _train,
    "vector": _vector,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_provisional_result_is_written_before_the_first_collective(tmp_path, kind):
    res = tmp_path / "r"
    w = _Stopped(res)
    options = RunOptions(target=tmp_path / "t", results_dir=res)
    try:
        out = KINDS[kind](tmp_path / "t", options, Ctx(world=w))
    except KeyboardInterrupt:
        pytest.fail(f"{kind}: interrupted at its first collective ({w.seen}) before any "
                    "result existed: nothing was written")
    assert w.seen, "no collective ran"
    what, files = w.seen[0]
    assert files, f"{kind}: the first collective ({what}) ran before any result existed"
    assert out.code == 130
    saved = sorted(res.glob("*/result.json"))
    assert saved == files
    d = json.loads(saved[0].read_text())
    assert d["status"]["state"] == "failed"
    assert "did not finish" not in d["status"]["reason"]  # rewritten with the real reason
    assert not (tmp_path / "t").exists() or not list((tmp_path / "t").rglob("*.dat"))


def test_bad_input_before_measuring_leaves_no_result(tmp_path):
    """The provisional result written first is taken back (with the results directory it
    created) when the target is refused: exit 2, nothing left."""
    from iobench.errors import TargetError

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x").write_text("keep")
    res = tmp_path / "deep" / "r"
    spec = io.build(pattern="seqread", size="256KiB", block_size="64KiB", cache="allow")
    with pytest.raises(TargetError):
        io.execute(spec, RunOptions(target=foreign, results_dir=res))
    assert not (tmp_path / "deep").exists()
    assert (foreign / "x").read_text() == "keep"
    assert sorted(p.name for p in foreign.iterdir()) == ["x"]
