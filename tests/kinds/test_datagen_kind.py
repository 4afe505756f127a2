"""The datagen kind as a library: run() without Click, its declared metrics, v1 results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import iobench
from iobench import results
from iobench.errors import UsageError
from iobench.kinds import datagen
from iobench.kinds.base import RunOptions


def options(tmp_path: Path) -> RunOptions:
    return RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r")


def tiny(tmp_path: Path, **kw):
    kw.setdefault("files", 2)
    return datagen.run(datagen.build(workload="tiny", jobs=1, **kw), options(tmp_path))


def test_run_api_writes_the_data_set_and_matches_the_declarations(tmp_path):
    r = tiny(tmp_path)
    assert r.status == "ok", r.reason
    assert datagen.METRICS.check(r) == []
    assert r.metrics["files"] == 2
    assert r.metrics["complete"] is True
    ph = r.phases[0]
    assert ph.name == "datagen"
    assert ph.direction == "write"
    on_disk = sum(p.stat().st_size for p in (tmp_path / "t" / "datagen" / "tiny").iterdir()
                  if p.name != "manifest.json")
    assert ph.bytes == r.metrics["bytes"] == r.metrics["dataset_bytes"] == on_disk
    with pytest.raises(TypeError):
        r.metrics["files"] = 3  # type: ignore[index]
    assert results.load(r.run_dir).to_dict() == r.to_dict()
    # the reader API beside it reads what was written
    ds = datagen.open_dataset(tmp_path / "t", "tiny")
    assert ds.spec.files == 2


def test_verify_and_sizing_metrics_are_declared(tmp_path):
    r = tiny(tmp_path, files=None, dataset_size="1MiB")
    assert r.status == "ok", r.reason
    assert datagen.METRICS.check(r) == []
    assert r.metrics["dataset_requested_bytes"] == 1 << 20
    assert r.metrics["dataset_data_bytes"] >= 1 << 20  # never under the request
    v = datagen.run(datagen.build(workload="tiny", verify=True, jobs=1), options(tmp_path))
    assert v.status == "ok", v.reason
    manifest = json.loads((tmp_path / "t" / "datagen" / "tiny" / "manifest.json").read_text())
    assert v.metrics["files_checked"] == len(manifest["entries"])  # data files and indexes
    assert v.metrics["files_bad"] == 0
    # a verify run carries no generation figures: only those may be "missing"
    gen_only = {"files", "gb_per_s", "files_skipped", "files_total", "dataset_bytes",
                "dataset_data_bytes", "complete", "worker_max_rss_bytes", "directory"}
    problems = datagen.METRICS.check(v)
    assert [p for p in problems if "not declared" in p] == []
    assert {p.split("'")[1] for p in problems} <= gen_only


# iobench/datagen/ still holds spec.py (the training workload YAML, moved by the train
# kind): while it does, `iobench.kinds.datagen` is that namespace package once anything imported
# iobench.workload, and the attribute does not reach the kind.
_OLD_SPEC = Path(iobench.__file__).parent / "datagen" / "spec.py"


@pytest.mark.xfail(_OLD_SPEC.exists(), strict=True,
                   reason="iobench/datagen/spec.py not moved yet (the train kind moves it)")
def test_the_package_exposes_the_kind_by_name():
    assert iobench.kinds.datagen is datagen
    assert iobench.kinds.datagen.run is datagen.run


def test_what_if_writes_no_data(tmp_path):
    info = datagen.what_if(datagen.build(workload="tiny", dataset_size="10MiB"),
                           options(tmp_path))
    assert info["files"] == 21
    assert info["workload"] == "tiny"
    assert not list((tmp_path / "t" / "datagen" / "tiny").iterdir())


def test_bad_values_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="give only one way to size"):
        datagen.build(workload="tiny", files=2, dataset_size="1MiB")
    with pytest.raises(UsageError, match="--jobs: 0 must be >= 1"):
        datagen.build(workload="tiny", jobs=0)
    with pytest.raises(UsageError, match="--content 'noise'"):
        datagen.build(workload="tiny", content="noise")
    with pytest.raises(UsageError, match="missing WORKLOAD"):
        datagen.build()
    assert not (tmp_path / "t").exists()


def test_a_schema_1_result_loads_with_its_metrics_renamed(tmp_path):
    r = tiny(tmp_path, files=None, dataset_size="1MiB")
    d = r.to_dict()
    d["schema_version"] = 1
    d["metrics"]["dataset_size_requested"] = d["metrics"].pop("dataset_requested_bytes")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert up.schema_version == results.SCHEMA_VERSION == 2
    assert up.metrics["dataset_requested_bytes"] == 1 << 20
    assert "dataset_size_requested" not in up.metrics
    assert datagen.METRICS.check(up) == []


# Records every module that imports click or rich (an `import` statement runs
# builtins.__import__ even when the module is already loaded). iobench.errors subclasses
# click.ClickException for the one-line `error:` rendering, which every kind shares;
# nothing else that run.py pulls in may import them.
_PROBE = """
import builtins, sys
real = builtins.__import__
importers = set()
def spy(name, globals=None, locals=None, fromlist=(), level=0):
    who = (globals or {}).get("__name__", "?")
    if level == 0 and name.split(".")[0] in ("click", "rich") and \\
            who.split(".")[0] not in ("click", "rich"):
        importers.add(who)
    return real(name, globals, locals, fromlist, level)
builtins.__import__ = spy
import iobench.kinds.datagen.run
import iobench.kinds.datagen.spec
import iobench.kinds.datagen.metrics
print(sorted(importers), "rich" in sys.modules)
"""


def test_run_imports_neither_click_nor_rich():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["[]", "False"], out
