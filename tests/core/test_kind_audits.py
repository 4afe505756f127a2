"""The run-level byte audit (iobench.verify.judge_run, called by iobench.runner.run) for
checkpoint, infer load, infer randread and the suite: a real run of each agrees with the
kernel's counters for this process tree, its untimed preparation I/O (layout, weight
files, the warm pass, manifests, the messages to checkpoint's rank processes) is
declared and left out, and a claimed byte count doctored by a few per cent before the
judge sees it is caught. The counters are the kernel's own: nothing here fakes them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from iobench import verify
from iobench.cli import cli
from iobench.kinds import checkpoint, infer_load
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
    "checkpoint": _checkpoint, "infer-load": _load, "infer-randread": _randread}


# A claim above what the kernel counted has no floor (5% is caught at any size); one below
# it is a surplus, allowed up to 1 MiB (verify.SURPLUS_FLOOR) on these few-MiB runs: a
# claim of a quarter of the bytes is past it for each kind.
@pytest.mark.parametrize("scale", [1.05, 0.25])
@pytest.mark.parametrize("kind", sorted(RUNS))
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
