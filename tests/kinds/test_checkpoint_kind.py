"""The checkpoint kind as a library: run() without Click, its declared metrics, v1 results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import iobench
from iobench import results
from iobench.errors import SpecError, UsageError
from iobench.kinds import checkpoint
from iobench.kinds.base import RunOptions


def tiny(tmp_path: Path, model: str = "tiny", **kw):
    spec = checkpoint.build(model=model, scale=0.1, cache="allow", **kw)
    return checkpoint.run(spec, RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r"))


def test_run_api_returns_a_result_matching_the_declarations(tmp_path):
    r = tiny(tmp_path, count=2)
    assert r.status == "ok", r.reason
    assert checkpoint.METRICS.check(r) == []
    assert [p.name for p in r.phases] == ["write-1", "write-2", "read-1", "read-2"]
    m = r.metrics
    assert m["verify_errors"] == 0
    assert m["ranks"] == 4
    assert m["write_s"] > 0
    assert m["read_s"] > 0
    assert 0 < m["waste_pct"] < 100
    assert m["params"] == iobench.model.parameters(iobench.model.load("tiny-pp"))
    rows = r.phases[0].metrics["ranks"]
    assert all(row["fsync_s"] > 0 for row in rows)
    assert results.load(r.run_dir).to_dict() == r.to_dict()


def test_async_metrics_are_declared(tmp_path):
    r = tiny(tmp_path, async_mode=True, staging="32MiB")
    assert r.status == "ok", r.reason
    assert checkpoint.METRICS.check(r) == []
    assert 0 < r.metrics["stall_s"] <= r.metrics["persist_s"]
    assert r.metrics["async_waste_pct"] <= r.metrics["waste_pct"]


def test_the_package_exposes_the_kind_by_name():
    assert iobench.checkpoint is checkpoint


def test_bad_values_are_one_line_errors_before_anything_is_written(tmp_path):
    with pytest.raises(UsageError, match="leaves nothing to do"):
        checkpoint.build(model="tiny", write=False, read=False)
    with pytest.raises(UsageError, match="--staging 1024"):
        checkpoint.build(model="tiny", staging="1KiB")
    with pytest.raises(SpecError, match="unknown checkpoint preset"):
        tiny(tmp_path, model="nosuch")
    assert not (tmp_path / "t").exists()


def test_a_schema_1_result_loads_with_its_metrics_renamed(tmp_path):
    r = tiny(tmp_path)
    d = r.to_dict()
    d["schema_version"] = 1
    m = d["metrics"]
    for new, old in (("write_s", "write_seconds"), ("read_s", "read_seconds"),
                     ("write_fsync_s", "write_fsync_seconds"),
                     ("write_first_s", "write_first_seconds")):
        m[old] = m.pop(new)
    m["waste_fraction"] = m.pop("waste_pct") / 100
    m["mtbf_hours"] = m.pop("mtbf_s") / 3600
    ph = d["phases"][0]["metrics"]
    ph["rank_peak_rss_growth_bytes_max"] = ph.pop("rank_peak_rss_growth_max_bytes")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert up.schema_version == 2
    assert up.metrics["write_s"] == r.metrics["write_s"]
    assert up.metrics["read_s"] == r.metrics["read_s"]
    assert up.metrics["write_fsync_s"] == r.metrics["write_fsync_s"]
    assert up.metrics["waste_pct"] == pytest.approx(r.metrics["waste_pct"])  # x100
    assert up.metrics["mtbf_s"] == pytest.approx(r.metrics["mtbf_s"])  # x3600
    assert "waste_fraction" not in up.metrics
    assert "write_seconds" not in up.metrics
    assert up.phases[0].metrics["rank_peak_rss_growth_max_bytes"] == \
        r.phases[0].metrics["rank_peak_rss_growth_max_bytes"]
    assert checkpoint.METRICS.check(up) == []
    # an old result's per-rank rows still render
    from iobench.kinds.checkpoint import render

    old = dict(d, schema_version=1)
    for row in old["phases"][0]["metrics"]["ranks"]:
        row["fsync_seconds"] = row.pop("fsync_s")
    path.write_text(json.dumps(old))
    assert render.tables(results.load(path))


def test_young_interval_is_neither_better_nor_worse():
    assert checkpoint.METRICS.get("young_interval_s").better == "neither"
    assert checkpoint.METRICS.get("waste_pct").unit == "%"
    assert checkpoint.METRICS.get("verify_errors").unit == "count"


def test_run_imports_neither_click_nor_rich():
    code = ("import sys, iobench.kinds.checkpoint.run; "
            "assert 'click' not in sys.modules, 'click'; "
            "assert 'rich' not in sys.modules, 'rich'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


class _TwoRanks:
    """A world of two ranks seen from one of them (no MPI): what note_fault reads."""

    size = 2
    peers: list = []
    missing: list = []

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.notified: list[str] = []

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def hostname(self) -> str:
        return "h"

    def fault(self):
        return None

    def notify_fault(self, what: str) -> None:
        self.notified.append(what)


def test_rank_0_writes_the_reason_naming_the_rank_at_once(tmp_path):
    """The fix for mpirun SIGKILLing rank 0 while it stops its rank processes: the
    provisional result names the faulty rank as soon as rank 0 learns of it."""
    from iobench import interrupt, runner
    from iobench.kinds.base import Ctx

    rec = results.Recorder(kind="checkpoint", name="tiny", spec={})
    rec.mark("failed", "the run did not finish (killed, or the machine stopped)")
    path = results.save(rec, tmp_path)
    rec.status, rec.reason = "ok", None
    rec.run_dir = path.parent
    runner.note_fault(rec, interrupt.PeerFault("rank 1 (h) was interrupted (SIGTERM)"),
                      Ctx(world=_TwoRanks(0)))  # type: ignore[arg-type]
    d = json.loads(path.read_text())
    assert d["status"]["state"] == "failed"
    assert d["status"]["reason"].startswith("rank 1 (h) was interrupted (SIGTERM)")
    other = _TwoRanks(1)
    runner.note_fault(rec, interrupt.Terminated(), Ctx(world=other))  # type: ignore[arg-type]
    assert other.notified == ["was interrupted (SIGTERM)"]
