"""A Ctrl-C raised the moment a descriptor's close returns (Python runs the handler there,
between the close and the next statement) must never make iobench close that number a
second time: the second close fails with EBADF, which replaced the interruption and turned
a partial result into "I/O error: Bad file descriptor" (seen on a loaded CI machine), and
it could close a descriptor another thread has just been given the same number for.

Each test makes the real `os.close` raise KeyboardInterrupt right after it closed, at the
exact point a signal would, and checks the interruption (not an OSError) comes out, no
descriptor is closed twice and none is left open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from iobench import safepath
from iobench.engines.native import aligned_buffer
from iobench.kinds.datagen import writer
from iobench.kinds.kvcache import geometry, store

_real_close = os.close


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


class _CloseThenSignal:
    """os.close that closes, then raises KeyboardInterrupt on call number `at`; records
    the closes that failed (a number closed twice: EBADF)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls = 0
        self.failed: list[OSError] = []

    def __call__(self, fd: int) -> None:
        self.calls += 1
        try:
            _real_close(fd)
        except OSError as e:
            self.failed.append(e)
            raise
        if self.calls == self.at:
            raise KeyboardInterrupt


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    safepath.register_root(tmp_path)
    yield tmp_path
    safepath.forget_roots()


@pytest.mark.parametrize("at", [1, 2, 3])
def test_walking_down_a_path(root, monkeypatch, at):
    """safepath's walk closes each parent as it opens the child (makedirs, every file
    iobench writes below a target)."""
    (root / "a" / "b" / "c").mkdir(parents=True)
    before = _open_fds()
    close = _CloseThenSignal(at)
    monkeypatch.setattr(os, "close", close)
    with pytest.raises(KeyboardInterrupt):
        safepath.makedirs(root / "a" / "b" / "c" / "d")
    monkeypatch.setattr(os, "close", _real_close)
    assert not close.failed, f"closed twice: {close.failed}"
    assert _open_fds() == before, "a descriptor was left open"


def test_committing_a_generated_file(root, monkeypatch):
    """datagen's writer closes the file on commit; the context's abort must not close it
    again, and the half-done temporary file is removed."""
    path = root / "shard-0"
    before = _open_fds()
    close = _CloseThenSignal(1)

    def generate() -> None:
        with writer.writing(path, np.zeros(1 << 16, dtype=np.uint8)) as w:
            w.write(b"x" * 1000)
            monkeypatch.setattr(os, "close", close)
            w.commit(samples=1)

    with pytest.raises(KeyboardInterrupt):
        generate()
    monkeypatch.setattr(os, "close", _real_close)
    assert not close.failed, f"closed twice: {close.failed}"
    assert _open_fds() == before
    assert sorted(p.name for p in root.iterdir()) == [], "the temporary file is removed"


@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
def test_a_kv_store_closed_after_an_interrupted_close(tmp_path, monkeypatch, layout):
    """The KV store's close, interrupted after its first descriptor, then closed again by
    the run's cleanup: nothing closed twice, nothing left open."""
    before = _open_fds()
    s = store.make(layout, tmp_path / "kv", geometry.Geometry(4096, 16), slots=8)
    if isinstance(s, store.Slab):
        s.open()
    buf = memoryview(aligned_buffer(s.geom.chunk_bytes))  # O_DIRECT
    for slot in range(3):
        s.write(slot, 0, slot, buf, sync=False)  # opens the slab files / the directories
    close = _CloseThenSignal(1)
    monkeypatch.setattr(os, "close", close)
    with pytest.raises(KeyboardInterrupt):
        s.close(keep=True)
    s.close(keep=True)  # the cleanup's second try
    monkeypatch.setattr(os, "close", _real_close)
    assert not close.failed, f"closed twice: {close.failed}"
    leaked = _open_fds() - before
    assert len(leaked) <= 1, f"left open: {leaked}"  # at most the one the signal cut off
