"""Each workload under real mpirun: totals equal the single-process run's."""

import pytest

from .conftest import only_result, single

pytestmark = pytest.mark.mpi


def _summary(d):
    return [(p["name"], p["bytes"], p["ops"]) for p in d["phases"]]


@pytest.mark.parametrize("np_", [2, 3])
def test_checkpoint_ranks_split_over_mpi(mpirun, tmp_path, np_):
    args = ["checkpoint", "tiny", "--ranks", "4", "--count", "2"]
    mpirun(np_, [*args, "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    d = only_result(tmp_path / "r")
    ref = single([*args, "--target", str(tmp_path / "t1"), "--results-dir",
                  str(tmp_path / "r1")])
    assert d["status"]["state"] == "ok"
    assert _summary(d) == _summary(ref)
    for p in d["phases"]:
        assert len(p["metrics"]["ranks"]) == 4  # every checkpoint rank reported once
        assert p["latency_ns"]["count"] == p["ops"]
    assert d["metrics"]["write_gb_per_s"] > 0
    # the layout on disk is the single-process one
    on_disk = sorted(x.relative_to(tmp_path / "t").as_posix()
                     for x in (tmp_path / "t").rglob("*") if x.is_file() and x.name != ".iobench")
    ref_disk = sorted(x.relative_to(tmp_path / "t1").as_posix()
                      for x in (tmp_path / "t1").rglob("*")
                      if x.is_file() and x.name != ".iobench")
    assert on_disk == ref_disk


@pytest.mark.parametrize("np_", [2, 3])
def test_datagen_files_split_over_mpi(mpirun, tmp_path, np_):
    import json

    args = ["datagen", "tiny", "--jobs", "1"]
    mpirun(np_, [*args, "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    d = only_result(tmp_path / "r")
    ref = single([*args, "--target", str(tmp_path / "t1"), "--results-dir",
                  str(tmp_path / "r1")])
    assert d["status"]["state"] == "ok"
    for key in ("files", "bytes", "dataset_bytes", "files_total"):
        assert d["metrics"][key] == ref["metrics"][key], key
    assert d["phases"][0]["metrics"]["ranks"] == np_
    # one manifest, identical entries (names, sizes, checksums) to the single-process run
    m = json.loads((tmp_path / "t" / "datagen" / "tiny" / "manifest.json").read_text())
    m1 = json.loads((tmp_path / "t1" / "datagen" / "tiny" / "manifest.json").read_text())
    assert m["entries"] == m1["entries"]
    assert not list((tmp_path / "t" / "datagen" / "tiny").glob(".manifest-rank*"))
    p = mpirun(np_, [*args, "--verify", "--target", str(tmp_path / "t"), "--results-dir",
                     str(tmp_path / "rv")])
    assert p.returncode == 0
