"""Which metrics each command's Result declares, so suite criteria are checked before a run.

A criterion `STEP.METRIC` names a key of the step's `Result.metrics`; it must be declared
here for the step's command, or the suite is refused before anything runs (a typo must
not cost an hour of benchmarking). A criterion `STEP.PHASE.FIELD` names a field every
phase has (PHASE_FIELDS) or a declared phase metric, in the phase called PHASE (`*` = every
phase, judged on the worst one).

A workload declares its metrics with one call at import time of its command module::

    from iobench.suite.metrics import declare
    declare("infer randread", {"p99_us": "p99 read latency of the slowest phase, us"})

The command key is the command path as typed after `iobench` ("io", "infer randread").
A Result may store a metric under its plain name (`seconds`) or prefixed with the command's
last word (`load.seconds`, as `infer load` does); `load.seconds` in a criterion finds both.
The built-in table below covers the commands that shipped together with the suite runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Fields of every phase (results.make_phase), addressable as STEP.PHASE.FIELD. Latencies
# are in microseconds here (criteria read better as `p99_us <= 500` than in ns).
PHASE_FIELDS: dict[str, str] = {
    "gb_per_s": "throughput, GB/s (10^9 B/s)",
    "gib_per_s": "throughput, GiB/s",
    "bytes_per_s": "throughput, B/s",
    "bytes": "bytes moved",
    "seconds": "phase duration, s",
    "ops": "I/O operations",
    "ops_per_s": "operations per second",
    "p50_us": "p50 latency, us",
    "p90_us": "p90 latency, us",
    "p99_us": "p99 latency, us",
    "p99_9_us": "p99.9 latency, us",
    "p99_99_us": "p99.99 latency, us",
    "max_us": "max latency, us",
    "mean_us": "mean latency, us",
}

# command path -> {metric: description}
_RESULT_METRICS: dict[str, dict[str, str]] = {
    "fio": {
        "gb_per_s": "throughput summed over the job's phases, GB/s",
        "iops": "operations per second summed over phases",
        "p99_us": "worst p99 latency over phases, us",
        "bytes": "bytes moved",
    },
    "datagen": {
        "files": "files written by this run",
        "bytes": "bytes written by this run",
        "gb_per_s": "write throughput, GB/s",
        "files_total": "files in the data set",
        "dataset_bytes": "bytes in the data set",
        "files_checked": "files checked (--verify)",
        "files_bad": "files that failed verification",
    },
    "train": {
        "au_pct": "accelerator utilisation, % (MLPerf AU)",
        "au_pass": "AU met the workload's threshold (true/false)",
        "au_threshold_pct": "the workload's AU threshold, %",
        "accelerators": "simulated accelerators",
        "accelerators_fed": "largest accelerator count meeting the AU threshold (--find-max)",
        "samples_per_s": "training samples per second",
        "gb_per_s": "read throughput, GB/s",
        "gib_per_s": "read throughput, GiB/s",
        "bytes": "bytes read",
        "read_p50_us": "p50 read latency, us",
        "read_p99_us": "p99 read latency, us",
        "data_wait_p99_ms": "p99 time a step waited for data, ms",
        "cpu_util_pct": "client CPU utilisation, %",
        "runs_cv_pct": "run-to-run coefficient of variation, % (--runs)",
        "runs_spread_pct": "run-to-run spread, % (--runs)",
        "checkpoint_write_gb_per_s": "checkpoint write throughput during training, GB/s",
        "checkpoint_stall_s_max": "longest training stall for a checkpoint, s",
        "train_to_raw": "training read rate / raw sequential read rate",
    },
    "checkpoint": {
        "write_gb_per_s": "checkpoint write throughput, GB/s",
        "read_gb_per_s": "checkpoint read (restore) throughput, GB/s",
        "write_seconds": "mean checkpoint write duration (max over ranks), s",
        "read_seconds": "mean checkpoint read duration (max over ranks), s",
        "write_rank_min_gb_per_s": "slowest rank's write throughput, GB/s",
        "read_rank_min_gb_per_s": "slowest rank's read throughput, GB/s",
        "write_aggregate_gb_per_s": "aggregate write throughput, GB/s",
        "read_aggregate_gb_per_s": "aggregate read throughput, GB/s",
        "write_fsync_seconds": "mean fsync time per checkpoint, s",
        "stall_seconds": "training stall per checkpoint (--async), s",
        "checkpoint_bytes": "bytes per checkpoint",
        "verify_errors": "restore verification mismatches",
        "waste_fraction": "training time lost to checkpoints and restarts (Young/Daly)",
        "young_interval_s": "optimal checkpoint interval (Young), s",
    },
    "infer randread": {
        "max_iops": "best IOPS over the block-size x queue-depth grid",
        "p99_us": "worst p99 read latency over the grid, us",
        "p99_9_us": "worst p99.9 read latency over the grid, us",
    },
    "infer load": {
        "seconds": "time of the first load measured (first precision, method, state), s",
        "gb_per_s": "throughput of that load, GB/s",
    },
}

_PHASE_METRICS: dict[str, dict[str, str]] = {}

# Which way is better, where the unit suffix alone would mislead `compare`: "higher",
# "lower" or "neither" (sizes, counts, settings, intervals). command -> {metric: better}.
# Undeclared metrics fall back to the suffix rules in iobench.report.compare.
BETTER: dict[str, dict[str, str]] = {
    "checkpoint": {
        "young_interval_s": "neither", "checkpoint_bytes": "neither",
        "verify_errors": "lower", "waste_fraction": "lower",
    },
    "train": {
        "accelerators": "neither", "au_threshold_pct": "neither", "au_pass": "higher",
        "bytes": "neither",
    },
    "datagen": {
        "files": "neither", "bytes": "neither", "files_total": "neither",
        "dataset_bytes": "neither", "files_checked": "neither", "files_bad": "lower",
    },
}


def declare_better(command: str, better: Mapping[str, str]) -> None:
    """Declare which way is better for metrics of `command` ("higher"/"lower"/"neither")."""
    for metric, b in better.items():
        if b not in ("higher", "lower", "neither"):
            raise ValueError(f"{command}.{metric}: better must be higher, lower or neither")
    BETTER.setdefault(command, {}).update(better)


def kind_of(command: str) -> str:
    """The result kind of a command path: "infer randread" -> "infer-randread"."""
    return command.replace(" ", "-")


def _declared(command: str) -> Any:
    from iobench import kinds

    return kinds.metrics(kind_of(command))


def declared_better(kind: str | None, metric: str) -> str | None:
    """The declared direction of `metric` for a result of `kind` (`infer-load` -> `infer
    load`), or None when nobody declared one."""
    if kind is None:
        return None
    decl = _declared(kind)
    if decl is not None:
        m = decl.get(metric) or decl.get(metric, "phase")
        return m.better if m is not None else None
    return BETTER.get(kind.replace("-", " "), {}).get(metric)


def declare(command: str, metrics: Mapping[str, str],
            phase_metrics: Mapping[str, str] | None = None) -> None:
    """Declare (or extend) the Result metrics of `command` and its phases' extra metrics."""
    _RESULT_METRICS.setdefault(command, {}).update(metrics)
    if phase_metrics:
        _PHASE_METRICS.setdefault(command, {}).update(phase_metrics)


