"""Young/Daly checkpoint interval and waste, against REFERENCE section 8's example."""

from __future__ import annotations

import pytest

from iobench.checkpoint import economics as e


def test_reference_example_5_3_tb_at_100_gb_s() -> None:
    m = 3.1 * 3600
    tau = e.young_interval_s(53, m)
    assert tau / 60 == pytest.approx(18.1, abs=0.1)  # "tau ~18 min"
    assert e.waste_fraction(53, tau, m) == pytest.approx(0.097, abs=0.003)  # "~10% waste"
    tau_fast = e.young_interval_s(5.3, m)
    assert tau_fast / 60 == pytest.approx(5.7, abs=0.1)  # "at 1 TB/s tau ~6 min"
    assert e.waste_fraction(5.3, tau_fast, m) == pytest.approx(0.031, abs=0.002)  # "~3%"


def test_daly_by_hand() -> None:
    # delta 100 s, M 10,000 s: x = delta / 2M = 0.005; sqrt(2 delta M) = 1414.2136;
    # 1 + sqrt(0.005)/3 + 0.005/9 = 1 + 0.0235702 + 0.0005556 = 1.0241258;
    # 1414.2136 * 1.0241258 - 100 = 1348.33 s (Daly 2006, eq. 37), vs Young's 1414.21
    assert e.daly_interval_s(100.0, 10_000.0) == pytest.approx(1348.33, abs=0.01)
    assert e.young_interval_s(100.0, 10_000.0) == pytest.approx(1414.21, abs=0.01)
    assert e.daly_interval_s(30_000.0, 10_000.0) == 10_000.0  # delta >= 2M: every MTBF


def test_restart_time_adds_to_waste() -> None:
    assert e.waste_fraction(10, 100, 1000, restart_s=50) == pytest.approx(0.1 + 0.05 + 0.05)


def test_job_mtbf_scales_with_gpus() -> None:
    h, src = e.job_mtbf_h(16384)
    assert h == pytest.approx(54 * 24 / 419)
    assert "16384" in src
    assert e.job_mtbf_h(8)[0] == pytest.approx(h * 2048)
    assert e.job_mtbf_h(8, job_mtbf_h=5.0)[0] == 5.0
    assert e.job_mtbf_h(10, gpu_mtbf_h=100.0)[0] == 10.0


def test_report_has_async_figures() -> None:
    r = e.interval_report(60.0, 3.1, restart_s=30.0, stall_s=6.0)
    assert r["async_young_interval_s"] < r["young_interval_s"]
    assert r["async_waste_fraction"] < r["waste_fraction"]
