"""Young/Daly checkpoint interval and waste, against REFERENCE section 8's example."""

from __future__ import annotations

import math

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
    d, m = 100.0, 10_000.0
    x = d / (2 * m)
    want = math.sqrt(2 * d * m) * (1 + math.sqrt(x) / 3 + x / 9) - d
    assert e.daly_interval_s(d, m) == pytest.approx(want)
    assert e.daly_interval_s(3 * m, m) == m  # delta >= 2M: checkpoint every MTBF


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
