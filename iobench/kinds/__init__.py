"""The workload kinds, one package each, in one explicit table (no import side effects).

A result's `kind` names its package here. Each package holds spec.py, run.py,
metrics.py, render.py and cli.py (see iobench.kinds.base). Code that needs a kind's
declarations or renderers asks this table; nothing registers itself at import time.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iobench.kinds.base import Metrics

# result kind -> package under iobench.kinds
KINDS: dict[str, str] = {
    "io": "io",
    "fio": "fio",
    "datagen": "datagen",
    "train": "train",
    "checkpoint": "checkpoint",
    "infer-load": "infer_load",
    "infer-randread": "infer_randread",
    "infer-kvcache": "kvcache",
    "infer-vector": "vector",
    "suite": "suite",
}


def package(kind: str) -> str:
    """The module path of a kind's package; KeyError for an unknown kind."""
    return f"iobench.kinds.{KINDS[kind]}"


def module(kind: str, part: str) -> ModuleType | None:
    """iobench.kinds.<kind>.<part>, or None when the kind has no such module (yet)."""
    try:
        name = package(kind)
    except KeyError:
        return None
    try:
        return importlib.import_module(f"{name}.{part}")
    except ModuleNotFoundError as e:
        if e.name is not None and (e.name == name or e.name.startswith(name + ".")):
            return None
        raise


def metrics(kind: str) -> Metrics | None:
    """A kind's declared metrics (iobench.kinds.<kind>.metrics.METRICS)."""
    mod = module(kind, "metrics")
    return getattr(mod, "METRICS", None) if mod is not None else None


def renames(kind: str) -> tuple[dict[str, str], dict[str, str]]:
    """(result, phase) metric renames from results schema 1 for `kind`."""
    m = metrics(kind)
    if m is not None:
        return m.renames()
    from iobench.kinds.base import ENGINE_PHASE_METRICS

    return {}, {old: e.name for e in ENGINE_PHASE_METRICS.values() for old in e.was}


def scales(kind: str) -> tuple[dict[str, float], dict[str, float]]:
    """(result, phase) v1 name -> factor for renames from schema 1 that change the unit."""
    m = metrics(kind)
    return m.scales() if m is not None else ({}, {})


def better(kind: str | None, metric: str) -> str | None:
    """Which way is better for `metric` of a `kind` result ("higher", "lower",
    "neither"), from the kind's declarations; None when nothing declares it."""
    if kind is None:
        return None
    decl = metrics(kind.replace(" ", "-"))
    if decl is None:
        return None
    m = decl.get(metric) or decl.get(metric, "phase")
    return m.better if m is not None else None
