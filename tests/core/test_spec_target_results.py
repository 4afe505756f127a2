import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from iobench import cache, results, target
from iobench.errors import SpecError, TargetError, UsageError
from iobench.results import Recorder, make_phase
from iobench.spec import from_mapping, load, override, size_field
from iobench.stats import Histogram


@dataclass(frozen=True)
class Inner:
    block_size: int = size_field(4096)
    depth: int = 1


@dataclass(frozen=True)
class Outer:
    name: str
    mode: Literal["read", "write"] = "read"
    inner: Inner = field(default_factory=Inner)
    ratios: list[float] = field(default_factory=list)


def test_spec_loads_sizes_and_nesting():
    s = from_mapping(Outer, {"name": "x", "inner": {"block-size": "1MiB", "depth": 4},
                             "ratios": [1, 2.5]})
    assert s.inner.block_size == 1048576
    assert s.inner.depth == 4
    assert s.ratios == [1.0, 2.5]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "inner": {"blok_size": "4k"}},
         "inner.blok_size: unknown key (did you mean 'block_size'?)"),
        ({"name": "x", "inner": {"depth": "four"}}, "inner.depth: expected an integer"),
        ({"name": "x", "mode": "reed"}, "mode: 'reed' is not allowed (did you mean 'read'?)"),
        ({"name": 3}, "name: expected a string"),
        ({"mode": "read"}, "missing required key 'name'"),
        ({"name": "x", "inner": {"block_size": "4q"}}, "inner.block_size: unknown unit"),
        ({"name": "x", "ratios": 3}, "ratios: expected a list"),
    ],
)
def test_spec_rejects_with_key_path(data, message):
    with pytest.raises(SpecError) as e:
        from_mapping(Outer, data)
    assert message in e.value.format_message()


def test_spec_yaml_and_override(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text("name: w\nmode: write\n")
    s = load(Outer, p)
    assert s.mode == "write"
    assert override(s, mode="read", name=None).mode == "read"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="invalid YAML at line"):
        load(Outer, bad)


def test_target_created_marked_and_cleaned(tmp_path):
    root = tmp_path / "t"
    t = target.prepare(root)
    assert (root / ".iobench").exists()
    d = t.subdir("io")
    (d / "a.dat").write_bytes(b"x")
    (root / "user-file").write_text("mine")  # appears later, not iobench's
    removed, foreign = target.clean(root)
    assert removed == ["io"]
    assert foreign == ["user-file"]
    assert (root / "user-file").read_text() == "mine"
    assert not (root / ".iobench").exists()


def test_target_refusals(tmp_path):
    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / "data").write_text("precious")
    with pytest.raises(TargetError, match="not empty and has no .iobench marker"):
        target.prepare(foreign)
    t = target.prepare(foreign, force=True)  # --force marks it but owns nothing
    with pytest.raises(TargetError, match="'data' exists and was not created by iobench"):
        t.claim("data")
    assert (foreign / "data").read_text() == "precious"
    with pytest.raises(TargetError, match="is under /proc"):
        target.prepare("/proc/iobench")
    with pytest.raises(TargetError, match="is a character device"):
        target.prepare("/dev/null")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(TargetError, match="is not a directory"):
        target.prepare(f)
    with pytest.raises(TargetError, match="has no .iobench marker"):
        target.clean(tmp_path)


def test_target_free_space_check(tmp_path):
    t = target.prepare(tmp_path / "t")
    free = t.free_bytes()
    t.check_space(1024)
    with pytest.raises(TargetError) as e:
        t.check_space(free + 10**15, "test write")
    msg = e.value.format_message()
    assert str(free + 10**15) in msg
    assert "are free" in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_target_unwritable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(TargetError, match="not writable"):
        target.prepare(ro)


def test_result_roundtrip_atomic_and_future_refused(tmp_path):
    h = Histogram()
    h.record_many([1000, 2000, 3000])
    r = Recorder(kind="io", name="seqread", spec={"size": 1})
    r.add_phase(make_phase("seqread", nbytes=3 * 4096, seconds=0.5, ops=3, latency=h))
    path = results.save(r, tmp_path / "res")
    assert path.name == "result.json"
    assert path.parent.name.endswith("-io-seqread")
    assert not list(path.parent.glob(".*tmp*"))
    back = results.load(path.parent)
    p = back.phases[0]
    assert p["bytes_per_s"] == 3 * 4096 / 0.5
    assert p["ops_per_s"] == 6.0
    assert p["latency_ns"]["p50"] == pytest.approx(2000, rel=0.004)
    assert Histogram.from_dict(p["histogram"]).count == 3
    # a second save never overwrites the first
    path2 = results.save(r, tmp_path / "res")
    assert path2 != path
    d = json.loads(path.read_text())
    d["schema_version"] = 99
    future = tmp_path / "future.json"
    future.write_text(json.dumps(d))
    with pytest.raises(UsageError, match="schema 99 .* upgrade iobench"):
        results.load(future)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        results.load(tmp_path / "junk.json")


def test_result_status_never_upgrades_failure():
    r = Recorder(kind="io", name="x", spec={})
    r.mark("failed", "boom")
    r.mark("partial", "later")
    assert (r.status, r.reason) == ("failed", "boom")


def test_cache_verdicts(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(os.urandom(8192))
    method = cache.prepare("drop", [f])
    assert method in ("drop_caches", "fadvise_dontneed")
    assert cache.prepare("direct", [f]) == "o_direct"
    v = cache.verdict("allow", "none", 8192)
    assert v["may_be_cached"] is True
    assert "may come from memory" in v["note"]
    v = cache.verdict("direct", "o_direct", 8192)
    assert v["may_be_cached"] is False
    v = cache.verdict("drop", method, 8192, rereads=True)
    assert v["may_be_cached"] is True  # tiny data set re-read: later passes hit RAM
    v = cache.verdict("drop", method, 8192, rereads=False)
    assert v["may_be_cached"] is False
    assert v["data_to_ram"] < 1
    with pytest.raises(UsageError, match="did you mean 'drop'"):
        cache.check_policy("dorp")


def test_sysinfo_collects_target(tmp_path):
    from iobench import sysinfo

    info = sysinfo.collect(tmp_path)
    assert info["cpu_count"] >= 1
    assert info["ram_bytes"] > 0
    assert info["target"]["fs_type"]
    assert Path(info["target"]["mount_point"]).exists()
