"""The run-level byte audit (iobench.verify.judge_run, called by iobench.runner.run) for
checkpoint, infer load, infer randread, infer kvcache, infer vector and the suite: a real
run of each agrees with the kernel's counters for this process tree, its untimed
preparation I/O (layout, weight files, the warm pass, manifests, the messages to
checkpoint's rank processes, the TTFT search's chunk set, a vector data set) is declared
and left out, phases no counter can judge independently are left out with the reason,
and a claimed byte count doctored by a few per cent before the judge sees it is caught.
Under MPI each rank's counters are summed on rank 0: judged here on real counters of two
windows, and with real mpirun in tests/mpi/test_mpirun_audit.py. The counters are the
kernel's own: nothing here fakes them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from iobench import verify
from iobench.cli import cli
from iobench.kinds import checkpoint, infer_load, kvcache, vector
from iobench.kinds import infer_randread as rr
from iobench.kinds.base import RunOptions
from iobench.results import Result, load


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r")


def _checkpoint(tmp_path: Path, **kw: Any) -> Result:
    spec = checkpoint.build(model="tiny", scale=0.1, cache="allow", count=2, **kw)
    return checkpoint.run(spec, _opts(tmp_path))


def _load(tmp_path: Path, methods: str = "pread,mmap") -> Result:
    spec = infer_load.build(model="tiny", precisions="bf16", methods=methods,
                            chunk="256k", threads=2)
    return infer_load.run(spec, _opts(tmp_path))


def _randread(tmp_path: Path, **kw: Any) -> Result:
    values = {"file_size": "256KiB", "files": 2, "block_sizes": "4k",
              "queue_depths": "1,2", "runtime": "0.05s", "cache": "allow", **kw}
    return rr.run(rr.build(**values), _opts(tmp_path))


def _kvcache(tmp_path: Path, **kw: Any) -> Result:
    # small: 16 MiB of chunk slots, 8 requests, a TTFT search up to 4096 tokens
    values = {"model": "tiny", "capacity": "16MiB", "requests": 8, "users": 2,
              "max_context": 4096, "search_requests": 2, "fio_runtime": "0.2s", **kw}
    return kvcache.run(kvcache.build(**values), _opts(tmp_path))


def _vector(tmp_path: Path, **kw: Any) -> Result:
    values = {"engine": "native", "index_size": "8MiB", "concurrency": "1,2",
              "runtime": "0.1s", **kw}
    return vector.run(vector.build(**values), _opts(tmp_path))


def _check(r: Result, counter: str) -> dict[str, Any]:
    return next(c for c in r.audit["checks"] if c["counter"] == counter)


def test_checkpoint_audit_is_judged_on_equality_with_its_rank_processes(tmp_path):
    r = _checkpoint(tmp_path)
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "agrees", a
    written = sum(p.bytes for p in r.phases if p.direction == "write")
    read = sum(p.bytes for p in r.phases if p.direction == "read")
    assert a["measured_bytes"] == {"read": read, "write": written}
    # the rank processes' I/O reaches this process's counters when they are reaped; the
    # pipe messages to and from them are declared (mirror), so both counters are judged
    # on equality, not only as a lower bound
    for counter, want in (("rchar", read), ("wchar", written)):
        c = _check(r, counter)
        assert c["measured_bytes"] == want
        assert c["bound"] == "equal", a
        assert c["agrees"] is True, a
    assert "note" not in a
    assert a["untimed_bytes"]["wchar"] > 0  # the manifests and the pipe messages
    assert not any("byte audit" in w for w in r.warnings)
    assert load(r.run_dir).audit["verdict"] == "agrees"


def test_infer_load_audit_leaves_mapped_loads_and_preparation_out(tmp_path):
    r = _load(tmp_path)
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "agrees", a
    pread = [p for p in r.phases if p.metrics["method"] == "pread"]
    assert a["measured_bytes"]["read"] == sum(p.bytes for p in pread)
    assert _check(r, "rchar")["bound"] == "equal"
    # mmap touches pages: no counter sees them, and the audit says so per phase
    assert [x["phase"] for x in a["left_out"]] == ["load bf16 mmap cold",
                                                   "load bf16 mmap warm"]
    assert all("maps the files" in x["why"] for x in a["left_out"])
    # the warm state's untimed pass read the files once per warm load; the weight files
    # were written in this run: both are declared, neither is a measured byte
    size = pread[0].bytes
    assert a["untimed_bytes"]["rchar"] >= 2 * size
    assert a["untimed_bytes"]["wchar"] >= size


def test_infer_load_with_only_mapped_loads_is_unchecked_not_agreeing(tmp_path):
    r = _load(tmp_path, methods="mmap")
    a = r.audit
    assert a["verdict"] == "unchecked"
    assert a["agrees"] is None
    assert a["checks"] == []
    assert verify.audit_line(a).startswith("byte audit: nothing to check (mmap maps")


def test_infer_randread_audit_agrees_and_its_layout_is_untimed(tmp_path):
    r = _randread(tmp_path)
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "agrees", a
    c = _check(r, "rchar")
    assert c["measured_bytes"] == sum(p.bytes for p in r.phases) > 0
    assert c["bound"] == "equal"
    assert a["untimed_bytes"]["wchar"] >= 2 * 256 * 1024  # the file set, laid out


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed")
def test_buffered_fio_aio_randread_is_left_out_with_the_reason(tmp_path):
    r = _randread(tmp_path, engine="fio", ioengine="libaio")
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "unchecked"
    assert {x["why"].split(":")[0] for x in a["left_out"]} == {"buffered AIO/io_uring"}
    assert not any("byte audit" in w for w in r.warnings)


# --- infer kvcache -----------------------------------------------------------------------
@pytest.mark.parametrize("cpu_cache", ["0", "2MiB"])
@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
def test_kvcache_audit_agrees_on_every_counter(tmp_path, layout, cpu_cache):
    r = _kvcache(tmp_path, layout=layout, cpu_cache=cpu_cache)
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "agrees", a
    by_name = {p.name: p for p in r.phases}
    # the chunk reads (replay and TTFT probes) are O_DIRECT Linux AIO: read_bytes sees
    # them, rchar never does; the chunk writes are pwrite(2): wchar, on equality
    probes = sum(p.bytes for p in r.phases if p.name.startswith("ttft probe"))
    assert probes > 0
    rd = _check(r, "read_bytes")
    assert rd["measured_bytes"] == by_name["kv chunk reads (storage)"].bytes + probes
    assert rd["bound"] == "at least"
    wr = _check(r, "wchar")
    assert wr["measured_bytes"] == by_name["kv chunk writes (storage)"].bytes > 0
    assert wr["bound"] == "equal"
    assert "rchar" not in {c["counter"] for c in a["checks"]}
    # left out with the reason, whenever they moved bytes (RAM hits depend on which
    # user's turn found its prefix where: thread timing)
    why = {x["phase"]: x["why"] for x in a["left_out"]}
    expect = {"kv restore requests": "an aggregate: its bytes are in other phases too"}
    if cpu_cache != "0":
        assert "kv chunk copies (RAM tier)" in by_name
        expect["kv chunk copies (RAM tier)"] = "moved in memory (engine ram)"
    assert why == {k: v for k, v in expect.items() if by_name[k].bytes}
    # the TTFT search's chunk set is written outside any measurement, declared untimed
    assert a["untimed_bytes"]["wchar"] >= by_name["ttft probe 256 tokens"].bytes
    assert not any("byte audit" in w for w in r.warnings)


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed")
@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
def test_kvcache_with_fio_agrees_and_its_fio_phases_are_block_layer(tmp_path, layout):
    r = _kvcache(tmp_path, layout=layout, engine="fio")
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "agrees", a
    fio_read = sum(p.bytes for p in r.phases if p.engine == "fio" and p.direction == "read")
    fio_write = sum(p.bytes for p in r.phases
                    if p.engine == "fio" and p.direction == "write")
    assert fio_read > 0
    assert fio_write > 0
    # libaio O_DIRECT: the native comparison's compiled ring (queue libaio) and fio's
    # jobs are block-layer bytes, not rchar/wchar
    assert _check(r, "read_bytes")["measured_bytes"] >= fio_read
    assert _check(r, "write_bytes")["measured_bytes"] == fio_write
    assert _check(r, "wchar")["measured_bytes"] == next(
        p.bytes for p in r.phases if p.name == "kv chunk writes (storage)")
    assert a["startup_allowance_bytes"]["rchar"] > 0  # fio's start-up, per fio phase


# --- infer vector ---------------------------------------------------------------------------
def test_vector_pattern_audit_agrees_and_its_index_layout_is_untimed(tmp_path):
    r = _vector(tmp_path)
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "agrees", a
    c = _check(r, "read_bytes")
    assert c["measured_bytes"] == sum(p.bytes for p in r.phases) > 0
    assert [x["counter"] for x in a["checks"]] == ["read_bytes"]
    assert a["untimed_bytes"]["wchar"] >= 8 << 20  # the index file, laid out


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed")
def test_vector_pattern_with_fio_beside_agrees(tmp_path):
    r = _vector(tmp_path, engine="fio", concurrency="1")
    assert r.status == "ok", r.reason
    assert r.audit["verdict"] == "agrees", r.audit
    fio_ph = [p for p in r.phases if p.engine == "fio"]
    assert fio_ph
    assert fio_ph[0].metrics["ioengine"] == "libaio"
    assert _check(r, "read_bytes")["measured_bytes"] == sum(p.bytes for p in r.phases)


def test_vector_diskann_leaves_its_build_and_searches_out_with_the_reason(tmp_path):
    pytest.importorskip("diskannpy")
    r = _vector(tmp_path, engine="diskann", dim=16, vectors=1000, queries=20,
                complexity="16", beam_width="2", states="cold", latency_budget="30s")
    assert r.status == "ok", r.reason
    a = r.audit
    assert a["verdict"] == "unchecked", a
    assert a["agrees"] is None
    why = {x["phase"]: x["why"] for x in a["left_out"]}
    assert "intermediate files" in why.pop("build")
    assert set(why) == {"search W=2 L=16 cold"}
    assert "judge them against themselves" in why["search W=2 L=16 cold"]
    # the data set (vectors, queries, exact ground truth) and the index load are set-up
    assert a["untimed_bytes"]["wchar"] >= 1000 * 16 * 4
    assert a["untimed_bytes"]["rchar"] > 0
    assert verify.audit_line(a).startswith("byte audit: nothing to check (")


# --- a doctored claim is caught --------------------------------------------------------
def _doctored(monkeypatch, scale: float) -> None:
    """Before the run's judge sees them, every audited phase claims `scale` x the bytes
    it measured; the kernel's counts are left as they are."""
    real = verify.judge_run

    def judge(rw: verify.RunWindow, phases: Sequence[Any], **kw: Any) -> dict[str, Any]:
        fake = [{**p, "bytes": int(p["bytes"] * scale)}
                if verify.phase_counter(p, kw.get("ioengine")) else p for p in phases]
        return real(rw, fake, **kw)

    monkeypatch.setattr(verify, "judge_run", judge)


