"""The metrics a suite's result carries: its verdict and counts (the steps' own metrics
are in their results, under `children`)."""

from iobench.kinds.base import declare, metric

METRICS = declare(
    "suite",
    metric("verdict", "neither", "PASS, FAIL or INCOMPLETE", unit="text"),
    metric("criteria_total", "neither", "criteria judged", unit="count"),
    metric("criteria_passed", "higher", "criteria that passed", unit="count"),
    metric("criteria_failed", "lower", "criteria that failed", unit="count"),
    metric("criteria_skipped", "neither", "criteria not judged (a step did not run)",
           unit="count"),
    metric("steps_total", "neither", "steps in the suite", unit="count"),
    metric("steps_run", "neither", "steps that ran", unit="count"),
    metric("steps_failed", "lower", "steps that failed or gave no result", unit="count"),
    metric("criteria", "neither", "each criterion's verdict (a list)", unit="text"),
    metric("steps", "neither", "each step's outcome (a list)", unit="text"),
)
