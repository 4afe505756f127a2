"""The io kind as a library: run() without Click, its declared metrics, v1 results."""

import json
from pathlib import Path

import pytest

import iobench
from iobench import results
from iobench.kinds import io
from iobench.kinds.base import RunOptions, metric


def tiny(tmp_path: Path, pattern: str = "seqread", **kw):
    spec = io.build(pattern=pattern, size="256KiB", block_size="64KiB", cache="allow", **kw)
    return io.run(spec, RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r"))


@pytest.mark.parametrize("pattern", ["seqread", "randwrite"])
def test_run_api_returns_a_frozen_result_matching_the_declarations(tmp_path, pattern):
    r = tiny(tmp_path, pattern)
    assert r.status == "ok", r.reason
    assert io.METRICS.check(r) == []
    assert r.phases[0].bytes == 256 << 10
    with pytest.raises(TypeError):
        r.metrics["gb_per_s"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        r.status = "failed"  # type: ignore[misc]
    saved = results.load(r.run_dir)
    assert saved.to_dict() == r.to_dict()


def test_the_package_exposes_kinds_by_name():
    assert iobench.io is io
    assert iobench.io.run is io.run


def test_an_undeclared_metric_is_found(tmp_path):
    r = tiny(tmp_path)
    d = r.to_dict()
    d["metrics"]["made_up_pct"] = 1.0
    del d["metrics"]["ranks"]
    problems = io.METRICS.check(results.Result.from_dict(d))
    assert "io: result metric 'made_up_pct' is not declared" in problems
    assert "io: declared metric 'ranks' is missing" in problems


def test_bad_values_are_one_line_usage_errors(tmp_path):
    from iobench.errors import UsageError

    with pytest.raises(UsageError, match="--block-size 1048576 is larger than --size"):
        io.build(pattern="seqread", size="64KiB", block_size="1MiB")
    with pytest.raises(Exception, match="pattern"):
        io.build(pattern="sideways")
    assert not (tmp_path / "t").exists()


def test_a_schema_1_result_loads_with_its_metrics_renamed(tmp_path):
    r = tiny(tmp_path)
    d = r.to_dict()
    d["schema_version"] = 1
    d["metrics"]["iops"] = d["metrics"].pop("ops_per_s")
    for p in d["phases"]:
        p["iops"] = p.pop("ops_per_s")
        p["metrics"]["cpu_seconds"] = p["metrics"].pop("cpu_s", 0.5)
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert up.schema_version == results.SCHEMA_VERSION == 2
    assert up.metrics["ops_per_s"] == r.metrics["ops_per_s"]
    assert "iops" not in up.metrics
    assert up.phases[0]["ops_per_s"] == pytest.approx(r.phases[0].ops_per_s)
    assert "cpu_s" in up.phases[0].metrics
    assert "cpu_seconds" not in up.phases[0].metrics


def test_metric_names_follow_the_suffix_rule():
    assert metric("stall_max_s", "lower", "x").unit == "s"
    assert metric("read_bytes_per_s", "higher", "x").unit == "B/s"
    with pytest.raises(ValueError, match="no unit suffix"):
        metric("stall_seconds_max", "lower", "x")
    with pytest.raises(ValueError, match="suffix says"):
        metric("wait_us", "lower", "x", unit="ms")
