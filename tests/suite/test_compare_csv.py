"""Noise-aware compare (hand-checked bands) and the CSV export of suites."""

import csv
import io
import math

import pytest

from iobench.cli import cli
from iobench.report import compare, csv_out
from iobench.results import Recorder, Result, make_phase, save


def result(gbps: float, runs: list[float] | None = None, cv: float | None = None,
           kind: str = "train", name: str = "unet3d") -> Result:
    r = Recorder(kind=kind, name=name, spec={})
    r.add_phase(make_phase("train", nbytes=int(gbps * 1e9), seconds=1.0, ops=1000))
    r.metrics["gb_per_s"] = gbps
    r.metrics["au_pct"] = 95.0
    r.metrics["dataset_bytes"] = 1000
    if runs is not None:
        r.metrics["runs"] = [{"run": i + 1, "gb_per_s": v} for i, v in enumerate(runs)]
        r.metrics["gb_per_s"] = sum(runs) / len(runs)
    if cv is not None:
        r.metrics["runs_cv_pct"] = cv
    return r


def row(rows, section, metric):
    return next(x for x in rows if x[0] == section and x[1] == metric)


def test_without_runs_five_percent_band():
    rows = compare.delta_rows(result(1.0), result(1.03))
    _, _, a, b, d, verdict = row(rows, "train", "GB/s")
    assert (a, b) == (1.0, 1.03)
    assert d == pytest.approx(3.0)
    assert verdict == "within noise (±5.0%)"
    rows = compare.delta_rows(result(1.0), result(0.9))
    assert row(rows, "train", "GB/s")[5] == "worse (beyond ±5.0%)"
    assert row(rows, "result", "gb_per_s")[5] == "worse (beyond ±5.0%)"
    assert row(rows, "result", "au_pct")[5] == "within noise (±5.0%)"


def test_with_runs_band_from_standard_error():
    # A: mean 1.0, sample sd 0.1 (n=3); B: mean 1.05, sd 0.1 (n=3)
    # Welch df = (2v)^2 / (2 v^2 / 2) = 4, t(0.975, 4) = 2.776 (tables);
    # band = 2.776 * sqrt(0.01/3 + 0.01/3) / 1.0 = 22.67%: +5% is noise
    a = result(0, runs=[1.0, 1.1, 0.9])
    b = result(0, runs=[1.05, 1.15, 0.95])
    band = 2.776 * math.sqrt(0.01 / 3 + 0.01 / 3) * 100
    _, _, ma, mb, d, verdict = row(compare.delta_rows(a, b), "result", "gb_per_s")
    assert (ma, mb) == (pytest.approx(1.0), pytest.approx(1.05))
    assert d == pytest.approx(5.0)
    assert verdict == f"within noise (±{band:.1f}%)"
    # the same +5% with tight runs (sd 0.005) is a real improvement
    a = result(0, runs=[1.0, 1.005, 0.995])
    b = result(0, runs=[1.05, 1.055, 1.045])
    verdict = row(compare.delta_rows(a, b), "result", "gb_per_s")[5]
    # band = 2.776 * sqrt(2 * 0.005^2 / 3) = 1.13%
    assert verdict.startswith("better (beyond ±1.1%")
    # and a 10% drop with noisy runs is still noise
    a = result(0, runs=[1.0, 1.3, 0.7])
    b = result(0, runs=[0.9, 1.2, 0.6])
    assert row(compare.delta_rows(a, b), "result", "gb_per_s")[5].startswith("within noise")


def test_cv_band_and_neutral_metrics():
    rows = compare.delta_rows(result(1.0, cv=4.0), result(1.07, cv=2.0))
    assert row(rows, "train", "GB/s")[5] == "within noise (±8.0%)"
    # a tiny CV never narrows the band under 5%: it measures the rate, not every metric
    rows = compare.delta_rows(result(1.0, cv=1.0), result(1.04, cv=0.5))
    assert row(rows, "train", "GB/s")[5] == "within noise (±5.0%)"
    a, b = result(1.0), result(1.0)
    b.metrics["dataset_bytes"] = 2000
    assert row(compare.delta_rows(a, b), "result", "dataset_bytes")[5].startswith("changed")


def test_compare_suites_step_by_step():
    def suite(gbps):
        s = Recorder(kind="suite", name="quick", spec={})
        child = result(gbps, kind="io", name="seqread").to_dict()
        child["step_id"] = "seqread"
        s.children.append(child)
        return s

    rows = compare.delta_rows(suite(1.0), suite(2.0))
    assert row(rows, "seqread/train", "GB/s")[5] == "better (beyond ±5.0%)"


