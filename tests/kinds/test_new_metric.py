"""A new metric is one declaration: criteria, compare, the check of emitted metrics and the
generated reference all follow from it, with nothing else to edit."""

import importlib
import sys
from pathlib import Path

import pytest

from iobench import kinds
from iobench.errors import SpecError
from iobench.kinds.base import declare, metric
from iobench.kinds.suite import criteria as crit
from iobench.report import compare
from iobench.results import Recorder, make_phase


def test_one_declaration_is_enough(monkeypatch):
    mod = importlib.import_module("iobench.kinds.io.metrics")
    new = metric("tail_gap_pct", "lower", "how far p99.9 sits above p50, %")
    monkeypatch.setattr(mod, "METRICS", declare("io", *mod.METRICS, new))

    # suite criteria know it (and still refuse a name nobody declared)
    crit.check([crit.parse("r.tail_gap_pct <= 50")], {"r": "io"})
    with pytest.raises(SpecError, match="did you mean 'tail_gap_pct'"):
        crit.check([crit.parse("r.tail_gap_pctt <= 50")], {"r": "io"})

    # compare reads its direction
    assert compare.direction("tail_gap_pct", "io") is False

    # a result carrying it passes the declarations check
    rec = Recorder(kind="io", name="seqread", spec={})
    rec.add_phase(make_phase("seqread", nbytes=1, seconds=1.0, ops=1))
    rec.metrics.update({"gb_per_s": 1.0, "ops_per_s": 1.0, "p99_us": 1.0, "bytes": 1,
                        "ranks": 1, "tail_gap_pct": 3.0})
    assert kinds.metrics("io").check(rec.freeze()) == []

    # and the generated reference lists it with its unit and direction
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "tools"))
    try:
        gen = importlib.import_module("gen_reference")
        page = gen.metrics_page()
    finally:
        sys.path.pop(0)
    assert "| `tail_gap_pct` | % | lower | how far p99.9 sits above p50, % |" in page