def renamed(command: str, old: str, phase: bool = False) -> str | None:
    """The schema-2 name of a metric `command` called `old` in schema 1, if any."""
    from iobench.kinds.base import ENGINE_PHASE_METRICS
    from iobench.kinds.base import PHASE_FIELDS as FIELDS

    decl = _declared(command)
    pool = list(decl) if decl is not None else []
    if phase:
        pool += [*FIELDS.values(), *ENGINE_PHASE_METRICS.values()]
    scope = "phase" if phase else "result"
    return next((m.name for m in pool if m.scope == scope and old in m.was), None)


def result_metrics(command: str) -> dict[str, str]:
    decl = _declared(command)
    if decl is not None:
        return {m.name: m.description for m in decl.result().values()}
    return dict(_RESULT_METRICS.get(command, {}))


def phase_fields(command: str) -> dict[str, str]:
    decl = _declared(command)
    if decl is not None:
        from iobench.kinds.base import ENGINE_PHASE_METRICS
        from iobench.kinds.base import PHASE_FIELDS as FIELDS

        out = {m.name: m.description for m in FIELDS.values()}
        out.update({m.name: m.description for m in ENGINE_PHASE_METRICS.values()})
        out.update({m.name: m.description for m in decl.phase().values()})
        return out
    return {**PHASE_FIELDS, **_PHASE_METRICS.get(command, {})}


def phase_value(phase: Mapping[str, Any], field: str) -> Any:
    """A phase field by its criteria name (latencies converted from ns to us)."""
    if field.endswith("_us") and field[:-3] in ("p50", "p90", "p99", "p99_9", "p99_99",
                                                "max", "mean"):
        v = (phase.get("latency_ns") or {}).get(field[:-3])
        return v / 1e3 if isinstance(v, int | float) else None
    if field in phase:
        return phase[field]
    return (phase.get("metrics") or {}).get(field)
