"""Young/Daly checkpoint interval and waste, against numbers worked out by hand (REFERENCE
section 8's example and the arithmetic in the comments), never against the formula again."""

from __future__ import annotations

import pytest

from iobench.kinds.checkpoint import economics as e


def test_reference_example_5_3_tb_at_100_gb_s() -> None:
    m = 3.1 * 3600  # 11,160 s
    # sqrt(2 x 53 x 11160) = sqrt(1,182,960) = 1087.64 s = 18.1 min ("tau ~18 min")
    tau = e.young_interval_s(53, m)
    assert tau == pytest.approx(1087.64, abs=0.01)
    # 53 / 1087.64 + 1087.64 / 22320 = 0.04873 + 0.04873 = 0.0975 ("~10% waste")
    assert e.waste_fraction(53, tau, m) == pytest.approx(0.0975, abs=0.0001)
    # at 1 TB/s: sqrt(2 x 5.3 x 11160) = sqrt(118,296) = 343.94 s ("tau ~6 min")
    tau_fast = e.young_interval_s(5.3, m)
    assert tau_fast == pytest.approx(343.94, abs=0.01)
    # 5.3 / 343.94 + 343.94 / 22320 = 0.01541 + 0.01541 = 0.0308 ("~3%")
    assert e.waste_fraction(5.3, tau_fast, m) == pytest.approx(0.0308, abs=0.0001)


def test_daly_by_hand() -> None:
    # delta 100 s, M 10,000 s: x = delta / 2M = 0.005; sqrt(2 delta M) = 1414.2136;
    # 1 + sqrt(0.005)/3 + 0.005/9 = 1 + 0.0235702 + 0.0005556 = 1.0241258;
    # 1414.2136 * 1.0241258 - 100 = 1348.33 s (Daly 2006, eq. 37), vs Young's 1414.21
    assert e.daly_interval_s(100.0, 10_000.0) == pytest.approx(1348.33, abs=0.01)
    assert e.young_interval_s(100.0, 10_000.0) == pytest.approx(1414.21, abs=0.01)
    assert e.daly_interval_s(30_000.0, 10_000.0) == 10_000.0  # delta >= 2M: every MTBF


def test_restart_time_adds_to_waste() -> None:
    # 10 / 100 (writing) + 100 / 2000 (redone work) + 50 / 1000 (restart) = 0.2
    assert e.waste_fraction(10, 100, 1000, restart_s=50) == pytest.approx(0.2)
    assert e.waste_fraction(10, 0, 1000) == 1.0  # no interval: nothing useful done
    assert e.waste_fraction(900, 100, 100) == 1.0  # capped at the whole wall time


def test_job_mtbf_scales_with_gpus() -> None:
    h, src = e.job_mtbf_h(16384)
    assert h == pytest.approx(3.0931, abs=1e-4)  # 54 days x 24 h / 419 interruptions
    assert "16384" in src
    assert e.job_mtbf_h(8)[0] == pytest.approx(6334.6, abs=0.1)  # 1296 h / 419 x 2048
    assert e.job_mtbf_h(8, job_mtbf_h=5.0)[0] == 5.0
    assert e.job_mtbf_h(10, gpu_mtbf_h=100.0)[0] == 10.0


def test_report_in_seconds_and_percent() -> None:
    r = e.interval_report(60.0, 3.1, restart_s=30.0, stall_s=6.0, source="--mtbf")
    assert r["mtbf_s"] == pytest.approx(11_160.0)
    assert r["mtbf_source"] == "--mtbf"
    # sqrt(2 x 60 x 11160) = sqrt(1,339,200) = 1157.24 s
    assert r["young_interval_s"] == pytest.approx(1157.24, abs=0.01)
    # 100 x (60 / 1157.24 + 1157.24 / 22320 + 30 / 11160) = 5.185 + 5.185 + 0.269 = 10.638%
    assert r["waste_pct"] == pytest.approx(10.638, abs=0.001)
    # Daly: x = 60 / 22320 = 0.0026882; 1157.24 x (1 + 0.017283 + 0.000299) - 60 = 1117.58 s
    assert r["daly_interval_s"] == pytest.approx(1117.58, abs=0.01)
    assert r["waste_daly_pct"] == pytest.approx(10.645, abs=0.001)
    # the stall only: sqrt(2 x 6 x 11160) = 365.95 s;
    # 100 x (6 / 365.95 + 365.95 / 22320 + 30 / 11160) = 1.640 + 1.640 + 0.269 = 3.548%
    assert r["async_young_interval_s"] == pytest.approx(365.95, abs=0.01)
    assert r["async_waste_pct"] == pytest.approx(3.548, abs=0.001)
    assert "async_waste_pct" not in e.interval_report(60.0, 3.1)
