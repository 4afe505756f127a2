"""Data content for everything iobench writes: random (incompressible, non-dedupable),
bf16 (compresses like real bf16 weights) or zeros (deliberately compressible).

Random content is one 1 MiB block of PCG64 output, XOR-ed per 4 KiB block with a 64-bit
constant from splitmix64(seed, stream, block index). That runs at memory speed (~6 GB/s
a core, vs ~0.2 GB/s for `default_rng().bytes`), no two 4 KiB blocks of a data set are
alike, and the bytes at any offset can be regenerated for verification.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4096
BASE = 1 << 20  # base block size (bytes)
_WORDS = BLOCK // 8
_BLOCKS_PER_BASE = BASE // BLOCK
CONTENTS = ("random", "bf16", "zeros")

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (Steele et al. 2014), vectorised over uint64 (wraps mod 2**64)."""
    z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
    return z ^ (z >> np.uint64(31))


_BASES: dict[tuple[str, int], np.ndarray] = {}


def _base_block(kind: str, seed: int) -> np.ndarray:
    """The 1 MiB base block of (kind, seed), made once per process and shared read-only:
    it depends on neither the stream nor the offset, and drawing it (PCG64) cost more
    than filling a small file from it (datagen makes one Content per file)."""
    got = _BASES.get((kind, seed))
    if got is not None:
        return got
    rng = np.random.default_rng([seed, 0x10BE])
    if kind == "random":
        base = rng.integers(0, 2**63, size=BASE // 8, dtype=np.uint64, endpoint=False)
        base ^= rng.integers(0, 2, size=BASE // 8, dtype=np.uint64) << np.uint64(63)
    elif kind == "bf16":
        w = rng.normal(0.0, 0.02, size=BASE // 2).astype(np.float32)
        base = (w.view(np.uint32) >> np.uint32(16)).astype(np.uint16).view(np.uint64)
    else:
        base = np.zeros(BASE // 8, dtype=np.uint64)
    base.setflags(write=False)
    if len(_BASES) >= 16:  # a few seeds per process in practice; bound it anyway
        _BASES.clear()
    _BASES[(kind, seed)] = base
    return base


class Content:
    """Reproducible content for one stream (e.g. one file): bytes at offset o are a pure
    function of (kind, seed, stream, o)."""

    def __init__(self, kind: str = "random", seed: int = 0, stream: int = 0) -> None:
        if kind not in CONTENTS:
            raise ValueError(kind)
        self.kind = kind
        self.seed = int(seed)
        self.stream = int(stream)
        self._base = _base_block(kind, self.seed)
        with np.errstate(over="ignore"):
            self._key = np.uint64((self.seed * 0x100000001B3 + self.stream * 0x9E3779B1) % 2**64)
            self._key_mix = splitmix64(np.array([self._key], dtype=np.uint64))[0]

    def _block_consts(self, first_block: int, n: int) -> np.ndarray:
        idx = np.arange(first_block, first_block + n, dtype=np.uint64)
        idx ^= self._key_mix
        c = splitmix64(idx)
        if self.kind == "bf16":  # perturb only the low mantissa bits of each bf16 value
            c &= np.uint64(0x007F007F007F007F)
        return c

    def fill_aligned(self, out: np.ndarray, first_block: int,
                     consts_1d: np.ndarray | None = None) -> None:
        """Fill `out` (uint64 array, length a multiple of 512 words) from block index on;
        `consts_1d`, when given, are those blocks' constants (computed once by `fill`)."""
        nblocks = out.size // _WORDS
        if self.kind == "zeros":
            out[:] = 0
            return
        view = out[: nblocks * _WORDS].reshape(nblocks, _WORDS)
        base = self._base.reshape(_BLOCKS_PER_BASE, _WORDS)
        # one vectorised splitmix over every block of the request: per-call numpy
        # overhead, not the XOR, was what held this at ~2 GB/s
        if consts_1d is None:
            consts_1d = self._block_consts(first_block, nblocks)
        consts = consts_1d[:, None]
        done = 0
        while done < nblocks:
            base_off = (first_block + done) % _BLOCKS_PER_BASE
            n = min(nblocks - done, _BLOCKS_PER_BASE - base_off)
            np.bitwise_xor(base[base_off : base_off + n], consts[done : done + n],
                           out=view[done : done + n])
            done += n

    def fill(self, buf: memoryview | bytearray | np.ndarray, offset: int) -> None:
        """Write the content of [offset, offset + len(buf)) into `buf`, in place.

        Whole 4 KiB blocks are generated straight into `buf` through a uint64 view, at any
        address (a payload after a zip or TFRecord header is not 8-byte aligned; numpy
        handles the unaligned view at the same speed); only a partial first or last block
        goes through a one-block scratch buffer.
        """
        mv = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
        length = mv.size
        if length == 0:
            return
        first = offset // BLOCK
        last = (offset + length + BLOCK - 1) // BLOCK
        # every block's constant in one vectorised call (a 115 KB record has a partial
        # last block: two calls per record cost more than its XOR)
        consts = self._block_consts(first, last - first) if self.kind != "zeros" else None

        def part(i: int) -> np.ndarray | None:
            return consts[i : i + 1] if consts is not None else None

        pos = 0
        skip = offset % BLOCK
        if skip:  # the partial first block
            n = min(length, BLOCK - skip)
            tmp = np.empty(_WORDS, dtype=np.uint64)
            self.fill_aligned(tmp, first, part(0))
            mv[:n] = tmp.view(np.uint8)[skip : skip + n]
            pos = n
        whole = (length - pos) // BLOCK * BLOCK
        if whole:
            b = (offset + pos) // BLOCK
            self.fill_aligned(mv[pos : pos + whole].view(np.uint64), b,
                              consts[b - first : b - first + whole // BLOCK]
                              if consts is not None else None)
            pos += whole
        if pos < length:  # the partial last block
            tmp = np.empty(_WORDS, dtype=np.uint64)
            self.fill_aligned(tmp, last - 1, part(last - 1 - first))
            mv[pos:] = tmp.view(np.uint8)[: length - pos]

    def bytes(self, offset: int, length: int) -> bytes:
        out = np.empty(length, dtype=np.uint8)
        self.fill(out, offset)
        return out.tobytes()