def test_t_critical_values_and_welch_df():
    assert compare.t_critical(1) == 12.706
    assert compare.t_critical(4) == 2.776
    assert compare.t_critical(4.9) == 2.776  # rounds down: a wider, conservative band
    assert compare.t_critical(22) == 2.086
    assert compare.t_critical(10**6) == 1.960
    a = compare.Value(1.0, 0.1, 3)
    b = compare.Value(1.0, 0.2, 5)
    va, vb = 0.01 / 3, 0.04 / 5
    assert compare.welch_df(a, b) == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 4))


def test_the_direction_comes_from_the_declarations_only():
    # `young_interval_s` ends in _s but a longer optimal interval is neither better nor worse
    a, b = result(1.0, kind="checkpoint", name="x"), result(1.0, kind="checkpoint", name="x")
    a.metrics["young_interval_s"], b.metrics["young_interval_s"] = 100.0, 200.0
    a.metrics["write_s"], b.metrics["write_s"] = 10.0, 20.0
    rows = compare.delta_rows(a, b)
    assert row(rows, "result", "young_interval_s")[5].startswith("changed")
    assert row(rows, "result", "write_s")[5].startswith("worse")
    assert compare.direction("young_interval_s", "checkpoint") is None
    assert compare.direction("young_interval_s") is None  # no kind: no verdict, no guess
    assert compare.direction("write_s", "checkpoint") is False
    assert compare.direction("made_up_per_s", "checkpoint") is None  # undeclared


@pytest.mark.parametrize(("field", "value", "label"), [
    ("engine", "fio", "engine"),
    ("cache", {"policy": "drop", "may_be_cached": False}, "cache policy"),
    ("cache", {"policy": "direct", "may_be_cached": True}, "may-be-cached verdict"),
    ("sysinfo", {"host": "other-host"}, "host"),
])
def test_compare_refuses_results_measured_differently(runner, tmp_path, field, value, label):
    a, b = result(1.0), result(1.0)
    a.cache, b.cache = {"policy": "direct", "may_be_cached": False}, {
        "policy": "direct", "may_be_cached": False}
    a.sysinfo, b.sysinfo = {"host": "h1"}, {"host": "h1"}
    setattr(b, field, value)
    pa, pb = save(a, tmp_path / "a"), save(b, tmp_path / "b")
    res = runner.invoke(cli, ["compare", str(pa.parent), str(pb.parent)])
    assert res.exit_code == 2, res.output
    assert label in res.output
    assert "--force" in res.output
    res = runner.invoke(cli, ["compare", "--force", str(pa.parent), str(pb.parent)])
    assert res.exit_code == 0, res.output


def test_compare_cli_refuses_other_workloads(runner, tmp_path):
    pa = save(result(1.0, runs=[1.0, 1.1, 0.9]), tmp_path / "a")
    pb = save(result(1.2, runs=[1.2, 1.25, 1.15]), tmp_path / "b")
    pc = save(result(1.0, kind="io", name="seqread"), tmp_path / "c")
    res = runner.invoke(cli, ["compare", str(pa.parent), str(pb.parent)])
    assert res.exit_code == 0, res.output
    assert "better" in res.output
    assert "standard error" in res.output
    res = runner.invoke(cli, ["compare", str(pa.parent), str(pc.parent)])
    assert res.exit_code == 2
    assert "compare like with like or pass --force" in res.output


def test_csv_expands_suite_children_with_stable_columns():
    s = Recorder(kind="suite", name="quick", spec={})
    s.metrics["verdict"] = "PASS"
    child = result(1.5, kind="io", name="seqread").to_dict()
    child["step_id"] = "seqread"
    s.children.append(child)
    text = csv_out.to_csv([("run1", s)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == csv_out.COLUMNS
    assert {"result": "run1", "kind": "suite", "name": "quick", "status": "ok", "phase": "",
            "engine": "native", "metric": "verdict", "value": "PASS", "unit": ""} in rows
    gb = [r for r in rows if r["result"] == "run1/seqread" and r["metric"] == "gb_per_s"
          and r["phase"] == "train"]
    assert len(gb) == 1
    assert float(gb[0]["value"]) == pytest.approx(1.5)
    assert gb[0]["unit"] == "GB/s"
