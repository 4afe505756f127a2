"""Vectors, queries and exact ground truth for mode 1, on the target, made once.

The base vectors are a Gaussian mixture (clusters of different sizes and spreads, as
real embeddings cluster by topic), never uniform noise, where every point is about as
far from every other and recall means nothing. Queries are drawn from the same mixture
but held out (not in the base set). Ground truth is brute force in numpy, computed in
blocks of base vectors so memory stays bounded by queries x block, and stored beside
the vectors. Every file is opened with O_NOFOLLOW: a symlink planted in the target is
refused, never followed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from iobench.errors import RunFailed
from iobench.kinds.vector.spec import K

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
BLOCK_BYTES = 64 << 20  # base vectors per ground-truth block (and per generation chunk)
CHUNK_BYTES = 32 << 20
_HEADER = 8  # DiskANN .bin: int32 points, int32 dimensions, then row-major float32


def open_new(path: Path) -> int:
    """Create (or truncate) a file for writing without following a symlink at `path`."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644)


def open_read(path: Path) -> int:
    return os.open(path, os.O_RDONLY | NOFOLLOW)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Atomically (temp + fsync + rename) and without following symlinks."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = open_new(tmp)
    try:
        write_all(fd, json.dumps(doc, indent=1).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        fd = open_read(path)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            doc = json.loads(f.read())
        except json.JSONDecodeError:
            return None
    return doc if isinstance(doc, dict) else None


def default_clusters(n: int) -> int:
    return int(max(8, min(256, round(np.sqrt(n) / 2))))


LATENT = 16  # intrinsic dimensions per cluster


class Mixture:
    """A Gaussian mixture in `dim` dimensions with the structure of real embeddings:
    cluster centres ~ N(0, I); each cluster spans its own random `LATENT`-dimensional
    subspace (scales decaying from 0.6 to 0.15) plus small isotropic noise, and has a
    Dirichlet weight. Points spread isotropically over all of a 768-d space would make
    every neighbour about as far as any other (no index can find "the" nearest then);
    real embeddings have a low intrinsic dimension, and so do these. Deterministic from
    `seed`."""

    def __init__(self, dim: int, clusters: int, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 0xC1])
        self.dim = dim
        self.latent = min(LATENT, dim)
        self.centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        self.weights = rng.dirichlet(np.full(clusters, 2.0))
        scales = np.geomspace(0.6, 0.15, self.latent).astype(np.float32)
        basis = rng.standard_normal((clusters, self.latent, dim)).astype(np.float32)
        basis /= np.linalg.norm(basis, axis=2, keepdims=True)
        self.basis = basis * scales[None, :, None]
        self.noise = np.float32(0.02)
        self.seed = seed

    def sample(self, n: int, stream: int, chunk: int) -> np.ndarray:
        """n points of chunk `chunk` of stream `stream` (0 = base set, 1 = queries)."""
        rng = np.random.default_rng([self.seed, stream, chunk])
        c = rng.choice(len(self.weights), size=n, p=self.weights)
        z = rng.standard_normal((n, self.latent), dtype=np.float32)
        x = rng.standard_normal((n, self.dim), dtype=np.float32)
        x *= self.noise
        x += self.centres[c]
        order = np.argsort(c, kind="stable")
        cs = c[order]
        bounds = np.flatnonzero(np.diff(cs)) + 1
        for grp in np.split(order, bounds):
            if grp.size:
                x[grp] += z[grp] @ self.basis[c[grp[0]]]
        return x


def write_vectors(path: Path, mix: Mixture, n: int) -> None:
    """The base set as a DiskANN .bin file, written in chunks (memory: one chunk)."""
    rows = max(1, CHUNK_BYTES // (4 * mix.dim))
    tmp = path.with_name(path.name + ".part")
    fd = open_new(tmp)
    try:
        write_all(fd, np.array([n, mix.dim], dtype=np.int32).tobytes())
        for i, start in enumerate(range(0, n, rows)):
            write_all(fd, mix.sample(min(rows, n - start), 0, i).tobytes())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_header(path: Path) -> tuple[int, int]:
    fd = open_read(path)
    try:
        h = np.frombuffer(os.pread(fd, _HEADER, 0), dtype=np.int32)
    finally:
        os.close(fd)
    return int(h[0]), int(h[1])


def iter_blocks(path: Path, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, block) over the base vectors of a DiskANN .bin file."""
    n, dim = read_header(path)
    fd = open_read(path)
    with os.fdopen(fd, "rb") as f:
        f.seek(_HEADER)
        start = 0
        while start < n:
            k = min(rows, n - start)
            blk = np.fromfile(f, dtype=np.float32, count=k * dim)
            if blk.size != k * dim:
                raise RunFailed(f"{path}: truncated vector file (row {start} of {n})")
            yield start, blk.reshape(k, dim)
            start += k


def save_array(path: Path, arr: np.ndarray) -> None:
    fd = open_new(path)
    with os.fdopen(fd, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())


def load_array(path: Path) -> np.ndarray:
    fd = open_read(path)
    with os.fdopen(fd, "rb") as f:
        return np.load(f, allow_pickle=False)


def _scores(metric: str, q: np.ndarray, qn: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Smaller is nearer, for every metric (as DiskANN ranks its results)."""
    dots = q @ x.T
    if metric == "l2":
        return qn[:, None] - 2.0 * dots + np.einsum("ij,ij->i", x, x)[None, :]
    if metric == "mips":
        return -dots
    norms = np.linalg.norm(x, axis=1)
    norms[norms == 0] = 1.0
    return -(dots / norms[None, :])  # q is normalised by the caller for cosine


def ground_truth(vectors: Path, queries: np.ndarray, metric: str, k: int = K
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest base vectors of every query: (ids int64, scores float32), nearest
    first. Brute force over blocks of base vectors, keeping a running top-k, so memory is
    queries x block (not queries x base)."""
    q = queries.astype(np.float32)
    if metric == "cosine":
        qnorm = np.linalg.norm(q, axis=1, keepdims=True)
        qnorm[qnorm == 0] = 1.0
        q = q / qnorm
    qn = np.einsum("ij,ij->i", q, q)
    nq = len(q)
    best_s = np.full((nq, k), np.inf, dtype=np.float32)
    best_i = np.full((nq, k), -1, dtype=np.int64)
    rows = max(k, BLOCK_BYTES // (4 * max(nq, q.shape[1])))
    for start, blk in iter_blocks(vectors, rows):
        s = _scores(metric, q, qn, blk).astype(np.float32)
        ids = np.arange(start, start + len(blk), dtype=np.int64)
        cs = np.concatenate([best_s, s], axis=1)
        ci = np.concatenate([best_i, np.broadcast_to(ids, s.shape)], axis=1)
        top = np.argpartition(cs, k - 1, axis=1)[:, :k] if cs.shape[1] > k else \
            np.broadcast_to(np.arange(cs.shape[1]), (nq, cs.shape[1]))
        best_s = np.take_along_axis(cs, top, axis=1)
        best_i = np.take_along_axis(ci, top, axis=1)
    order = np.argsort(best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, axis=1), np.take_along_axis(best_s, order, axis=1)


def recall_hits(found: np.ndarray, truth: np.ndarray, k: int = K) -> int:
    """Sum over queries of |found[:k] & truth[:k]| (recall@k = hits / (queries x k))."""
    hits = 0
    for f, t in zip(found[:, :k], truth[:, :k], strict=True):
        hits += len(set(f.tolist()) & set(t.tolist()))
    return hits
