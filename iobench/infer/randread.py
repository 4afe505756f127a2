"""Moved to iobench.kinds.infer_randread.randread. Kept only because iobench.infer.vector
(moved by another change) still imports `fio_cell` from here, and its phases still call
the block size `block_size` (infer randread's are `block_bytes`); delete it with that
move."""

from __future__ import annotations

from typing import Any

from iobench.kinds.infer_randread import randread as _rr


def fio_cell(*args: Any, **kw: Any) -> dict[str, Any]:
    phase = _rr.fio_cell(*args, **kw)
    phase["metrics"]["block_size"] = phase["metrics"].pop("block_bytes")
    return phase
