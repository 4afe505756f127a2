"""Pass/fail criteria: `STEP.METRIC OP VALUE`, parsed and checked before a suite runs.

Grammar (one criterion per string):

    criterion := STEP "." [PHASE "."] METRIC OP VALUE
    OP        := ">=" | "<=" | ">" | "<" | "==" | "!="
    VALUE     := a number (5, 0.5, 1e3) | true | false

`STEP.METRIC` reads the step's `Result.metrics`; `STEP.PHASE.FIELD` reads one phase (or
every phase with `*`, judged on the worst). Values are plain numbers in the metric's own
unit, which the metric's name says (gb_per_s, p99_us, seconds).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from iobench.errors import SpecError, did_you_mean
from iobench.kinds.suite import declared as metrics_mod

OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}
_RE = re.compile(r"^\s*(?P<ref>[^\s<>=!]+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<val>\S+)\s*$")
_STEP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FORM = "STEP.METRIC OP VALUE, e.g. 'train.au_pct >= 90' (OP: >= <= > < == !=)"


@dataclass(frozen=True)
class Criterion:
    text: str
    step: str
    metric: str
    op: str
    value: float | bool
    phase: str | None = None  # None: Result.metrics; '*': every phase; else a phase name

    @property
    def ref(self) -> str:
        mid = f"{self.phase}." if self.phase is not None else ""
        return f"{self.step}.{mid}{self.metric}"

    @property
    def required(self) -> str:
        v = ("true" if self.value else "false") if isinstance(self.value, bool) \
            else f"{self.value:g}"
        return f"{self.op} {v}"


@dataclass(frozen=True)
class Verdict:
    criterion: Criterion
    state: str  # PASS, FAIL, SKIP (step not run: suite interrupted)
    measured: float | bool | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        c = self.criterion
        return {"criterion": c.text, "step": c.step, "phase": c.phase, "metric": c.metric,
                "op": c.op, "required": c.value, "measured": self.measured,
                "state": self.state, "note": self.note}


def parse(text: Any, where: str = "criteria", default_step: str | None = None) -> Criterion:
    """Parse one criterion; inside a step, the step id may be left out."""
    if not isinstance(text, str):
        raise SpecError(f"{where}: {text!r} is not a criterion; write {FORM}")
    m = _RE.match(text)
    if m is None:
        raise SpecError(f"{where}: cannot parse {text!r}; write {FORM}")
    parts = m["ref"].split(".")
    if default_step is not None and parts[0] != default_step:
        parts = [default_step, *parts]
    if len(parts) < 2 or not all(parts):
        raise SpecError(f"{where}: {text!r} names no step; write {FORM}")
    step, metric = parts[0], parts[-1]
    phase = ".".join(parts[1:-1]) or None
    if not _STEP_RE.match(step):
        raise SpecError(f"{where}: {step!r} in {text!r} is not a step id (letters, digits, _ -)")
    if not _METRIC_RE.match(metric):
        raise SpecError(f"{where}: {metric!r} in {text!r} is not a metric name; write {FORM}")
    raw = m["val"]
    value: float | bool
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
        if m["op"] not in ("==", "!="):
            raise SpecError(f"{where}: {text!r}: true/false can only be tested with == or !=")
    else:
        try:
            value = float(raw)
        except ValueError:
            raise SpecError(f"{where}: {raw!r} in {text!r} is not a number; give a plain "
                            "number in the metric's unit (e.g. 500 for p99_us)") from None
        if not math.isfinite(value):
            raise SpecError(f"{where}: {raw!r} in {text!r} is not a finite number")
    return Criterion(text=text.strip(), step=step, metric=metric, op=m["op"], value=value,
                     phase=phase)


def check(criteria: list[Criterion], commands: Mapping[str, str]) -> None:
    """Refuse criteria naming an unknown step or an undeclared metric (before any run).

    `commands` maps step id -> command path ("io", "infer randread").
    """
    for c in criteria:
        if c.step not in commands:
            raise SpecError(f"criterion {c.text!r}: no step {c.step!r} in this suite"
                            f"{did_you_mean(c.step, list(commands))}")
        cmd = commands[c.step]
        if c.phase is None:
            known = metrics_mod.result_metrics(cmd)
            if not known:
                raise SpecError(
                    f"criterion {c.text!r}: command '{cmd}' declares no result metrics; "
                    f"judge a phase instead ({c.step}.PHASE.{c.metric}) or declare them in its "
                    "kind's metrics.py (iobench/kinds/<kind>/)")
        else:
            known = metrics_mod.phase_fields(cmd)
        if c.metric not in known:
            what = "metric" if c.phase is None else "phase field"
            new = metrics_mod.renamed(cmd, c.metric, phase=c.phase is not None)
            if new is not None:
                raise SpecError(f"criterion {c.text!r}: {what} {c.metric!r} of '{cmd}' is "
                                f"called {new!r} since results schema 2; rename it")
            raise SpecError(f"criterion {c.text!r}: '{cmd}' has no {what} {c.metric!r}"
                            f"{did_you_mean(c.metric, list(known))}")


def _number(v: Any) -> float | bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    return None


def evaluate(c: Criterion, step_result: Mapping[str, Any] | None,
             missing_note: str = "step did not run", prefix: str = "") -> Verdict:
    """Judge one criterion against the step's Result dict (None: the step left none).

    A result metric is looked up as METRIC, then as PREFIX.METRIC (the command's last
    word: `infer load` stores `load.seconds`).
    """
    if step_result is None:
        state = "SKIP" if missing_note.startswith("not run") else "FAIL"
        return Verdict(c, state, None, missing_note)
    test = OPS[c.op]
    if c.phase is None:
        m = step_result.get("metrics") or {}
        raw = m.get(c.metric)
        if raw is None and prefix:
            raw = m.get(f"{prefix}.{c.metric}")
        v = _number(raw)
        if v is None:
            why = "absent" if raw is None else f"not a number ({raw!r})"
            return Verdict(c, "FAIL", None, f"{c.metric} {why} in the step's result")
        return Verdict(c, "PASS" if test(v, c.value) else "FAIL", v)
    phases = step_result.get("phases") or []
    chosen = phases if c.phase == "*" else [p for p in phases if p.get("name") == c.phase]
    if not chosen:
        names = [str(p.get("name")) for p in phases]
        return Verdict(c, "FAIL", None, f"no phase {c.phase!r} in the step's result"
                       f"{did_you_mean(c.phase, names) if names else ''}")
    values = [(p.get("name"), _number(metrics_mod.phase_value(p, c.metric))) for p in chosen]
    present = [(n, v) for n, v in values if v is not None]
    if not present:
        return Verdict(c, "FAIL", None, f"no value for {c.metric} in phase {c.phase!r}")
    failing = [(n, v) for n, v in present if not test(v, c.value)]
    if failing:
        # the worst offender: farthest from the bound
        n, v = (max(failing, key=lambda x: abs(float(x[1]) - float(c.value)))
                if not isinstance(c.value, bool) else failing[0])
        note = f"phase {n}" if c.phase == "*" else ""
        return Verdict(c, "FAIL", v, note)
    if c.phase == "*" and not isinstance(c.value, bool):
        # closest to the bound = the worst passing phase
        n, v = min(present, key=lambda x: abs(float(x[1]) - float(c.value)))
        return Verdict(c, "PASS", v, f"worst: phase {n}")
    return Verdict(c, "PASS", present[0][1])