RUNS: dict[str, Callable[[Path], Result]] = {
    "checkpoint": _checkpoint, "infer-load": _load, "infer-randread": _randread,
    "infer-kvcache": _kvcache, "infer-vector": _vector}
# judged on block-layer counters only (read_bytes: O_DIRECT AIO), which bound the bytes
# from below: a claim under them is indistinguishable from page-cache traffic
LOWER_BOUND_ONLY = {"infer-vector"}


# A claim above what the kernel counted has no floor (5% is caught at any size); one below
# it is a surplus, allowed up to 1 MiB (verify.SURPLUS_FLOOR) on these few-MiB runs: a
# claim of a quarter of the bytes is past it for each kind judged on equality.
@pytest.mark.parametrize(("kind", "scale"), [(k, s) for k in sorted(RUNS) for s in (1.05, 0.25)
                                             if not (s < 1 and k in LOWER_BOUND_ONLY)])
def test_a_falsified_byte_count_differs(tmp_path, monkeypatch, kind, scale):
    _doctored(monkeypatch, scale)
    r = RUNS[kind](tmp_path)
    a = r.audit
    assert a["verdict"] == "differs", a
    assert a["agrees"] is False
    assert any(not c["agrees"] for c in a["checks"])
    assert any(w.startswith("byte audit: the phases measured") for w in r.warnings)
    assert load(r.run_dir).audit["verdict"] == "differs"


