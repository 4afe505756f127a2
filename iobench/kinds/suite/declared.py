"""What a suite criterion may name: the metrics each kind declares
(iobench/kinds/<kind>/metrics.py), read through the kinds table.

A criterion `STEP.METRIC` names a declared result metric of the step's kind; `STEP.PHASE.
FIELD` a field every phase has, an engine's phase metric or the kind's declared phase
metric, in the phase called PHASE (`*` = every phase, judged on the worst one). Anything
else is refused before the suite runs (a typo must not cost an hour of benchmarking).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iobench.kinds.base import ENGINE_PHASE_METRICS, PHASE_FIELDS, Metrics

_LATENCY = ("p50", "p90", "p99", "p99_9", "p99_99", "max", "mean")


def kind_of(command: str) -> str:
    """The result kind of a command path: "infer randread" -> "infer-randread"."""
    return command.replace(" ", "-")


def _declared(command: str) -> Metrics | None:
    from iobench import kinds

    return kinds.metrics(kind_of(command))


def declared_better(kind: str | None, metric: str) -> str | None:
    """The declared direction of `metric` for a result of `kind` (iobench.kinds.better)."""
    from iobench import kinds

    return kinds.better(kind, metric)


def renamed(command: str, old: str, phase: bool = False) -> str | None:
    """The schema-2 name of a metric `command` called `old` in schema 1, if any."""
    decl = _declared(command)
    pool = list(decl) if decl is not None else []
    if phase:
        pool += [*PHASE_FIELDS.values(), *ENGINE_PHASE_METRICS.values()]
    scope = "phase" if phase else "result"
    return next((m.name for m in pool if m.scope == scope and old in m.was), None)


def result_metrics(command: str) -> dict[str, str]:
    decl = _declared(command)
    return {m.name: m.description for m in decl.result().values()} if decl else {}


def phase_fields(command: str) -> dict[str, str]:
    out = {m.name: m.description for m in PHASE_FIELDS.values()}
    out.update({m.name: m.description for m in ENGINE_PHASE_METRICS.values()})
    decl = _declared(command)
    if decl is not None:
        out.update({m.name: m.description for m in decl.phase().values()})
    return out


def phase_value(phase: Mapping[str, Any], field: str) -> Any:
    """A phase field by its criteria name (latencies converted from ns to us)."""
    if field.endswith("_us") and field[:-3] in _LATENCY:
        v = (phase.get("latency_ns") or {}).get(field[:-3])
        return v / 1e3 if isinstance(v, int | float) else None
    if field in phase:
        return phase[field]
    return (phase.get("metrics") or {}).get(field)
