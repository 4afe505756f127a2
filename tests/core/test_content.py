"""Content.fill gives the same bytes at any offset, length and buffer address (the fast
in-place path after a zip or TFRecord header is not 8-byte aligned)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from iobench.content import BLOCK, CONTENTS, Content


@pytest.mark.parametrize("kind", CONTENTS)
def test_fill_is_position_pure_at_any_alignment(kind: str) -> None:
    c = Content(kind, seed=3, stream=7)
    ref = np.empty(40 * BLOCK // 8, dtype=np.uint64)
    c.fill_aligned(ref, 0)
    want = ref.view(np.uint8)
    r = random.Random(1)
    for _ in range(300):
        off = r.randrange(0, 30 * BLOCK)
        length = r.randrange(0, 9 * BLOCK)
        shift = r.randrange(0, 8)
        big = np.zeros(length + 16, dtype=np.uint8)
        view = big[shift : shift + length]
        c.fill(view, off)
        assert np.array_equal(view, want[off : off + length]), (off, length, shift)
        assert not big[:shift].any()  # nothing written outside the buffer
        assert not big[shift + length :].any()
        assert c.bytes(off, length) == want[off : off + length].tobytes()


def test_random_blocks_are_all_different() -> None:
    c = Content("random", seed=0, stream=1)
    out = np.empty(2 << 20, dtype=np.uint8)  # 512 blocks, past one 1 MiB base period
    c.fill(out[1:], 1)
    starts = range(BLOCK, out.size - BLOCK, BLOCK)
    blocks = {out[i : i + BLOCK].tobytes() for i in starts}
    assert len(blocks) == len(starts) == 510