# --- the suite --------------------------------------------------------------------------
SUITE = """
name: audit-mini
description: a checkpoint, a model load and random reads, each audited
steps:
  - command: checkpoint tiny
    id: ck
    params: {count: 1, scale: 0.1, cache: allow}
  - command: infer load tiny
    id: load
    params: {precision: bf16, method: "pread,mmap", chunk: 256k}
  - command: infer randread
    id: rr
    params: {file-size: 256KiB, files: 2, block-size: 4k, queue-depth: 1, runtime: 0.05s,
             cache: allow}
"""


def test_a_suite_summarises_each_steps_own_audit(runner, tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    res = runner.invoke(cli, ["run", str(tmp_path / "s.yaml"), "--target",
                              str(tmp_path / "t"), "--results-dir", str(tmp_path / "res")])
    assert res.exit_code == 0, res.output
    [d] = [p for p in (tmp_path / "res").iterdir() if "-suite-" in p.name]
    r = load(d)
    a = r.audit
    assert [s["step"] for s in a["steps"]] == ["ck", "load", "rr"]
    assert [s["kind"] for s in a["steps"]] == ["checkpoint", "infer-load", "infer-randread"]
    # each step's verdict is its own result's, measured while it ran
    assert [s["verdict"] for s in a["steps"]] == [c["audit"]["verdict"] for c in r.children]
    assert a["verdict"] == "agrees", a
    assert a["counts"] == {"agrees": 3}
    assert verify.audit_line(a) == "byte audit (agrees): steps: 3 agrees"


def test_a_suite_with_a_differing_step_differs(tmp_path, monkeypatch):
    ok = _randread(tmp_path / "a")
    _doctored(monkeypatch, 1.05)
    bad = _randread(tmp_path / "b")
    kids = [{**ok.to_dict(), "step_id": "ok"}, {**bad.to_dict(), "step_id": "bad"},
            {"kind": "io", "step_id": "none"}]
    s = verify.summarise_steps(kids)
    assert s["verdict"] == "differs"
    assert s["agrees"] is False
    assert [x["verdict"] for x in s["steps"]] == ["agrees", "differs", "none"]
    assert s["warnings"]
    assert all(w.startswith("byte audit: step 'bad' differs: ") for w in s["warnings"])
    assert verify.summarise_steps([kids[2]])["verdict"] == "unchecked"


# --- under MPI: every rank's counters, summed on rank 0 ----------------------------------
def _rank_window(tmp_path: Path, name: str, nbytes: int, host: str) -> dict[str, Any]:
    """A run window around a real write of `nbytes` (a rank's share), as rank_counts."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rw = verify.RunWindow(tmp_path)
    with open(tmp_path / name, "wb") as f:
        f.write(b"\xa5" * nbytes)
        f.flush()
        os.fsync(f.fileno())
    rw.close()
    return verify.rank_counts(rw, host)


def _merged(nbytes: int) -> dict[str, Any]:
    return {"name": "seqwrite", "direction": "write", "bytes": nbytes, "engine": "native",
            "metrics": {"ranks": 2}}


def test_mpi_sums_are_judged_and_a_doctored_sum_differs(tmp_path):
    n = 3 << 20
    per = [_rank_window(tmp_path, f"r{i}", n, "host-a") for i in range(2)]
    rw = verify.RunWindow(tmp_path).close()  # rank 0's own window: not what is judged
    a = verify.judge_run(rw, [_merged(2 * n)], ranks=2, per_rank=per)
    assert a["verdict"] == "agrees", a
    c = next(x for x in a["checks"] if x["counter"] == "wchar")
    assert c["measured_bytes"] == 2 * n
    assert c["counter_bytes"] == sum(r["proc_io"]["wchar"] for r in per) == 2 * n
    assert a["ranks"]["ranks"] == 2
    assert len(a["ranks"]["per_rank"]) == 2
    # one rank's bytes claimed twice over, or only one rank's counted: caught
    bad = verify.judge_run(rw, [_merged(3 * n)], ranks=2, per_rank=per)
    assert bad["verdict"] == "differs"
    assert "the 2 ranks' process trees" in bad["warnings"][0]
    short = verify.judge_run(rw, [_merged(2 * n)], ranks=2, per_rank=per[:1])
    assert short["verdict"] == "skipped"
    assert short["agrees"] is None


def test_mpi_device_counters_count_once_per_host(tmp_path):
    n = 2 << 20
    same = [_rank_window(tmp_path, f"s{i}", n, "host-a") for i in range(2)]
    if same[0]["device"] is None:
        pytest.skip(f"{tmp_path} is on no block device: /proc/diskstats cannot be read")
    both = verify.sum_counts(same)
    # ranks sharing a host share its device counters: the lowest rank's window, once
    assert both["disk"] == tuple(same[0]["disk"])
    assert both["device_hosts"] == [f"host-a:{same[0]['device']}"]
    apart = [same[0], {**same[1], "host": "host-b"}]
    two = verify.sum_counts(apart)
    assert two["disk"] == (same[0]["disk"][0] + same[1]["disk"][0],
                           same[0]["disk"][1] + same[1]["disk"][1])
    assert len(two["device_hosts"]) == 2
    # the process counters are per process: summed whatever the hosts
    assert both["proc_io"]["wchar"] == two["proc_io"]["wchar"] == 2 * n
    # a rank whose target has no block device (a network file system): no device sum
    # (a partial one would claim the other host's bytes never reached a device)
    none = verify.sum_counts([same[0], {**same[1], "host": "host-b", "device": None,
                                        "disk": None}])
    assert none["disk"] is None
