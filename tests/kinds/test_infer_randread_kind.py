"""The infer-randread kind as a library: run() without Click, its declared metrics, v1
results with the old grid names, and a click-free run module."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import iobench
from iobench import results
from iobench.errors import UsageError
from iobench.kinds import infer_randread as rr
from iobench.kinds.base import RunOptions


def tiny(tmp_path: Path, **kw):
    values = {"file_size": "256KiB", "files": 2, "block_sizes": "4k,16k",
              "queue_depths": "1,2", "runtime": "0.05s", "cache": "allow", **kw}
    return rr.run(rr.build(**values),
                  RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r"))


def test_run_api_returns_a_result_matching_the_declarations(tmp_path):
    r = tiny(tmp_path)
    assert r.status == "ok", r.reason
    assert rr.METRICS.check(r) == []
    assert [p.name for p in r.phases] == ["randread bs=4KiB qd=1", "randread bs=4KiB qd=2",
                                          "randread bs=16KiB qd=1", "randread bs=16KiB qd=2"]
    for p in r.phases:
        assert p.bytes == p.ops * p.metrics["block_bytes"]
        assert r.metrics[f"randread.bs{p.metrics['block_bytes']}.qd"
                         f"{p.metrics['queue_depth']}.ops_per_s"] == p.ops_per_s
    assert r.metrics["max_ops_per_s"] == max(p.ops_per_s for p in r.phases)
    assert results.load(r.run_dir).to_dict() == r.to_dict()
    assert iobench.infer_randread is rr


def test_an_undeclared_cell_metric_is_found(tmp_path):
    d = tiny(tmp_path, block_sizes="4k", queue_depths="1").to_dict()
    d["metrics"]["randread.bs4096.qd1.iops"] = 1.0
    problems = rr.METRICS.check(results.Result.from_dict(d))
    assert problems == ["infer-randread: result metric 'randread.bs4096.qd1.iops' is not "
                        "declared"]


def test_a_schema_1_result_loads_with_its_grid_renamed(tmp_path):
    r = tiny(tmp_path)
    d = r.to_dict()
    d["schema_version"] = 1
    new = dict(d["metrics"])
    d["metrics"] = {k.replace(".ops_per_s", ".iops"): v for k, v in new.items()}
    d["metrics"]["max_iops"] = d["metrics"].pop("max_ops_per_s")
    for p in d["phases"]:
        p["iops"] = p.pop("ops_per_s")
        p["metrics"]["block_size"] = p["metrics"].pop("block_bytes")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert up.schema_version == 2
    assert dict(up.metrics) == new
    assert up.phases[0].metrics["block_bytes"] == 4096
    assert "block_size" not in up.phases[0].metrics
    assert rr.METRICS.check(up) == []


@pytest.mark.parametrize(("values", "message"), [
    ({"block_sizes": "6k", "cache": "direct"}, "needs a multiple of 4096"),
    ({"block_sizes": "1MiB"}, "is larger than --file-size"),
    ({"queue_depths": "0"}, "must be >= 1"),
    ({"runtime": 0}, "--runtime must be > 0"),
    ({"engine": "dd"}, "--engine 'dd'"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, values, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        rr.build(file_size="256KiB", **values)
    assert not (tmp_path / "t").exists()


def test_the_run_module_imports_neither_click_nor_rich():
    code = ("import sys, iobench.kinds.infer_randread.run, iobench.kinds.infer_randread; "
            "bad = [m for m in ('click', 'rich') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
