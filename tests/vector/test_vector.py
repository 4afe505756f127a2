"""`iobench infer vector`: a small real DiskANN index on a real target (mode 1), and the
DiskANN read pattern on a throttled rig whose structure follows from hop and beam counts
(mode 2). No mocks: diskannpy, O_DIRECT, Linux AIO and fio run for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iobench.cli import cli
from iobench.engines import batch
from iobench.kinds.vector import data
from iobench.kinds.vector.spec import K

try:
    import diskannpy  # noqa: F401
    HAVE_DISKANN = True
except ImportError:
    HAVE_DISKANN = False
needs_diskann = pytest.mark.skipif(not HAVE_DISKANN, reason="diskannpy is not installed "
                                   "(pip install 'iobench[vector]'; make test installs it)")

DIM, N, NQ = 24, 3000, 120
MODE1 = ["--engine", "diskann", "--dim", str(DIM), "--vectors", str(N), "--queries", str(NQ),
         "--clusters", "12", "-L", "16,64", "-W", "2,4", "--latency-budget", "30s"]


def _invoke(runner: Any, args: list[str]) -> Any:
    return runner.invoke(cli, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def mode1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real build + sweep, through the command line in a subprocess (so diskannpy's C++
    output really hits fds 1 and 2), --json on stdout."""
    if not HAVE_DISKANN:
        pytest.skip("diskannpy is not installed")
    base = tmp_path_factory.mktemp("vector")
    tgt, res = base / "t", base / "r"
    p = subprocess.run([sys.executable, "-m", "iobench", "infer", "vector", "--target",
                        str(tgt), "--results-dir", str(res), "--json", *MODE1],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # nothing but the result on stdout: C++ logs were captured
    root = tgt / "vector" / "diskann" / next(iter(os.listdir(tgt / "vector" / "diskann")))
    return {"doc": doc, "stdout": p.stdout, "stderr": p.stderr, "target": tgt,
            "results": res, "root": root}


@needs_diskann
def test_ground_truth_is_exact(mode1: dict[str, Any]) -> None:
    """The stored ground truth equals a plain full-matrix brute force."""
    root = mode1["root"]
    q = data.load_array(root / "queries.npy")
    n, dim = data.read_header(root / "vectors.bin")
    assert (n, dim) == (N, DIM)
    x = np.fromfile(root / "vectors.bin", dtype=np.float32, offset=8).reshape(n, dim)
    d2 = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    want = np.argsort(d2, axis=1)[:, :K]
    got = data.load_array(root / "truth_ids.npy")
    assert got.shape == (NQ, K)
    # ties aside (none in continuous data), the same neighbours in the same order
    assert (got == want).mean() > 0.999
    # queries are held out: none of them is a base vector
    assert float(d2.min()) > 0


@needs_diskann
def test_recall_matches_an_independent_search(mode1: dict[str, Any]) -> None:
    """recall@10 in the result equals diskannpy's own batch search scored by the test."""
    import diskannpy as dap

    doc, root = mode1["doc"], mode1["root"]
    idx_dir = next(p for p in root.iterdir() if p.name.startswith("index-"))
    q = data.load_array(root / "queries.npy")
    truth = data.load_array(root / "truth_ids.npy")
    cells = {(p["metrics"]["beam_width"], p["metrics"]["complexity"], p["metrics"]["state"]): p
             for p in doc["phases"] if p["name"].startswith("search")}
    assert len(cells) == 2 * 2 * 2
    from iobench.kinds.vector.engine import capture_fds

    with capture_fds(mode1["target"] / "test.log"):
        index = dap.StaticDiskIndex(str(idx_dir), num_threads=2, num_nodes_to_cache=0,
                                    cache_mechanism=0, distance_metric="l2",
                                    vector_dtype=np.float32, dimensions=DIM, index_prefix="ann")
        ids = index.batch_search(q, k_neighbors=K, complexity=64, num_threads=2,
                                 beam_width=4).identifiers
        del index
    mine = np.mean([len(set(a.tolist()) & set(b.tolist())) / K
                    for a, b in zip(ids, truth, strict=True)])
    got = cells[(4, 64, "cold")]["metrics"]["recall_at_10"]
    assert got == pytest.approx(mine, abs=1e-9)
    assert got >= 0.9  # clustered data, L=64: a working index finds the neighbours
    # more search list, no worse recall
    assert cells[(2, 64, "cold")]["metrics"]["recall_at_10"] >= \
        cells[(2, 16, "cold")]["metrics"]["recall_at_10"] - 0.02


@needs_diskann
def test_result_shape_log_and_headline(mode1: dict[str, Any]) -> None:
    doc = mode1["doc"]
    m = doc["metrics"]
    assert doc["kind"] == "infer-vector"
    assert doc["engine"] == "diskann"
    assert m["build_s"] > 0
    assert m["index_bytes"] > m["disk_index_bytes"] > 0
    h = m["headline"]  # the 30 s budget: every setting with recall >= 0.95 qualifies
    assert h is not None
    assert h["recall_at_10"] >= 0.95
    best = max((p for p in doc["phases"] if p["name"].startswith("search")
                and p["metrics"]["state"] == "cold" and p["metrics"]["recall_at_10"] >= 0.95),
               key=lambda p: p["metrics"]["queries_per_s"])
    assert h["queries_per_s"] == best["metrics"]["queries_per_s"]
    # a 30 s budget leaves nothing out
    assert m["best_at_recall"]["queries_per_s"] == h["queries_per_s"]
    assert m["queries_per_s"] == h["queries_per_s"]
    for p in doc["phases"]:
        if not p["name"].startswith("search"):
            continue
        pm = p["metrics"]
        assert p["ops"] == NQ
        assert pm["queries_per_s"] > 0
        assert p["histogram"]["count"] == NQ  # each query timed on its own
        assert p["bytes"] % 4096 == 0
        assert pm["reads_4k_per_query"] >= 1
        assert pm["reads_source"].startswith("measured")
    assert doc["cache"]["evicted_verified"] is True
    log = Path(doc["spec"]["log"])
    assert log.parent == next(mode1["results"].iterdir())  # in the result directory
    assert "Indexing time" in log.read_text(errors="replace")


STRACE_SCRIPT = r"""
import sys
from pathlib import Path
import numpy as np
from iobench.kinds.vector import data, engine
root, idx = Path(sys.argv[1]), Path(sys.argv[2])
q = data.load_array(root / "queries.npy")
s = engine.Searcher(idx, "l2", q.shape[1], 0, Path(sys.argv[3]))
print("MARK_START", file=sys.stderr, flush=True)
out = s.run(q, 64, 4, None)
print("MARK_END", file=sys.stderr, flush=True)
s.close()
print(out["read_bytes"])
"""


@needs_diskann
def test_bytes_per_query_match_an_independent_count(mode1: dict[str, Any],
                                                    tmp_path: Path) -> None:
    """/proc/self/io read_bytes around a search pass equals the bytes DiskANN asked the
    kernel for, counted from its io_submit calls by strace."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make test installs it)")
    root = mode1["root"]
    idx_dir = next(p for p in root.iterdir() if p.name.startswith("index-"))
    script = tmp_path / "s.py"
    script.write_text(STRACE_SCRIPT)
    trace = tmp_path / "trace.txt"
    p = subprocess.run(["strace", "-f", "-e", "trace=io_submit,write", "-e", "signal=none",
                        "-o", str(trace), sys.executable, str(script), str(root),
                        str(idx_dir), str(tmp_path / "log")],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0 and "ptrace" in p.stderr:
        pytest.skip(f"strace cannot trace here: {p.stderr.strip()[:100]}")
    assert p.returncode == 0, p.stderr
    measured = int(p.stdout.split()[-1])
    text = trace.read_text()
    seg = text[text.index("MARK_START"):text.index("MARK_END")]
    submitted = sum(int(n) for n in re.findall(r"aio_nbytes=(\d+)", seg))
    assert submitted > 0
    assert measured == submitted
    # and the command's own figure for the same setting: the same sectors (the search is
    # deterministic), plus page-fault reads if memory pressure hit that pass (counted)
    cell = next(ph for ph in mode1["doc"]["phases"] if ph["name"] == "search W=4 L=64 cold")
    if cell["metrics"]["major_faults"] == 0:
        assert cell["bytes"] == submitted
    else:
        assert cell["bytes"] >= submitted


@needs_diskann
def test_calibrate_mode2_from_mode1(mode1: dict[str, Any], runner: Any,
                                    tmp_path: Path) -> None:
    h = mode1["doc"]["metrics"]["headline"]
    res_file = next(mode1["results"].iterdir()) / "result.json"
    r = _invoke(runner, ["infer", "vector", "--target", str(tmp_path / "t"), "--results-dir",
                         str(tmp_path / "r"), "--json", "--index-size", "8MiB",
                         "--calibrate", str(res_file), "-c", "1", "--runtime", "0.2s"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    sp = doc["spec"]
    assert sp["beam_width"] == h["beam_width"]
    assert sp["hops"] == max(1, round(h["reads_4k_per_query"] / h["beam_width"]))
    assert doc["phases"][0]["metrics"]["reads_per_query"] == sp["hops"] * sp["beam_width"]


# --- mode 2: the throttled rig --------------------------------------------------------
@pytest.mark.parametrize("queue", ["default", "threads"])
def test_pattern_counts_on_a_throttled_rig(runner: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, queue: str) -> None:
    """Every round is held 2 ms: the run's structure follows from the counts, on the
    compiled ring (or the Python AIO loop) and on the pread-thread fallback."""
    delay = 2_000_000
    monkeypatch.setattr(batch, "ROUND_DELAY_NS", delay)
    if queue == "threads":
        monkeypatch.setenv("IOBENCH_BATCH_QUEUE", "threads")
    hops, beam = 3, 2
    r = _invoke(runner, ["infer", "vector", "--target", str(tmp_path / "t"), "--results-dir",
                         str(tmp_path / "r"), "--json", "--index-size", "8MiB", "--hops",
                         str(hops), "--beam-width", str(beam), "-c", "1,3", "--runtime",
                         "0.3s", "--sector", "8k"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    phases = [p for p in doc["phases"] if p["name"].startswith("pattern")]
    assert [p["metrics"]["concurrency"] for p in phases] == [1, 3]
    for p in phases:
        m = p["metrics"]
        q = m["queries"]
        assert q >= 1
        assert p["ops"] == q
        assert m["reads"] == q * hops * beam  # every query started is finished, exactly
        assert m["reads_per_query"] == hops * beam
        assert p["bytes"] == m["reads"] * 8192
        assert m["read_latency_ns"]["count"] == m["reads"]
        assert p["histogram"]["count"] == q
        assert m["queue_depth"] == m["concurrency"] * beam
        assert (m["queue"] == "threads") == (queue == "threads")
        # one-sided, so a loaded machine cannot break them: a query holds hops rounds
        assert p["latency_ns"]["min"] >= hops * delay
        assert m["queries_per_s"] <= m["concurrency"] / (hops * delay / 1e9) * 1.001
    curve = doc["metrics"]["curve"]
    assert [c["concurrency"] for c in curve] == [1, 3]
    assert doc["metrics"]["reads_per_query"] == hops * beam
    assert doc["cache"]["policy"] == "direct"
    idx = tmp_path / "t" / "vector" / "pattern" / f"index-{8 << 20}.dat"
    assert idx.stat().st_size == 8 << 20
    # incompressible: no two 4 KiB blocks of the file alike
    blob = idx.read_bytes()[: 1 << 20]
    blocks = {blob[i:i + 4096] for i in range(0, len(blob), 4096)}
    assert len(blocks) == 256


def test_pattern_thread_fallback(runner: Any, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without io_uring and AIO (forced here) mode 2 runs on pread threads, not fails:
    reads per query = hops x beam, bytes = reads x sector."""
    monkeypatch.setenv("IOBENCH_BATCH_QUEUE", "threads")
    hops, beam = 3, 2
    r = _invoke(runner, ["infer", "vector", "--target", str(tmp_path / "t"), "--results-dir",
                         str(tmp_path / "r"), "--json", "--index-size", "4MiB", "--hops",
                         str(hops), "--beam-width", str(beam), "-c", "1,3", "--runtime",
                         "0.2s"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    phases = [p for p in doc["phases"] if p["name"].startswith("pattern")]
    assert len(phases) == 2
    for p in phases:
        m = p["metrics"]
        assert m["queries"] >= 1
        assert m["reads"] == m["queries"] * hops * beam
        assert p["bytes"] == m["reads"] * 4096
        assert m["read_latency_ns"]["count"] == m["reads"]
        assert p["histogram"]["count"] == m["queries"]


@pytest.mark.parametrize("ring", ["compiled", "python", "threads"])
def test_pattern_direct_counts_and_dependency(ring: str) -> None:
    """Without a delay: counts are exact on the compiled ring, the Python AIO loop and the
    pread-thread fallback."""
    import tempfile

    from iobench.engines import aio, native

    queue = {"python": "python-aio", "threads": "threads"}.get(ring) or aio.ring_kind()
    if queue is None:
        pytest.skip("the compiled helper or its ring is not available here")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as d:  # O_DIRECT: not tmpfs
        p = Path(d) / "idx.dat"
        native.layout([p], 4 << 20)
        out = batch.run_rounds(p, block_size=4096, rounds=5, batch=3, streams=2,
                               runtime_s=0, max_streams=7, queue=queue)
    assert out["streams"] == 7
    assert out["reads"] == 7 * 5 * 3
    assert out["stream_hist"].count == 7
    assert out["read_hist"].count == 105
    assert out["loop"] == {"python": "python", "threads": "threads"}.get(ring, "compiled")


def test_pattern_with_fio_beside(runner: Any, tmp_path: Path, have_fio: None) -> None:
    r = _invoke(runner, ["infer", "vector", "--engine", "fio", "--target", str(tmp_path / "t"),
                         "--results-dir", str(tmp_path / "r"), "--json", "--index-size",
                         "8MiB", "--hops", "2", "--beam-width", "4", "-c", "2",
                         "--runtime", "0.3s"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    names = [p["name"] for p in doc["phases"]]
    assert names == ["pattern concurrency=2", "fio randread qd=8"]
    f = doc["phases"][1]
    assert f["engine"] == "fio"
    assert f["ops"] > 0
    assert f["metrics"]["sector_bytes"] == 4096
    assert doc["metrics"]["curve"][0]["fio_reads_per_s"] == f["ops_per_s"]


# --- bad input: one line, exit 2, nothing written --------------------------------------
@pytest.mark.parametrize(("args", "words"), [
    (["--engine", "diskann", "--dim", "0"], "--dim 0"),
    (["--engine", "diskann", "--vectors", "-5"], "--vectors -5"),
    (["--engine", "diskann", "-W", "32", "-L", "16,64"], "larger than --complexity 16"),
    (["--engine", "diskann", "--metric", "hamming"], "unknown distance metric"),
    (["--index-size", "1000TiB"], "are free"),
    (["--index-size", "1000TiB", "--hops", "0"], "are free"),  # space is checked first
    (["--hops", "0", "--index-size", "8MiB"], "--hops 0"),
    (["--beam-width", "2,4", "--index-size", "8MiB"], "one beam width"),
    (["--sector", "6k", "--index-size", "8MiB"], "multiple of 4096"),
])
def test_bad_input(runner: Any, tmp_path: Path, args: list[str], words: str) -> None:
    tgt = tmp_path / "t"
    r = runner.invoke(cli, ["infer", "vector", "--target", str(tgt), "--results-dir",
                            str(tmp_path / "r"), *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    assert lines[0].startswith("error:")
    assert words in lines[0]
    assert not tgt.exists()
    assert not (tmp_path / "r").exists()


def test_missing_diskannpy_is_one_line(runner: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diskannpy", None)  # import fails as if not installed
    r = runner.invoke(cli, ["infer", "vector", "--engine", "diskann", "--target",
                            str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert "iobench[vector]" in r.output
    assert "pip install" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()


def test_symlink_in_target_is_refused(runner: Any, tmp_path: Path) -> None:
    """A symlink planted where the index file goes is never followed."""
    tgt = tmp_path / "t"
    r = _invoke(runner, ["infer", "vector", "--target", str(tgt), "--results-dir",
                         str(tmp_path / "r"), "--index-size", "1MiB", "--hops", "1",
                         "-c", "1", "--runtime", "0.1s"])
    assert r.exit_code == 0, r.output
    idx = tgt / "vector" / "pattern" / f"index-{8 << 20}.dat"
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    idx.symlink_to(victim)
    r = runner.invoke(cli, ["infer", "vector", "--target", str(tgt), "--results-dir",
                            str(tmp_path / "r"), "--index-size", "8MiB", "--hops", "1",
                            "-c", "1", "--runtime", "0.1s"])
    assert r.exit_code != 0
    assert victim.read_bytes() == b"keep me"


def test_ctrl_c_keeps_a_partial_result(tmp_path: Path) -> None:
    """SIGINT while the pattern runs: exit 130, result kept and marked partial; the queries
    in flight finish their rounds, so the cell's counts stay exact."""
    import signal
    import time

    tgt, res = tmp_path / "t", tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "iobench", "infer", "vector", "--target",
                          str(tgt), "--results-dir", str(res), "--index-size", "8MiB",
                          "--hops", "2", "--beam-width", "2", "-c", "1", "--runtime", "120s",
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    idx = tgt / "vector" / "pattern" / f"index-{8 << 20}.dat"
    end = time.monotonic() + 60
    while not idx.exists() and time.monotonic() < end and p.poll() is None:
        time.sleep(0.05)  # polling for the readiness signal (the laid-out index file)
    assert idx.exists()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    doc = json.loads(out)
    assert doc["status"]["state"] == "partial"
    assert len(list(res.glob("*/result.json"))) == 1
    for ph in doc["phases"]:
        assert ph["metrics"]["interrupted"] is True
        assert ph["metrics"]["reads"] == ph["ops"] * 4


@needs_diskann
def test_ctrl_c_during_the_search_sweep_keeps_a_partial_result(tmp_path: Path) -> None:
    import signal
    import time

    tgt, res = tmp_path / "t", tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "iobench", "infer", "vector", "--engine",
                          "diskann", "--target", str(tgt), "--results-dir", str(res),
                          "--dim", "16", "--vectors", "2000", "--queries", "3000",
                          "-L", "64,128", "-W", "2,4,8", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    log = None
    while time.monotonic() < end and p.poll() is None:
        logs = list(res.glob("*/diskann.log"))
        # readiness: the search index is loaded (its contexts are set up), the sweep runs
        if logs and "thread-specific contexts" in logs[0].read_text(errors="replace"):
            log = logs[0]
            break
        time.sleep(0.05)
    assert log is not None
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert out.lstrip().startswith("{"), (out[:300], err[-500:])
    doc = json.loads(out)  # stdout still clean after the interruption
    assert doc["status"]["state"] == "partial"
    assert doc["phases"][0]["name"] == "build"
    for ph in doc["phases"][1:]:
        assert ph["ops"] == 3000  # phases kept are whole passes


@needs_diskann
def test_report_renders_the_sweep(mode1: dict[str, Any], runner: Any) -> None:
    r = _invoke(runner, ["report", str(next(mode1["results"].iterdir()))])
    assert r.exit_code == 0, r.output
    assert "DiskANN search" in r.output
    assert "Headline:" in r.output
    assert "recall@10" in r.output
