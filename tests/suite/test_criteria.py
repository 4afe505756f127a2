"""Criteria: parsing, checking against declared metrics, hand-checked verdicts."""

import pytest

from iobench.errors import SpecError
from iobench.kinds.suite import criteria as crit
from iobench.results import make_phase
from iobench.stats import Histogram


def test_parse_forms():
    c = crit.parse("train.au_pct >= 90")
    assert (c.step, c.phase, c.metric, c.op, c.value) == ("train", None, "au_pct", ">=", 90.0)
    c = crit.parse("randread.*.p99_us<=500")
    assert (c.step, c.phase, c.metric, c.op) == ("randread", "*", "p99_us", "<=")
    c = crit.parse("ck.write-1.gb_per_s > 1e-3")
    assert (c.phase, c.value) == ("write-1", 0.001)
    c = crit.parse("au_pass == true", default_step="train")
    assert (c.step, c.metric, c.value) == ("train", "au_pass", True)
    # inside a step the step id may be written or left out
    assert crit.parse("train.au_pct >= 1", default_step="train").ref == "train.au_pct"
    assert crit.parse("*.p99_us <= 1", default_step="rr").ref == "rr.*.p99_us"


@pytest.mark.parametrize(("text", "message"), [
    ("train.au_pct", "cannot parse"),
    ("train.au_pct => 90", "cannot parse"),
    ("au_pct >= 90", "names no step"),
    ("train.au_pct >= ninety", "'ninety' in 'train.au_pct >= ninety' is not a number"),
    ("train.au_pct >= nan", "not a finite number"),
    ("train.au-pct >= 1", "is not a metric name"),
    ("train.au_pass >= true", "true/false can only be tested with == or !="),
    (42, "is not a criterion"),
])
def test_malformed(text, message):
    with pytest.raises(SpecError) as e:
        crit.parse(text)
    assert message in str(e.value)


def test_check_unknown_step_and_metric():
    cmds = {"train": "train", "io": "io"}
    crit.check([crit.parse("train.au_pct >= 90"), crit.parse("io.*.p99_us <= 9")], cmds)
    with pytest.raises(SpecError) as e:
        crit.check([crit.parse("trian.au_pct >= 90")], cmds)
    assert "no step 'trian'" in str(e.value)
    assert "did you mean 'train'" in str(e.value)
    with pytest.raises(SpecError) as e:
        crit.check([crit.parse("train.au_pcnt >= 90")], cmds)
    assert "'train' has no metric 'au_pcnt' (did you mean 'au_pct'?)" in str(e.value)
    with pytest.raises(SpecError) as e:
        crit.check([crit.parse("io.seqread.p99_ms <= 9")], cmds)
    assert "no phase field 'p99_ms'" in str(e.value)
    with pytest.raises(SpecError) as e:
        crit.check([crit.parse("x.y >= 1")], {"x": "no-such-command"})
    assert "declares no result metrics" in str(e.value)


def _result():
    h = Histogram()
    h.record_many([100_000] * 99 + [900_000])  # p99 = 100 us, max 900 us
    fast = make_phase("fast", nbytes=10**9, seconds=1.0, ops=100, latency=h)
    h2 = Histogram()
    h2.record_many([300_000] * 100)
    slow = make_phase("slow", nbytes=10**9, seconds=2.0, ops=100, latency=h2)
    return {"metrics": {"gb_per_s": 0.75, "au_pass": True, "load.seconds": 12.0,
                        "runs": [1, 2]},
            "phases": [fast, slow]}


@pytest.mark.parametrize(("text", "state", "measured"), [
    ("s.gb_per_s >= 0.75", "PASS", 0.75),
    ("s.gb_per_s > 0.75", "FAIL", 0.75),
    ("s.gb_per_s < 1", "PASS", 0.75),
    ("s.au_pass == true", "PASS", True),
    ("s.au_pass != true", "FAIL", True),
    ("s.fast.gb_per_s == 1", "PASS", 1.0),
    ("s.slow.gb_per_s >= 0.6", "FAIL", 0.5),
    ("s.fast.p99_us <= 100.5", "PASS", None),  # bucket midpoint: within 0.4% of 100 us
    ("s.*.p99_us <= 500", "PASS", None),
    ("s.*.p99_us <= 200", "FAIL", None),
    ("s.*.gb_per_s >= 0.5", "PASS", 0.5),  # worst passing phase is reported
    ("s.seconds <= 30", "PASS", 12.0),  # found as load.seconds
])
def test_evaluate_hand_checked(text, state, measured):
    v = crit.evaluate(crit.parse(text), _result(), prefix="load")
    assert v.state == state, v
    if measured is not None:
        assert v.measured == measured
    if text == "s.*.p99_us <= 200":
        assert v.note == "phase slow"
        assert v.measured == pytest.approx(300, rel=0.005)


def test_evaluate_missing_things():
    r = _result()
    v = crit.evaluate(crit.parse("s.iops >= 1"), r)
    assert (v.state, v.note) == ("FAIL", "iops absent in the step's result")
    v = crit.evaluate(crit.parse("s.runs >= 1"), r)
    assert "not a number" in v.note
    v = crit.evaluate(crit.parse("s.fats.gb_per_s >= 1"), r)
    assert v.state == "FAIL"
    assert "did you mean 'fast'" in v.note
    v = crit.evaluate(crit.parse("s.gb_per_s >= 1"), None, "not run (the suite was interrupted)")
    assert v.state == "SKIP"
    v = crit.evaluate(crit.parse("s.gb_per_s >= 1"), None, "step error: bad size")
    assert v.state == "FAIL"
