"""The infer-kvcache kind as a library: run() without Click, its declared metrics, v1
results with the old (millisecond) names."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import iobench
from iobench import results
from iobench.errors import UsageError
from iobench.kinds import kvcache
from iobench.kinds.base import RunOptions


def tiny(tmp_path: Path, **kw):
    values = {"model": "tiny", "capacity": "4MiB", "cpu_cache": "1MiB", "users": 1,
              "requests": 8, "search_requests": 1, "queue_depth": 2, **kw}
    return kvcache.run(kvcache.build(**values),
                       RunOptions(target=tmp_path / "t", results_dir=tmp_path / "r"))


@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
def test_run_api_returns_a_result_matching_the_declarations(tmp_path, layout):
    r = tiny(tmp_path, layout=layout, drive_size="1GB")
    assert r.status == "ok", r.reason
    assert kvcache.METRICS.check(r) == []
    assert r.kind == "infer-kvcache"
    assert r.metrics["kv_token_bytes"] == 1024  # tiny: 2 x 2 layers x 2 heads x 64 x bf16
    assert r.metrics["requests"] == 8
    assert "max_context_tokens" in r.metrics
    assert "dwpd" in r.metrics
    reads = next(p for p in r.phases if p.name == "kv chunk reads (storage)")
    assert reads.ops == r.metrics["chunk_reads"]
    assert results.load(r.run_dir).to_dict() == r.to_dict()


def test_no_search_leaves_out_only_optional_metrics(tmp_path):
    r = tiny(tmp_path, search=False)
    assert r.status == "ok", r.reason
    assert kvcache.METRICS.check(r) == []
    assert "max_context_tokens" not in r.metrics


def test_the_package_is_iobench_kvcache():
    assert iobench.kvcache is kvcache


@pytest.mark.parametrize(("values", "message"), [
    ({"users": 0}, "--users 0"),
    ({"queue_depth": 0}, "--queue-depth 0"),
    ({"layout": "heap"}, "--layout 'heap'"),
    ({"ttft": "0s"}, "--ttft"),
    ({"chunk_tokens": 0}, "--chunk-tokens 0"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, values, message):
    with pytest.raises(UsageError, match=message):
        kvcache.build(model="tiny", **values)
    assert not (tmp_path / "t").exists()


def test_a_schema_1_result_loads_with_its_metrics_renamed_and_rescaled(tmp_path):
    r = tiny(tmp_path, requests=4)
    d = r.to_dict()
    d["schema_version"] = 1
    m = d["metrics"]
    m["restore_p99_ms"] = m.pop("restore_p99_us") / 1e3
    m["write_gb_per_hour"] = m.pop("written_per_hour_bytes") / 1e9
    m["bytes_per_token"] = m.pop("kv_token_bytes")
    m["replay_seconds"] = m.pop("replay_s")
    probe = next(p for p in d["phases"] if p["name"].startswith("ttft probe"))
    probe["metrics"]["p99_ms"] = probe["metrics"].pop("restore_p99_us") / 1e3
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(d))
    up = results.load(path)
    assert up.schema_version == 2
    assert up.metrics["restore_p99_us"] == pytest.approx(r.metrics["restore_p99_us"])
    assert up.metrics["written_per_hour_bytes"] == pytest.approx(
        r.metrics["written_per_hour_bytes"])
    assert up.metrics["kv_token_bytes"] == 1024
    assert "restore_p99_ms" not in up.metrics
    p = next(p for p in up.phases if p.name.startswith("ttft probe"))
    q = next(p for p in r.phases if p.name.startswith("ttft probe"))
    assert p.metrics["restore_p99_us"] == pytest.approx(q.metrics["restore_p99_us"])
    assert kvcache.METRICS.check(up) == []


HOOK = """
import sys, traceback
seen = []
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('click', 'rich'):
            frames = [f.filename for f in traceback.extract_stack()
                      if '/iobench/' in f.filename]
            seen.append((name, frames[-1] if frames else '?'))
        return None
sys.meta_path.insert(0, Hook())
import iobench.kinds.kvcache.run
print(repr(sorted({(n.split('.')[0], f.split('/iobench/')[-1]) for n, f in seen})))
"""


def test_run_imports_neither_click_nor_rich():
    """No module of the kind (nor what run.py imports) imports rich, and click is reached
    only through iobench/errors.py (the shared exception base, a click.ClickException:
    the framework's, as for every kind)."""
    out = subprocess.run([sys.executable, "-c", HOOK], check=True, capture_output=True,
                         text=True).stdout
    importers = eval(out)  # noqa: S307 - our own repr of a set of string pairs
    assert all(mod == "click" for mod, _ in importers), importers
    assert {f for _, f in importers} <= {"errors.py"}, importers
