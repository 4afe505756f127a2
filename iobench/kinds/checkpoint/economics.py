"""Checkpoint interval and lost training time from a measured checkpoint duration.

Young (1974): tau = sqrt(2 * delta * M) minimises the expected waste for checkpoint cost
delta and mean time between failures M. Daly (2006, "A higher order estimate of the
optimum checkpoint interval for restart dumps", eq. 37): tau = sqrt(2 delta M) *
(1 + sqrt(delta / 2M) / 3 + (delta / 2M) / 9) - delta for delta < 2M, else M.
Waste at interval tau, first order (REFERENCE section 8): delta / tau (time spent writing
checkpoints) + tau / 2M (work redone after a failure, half an interval on average), plus
R / M where R is the restart (restore) time, when it was measured.
"""

from __future__ import annotations

import math
from typing import Any

# Llama 3 405B pre-training: 419 unexpected interruptions in 54 days on 16,384 GPUs
# (Meta, "The Llama 3 Herd of Models", 2024): a job MTBF of 3.1 h at that scale.
LLAMA3_JOB_MTBF_H = 54 * 24 / 419
LLAMA3_GPUS = 16384
DEFAULT_GPU_MTBF_H = LLAMA3_JOB_MTBF_H * LLAMA3_GPUS  # ~50,700 h per GPU


def young_interval_s(delta_s: float, mtbf_s: float) -> float:
    return math.sqrt(2.0 * delta_s * mtbf_s)


def daly_interval_s(delta_s: float, mtbf_s: float) -> float:
    if delta_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = delta_s / (2.0 * mtbf_s)
    return math.sqrt(2.0 * delta_s * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta_s


def waste_fraction(delta_s: float, tau_s: float, mtbf_s: float, restart_s: float = 0.0) -> float:
    """Fraction of wall time not spent on useful training at checkpoint interval tau."""
    if tau_s <= 0:
        return 1.0
    return min(1.0, delta_s / tau_s + tau_s / (2.0 * mtbf_s) + restart_s / mtbf_s)


def job_mtbf_h(gpus: int, job_mtbf_h: float | None = None,
               gpu_mtbf_h: float | None = None) -> tuple[float, str]:
    """The job's MTBF in hours and where it came from."""
    if job_mtbf_h is not None:
        return job_mtbf_h, "--mtbf (whole job)"
    per_gpu = gpu_mtbf_h if gpu_mtbf_h is not None else DEFAULT_GPU_MTBF_H
    src = ("--mtbf-per-gpu" if gpu_mtbf_h is not None else
           f"Llama 3 ({LLAMA3_JOB_MTBF_H:.1f} h at {LLAMA3_GPUS} GPUs)")
    return per_gpu / max(1, gpus), f"{src} / {gpus} GPUs"


def interval_report(delta_s: float, mtbf_h: float, restart_s: float | None = None,
                    stall_s: float | None = None, source: str = "") -> dict[str, Any]:
    """Young and Daly intervals and waste (in %) for a measured checkpoint duration (s):
    the result metrics of the same names (iobench.kinds.checkpoint.metrics)."""
    m = mtbf_h * 3600.0
    young = young_interval_s(delta_s, m)
    daly = daly_interval_s(delta_s, m)
    r = restart_s or 0.0
    out: dict[str, Any] = {
        "mtbf_s": m, "mtbf_source": source,
        "young_interval_s": young, "daly_interval_s": daly,
        "waste_pct": 100.0 * waste_fraction(delta_s, young, m, r),
        "waste_daly_pct": 100.0 * waste_fraction(delta_s, daly, m, r),
    }
    if stall_s is not None:
        ya = young_interval_s(stall_s, m)
        out.update(async_young_interval_s=ya,
                   async_waste_pct=100.0 * waste_fraction(stall_s, ya, m, r))
    return out
