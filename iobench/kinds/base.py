"""What every workload kind shares: declared metrics with units and directions, the run
context, and the run options every kind takes.

A kind (iobench/kinds/<kind>/) is four modules:
  spec.py     a frozen Spec (what is measured) with `validate()`, built from plain values;
  run.py      `run(spec, options, ctx) -> Result` (imports neither click nor rich);
  metrics.py  METRICS: every metric its results carry (name, unit, better, description);
  render.py   terminal tables (and HTML sections) for its results;
and cli.py holds its Click command: options -> spec -> run -> render.

Metric names follow one suffix rule (UNIT_SUFFIXES): the suffix is the unit, so a name
read anywhere (a criterion, a CSV column, `compare`) says what it measures. A metric
without a unit suffix is a count, a ratio or a flag and says so in its declaration.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from iobench.dist import World
    from iobench.results import Result

Better = Literal["higher", "lower", "neither"]

# suffix -> unit, longest first (the first suffix that matches decides)
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_bytes_per_s", "B/s"),
    ("_gib_per_s", "GiB/s"),  # 2^30 B/s
    ("_gb_per_s", "GB/s"),  # 10^9 B/s
    ("_per_s", "1/s"),  # a rate of what the name says: ops_per_s, samples_per_s
    ("_bytes", "B"),
    ("_pct", "%"),
    ("_ns", "ns"),
    ("_us", "us"),
    ("_s", "s"),
)
# exact names that are a unit by themselves (the suffix rule applied to the whole name)
UNIT_NAMES = {"bytes": "B", "seconds": "s", "bytes_per_s": "B/s", "gb_per_s": "GB/s",
              "gib_per_s": "GiB/s", "ops_per_s": "1/s"}
UNITLESS = ("count", "ratio", "flag", "text")  # what a name without a unit suffix may be


def unit_of(name: str) -> str | None:
    """The unit a metric name's suffix gives it, or None (a count, ratio or flag)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in UNIT_NAMES:
        return UNIT_NAMES[leaf]
    for suffix, unit in UNIT_SUFFIXES:
        if leaf.endswith(suffix):
            return unit
    return None


# a name, or a template whose {placeholder} parts stand for one key segment each
# ("{cell}.ops_per_s" matches "bs4096.qd4.ops_per_s"); at most one '.' outside them
_NAME = re.compile(r"^([a-z][a-z0-9_]*|\{[a-z]+\})([a-z0-9_]*)(\.([a-z][a-z0-9_]*))?$")


@dataclass(frozen=True)
class Metric:
    """One declared metric: what it is called, in what unit, which way is better."""

    name: str
    unit: str  # from the suffix, or one of UNITLESS
    better: Better
    description: str
    scope: Literal["result", "phase"] = "result"
    was: tuple[str, ...] = ()  # its names in results schema 1 (upgraded on load)
    # a metric that appears only when an option asks for it (e.g. --runs, --verify)
    optional: bool = False
    # schema-1 value x was_scale = this metric's value (a rename that changed the unit,
    # e.g. p99_ms -> p99_us is 1000)
    was_scale: float = 1.0

    @property
    def is_template(self) -> bool:
        return "{" in self.name

    def matches(self, key: str) -> bool:
        if not self.is_template:
            return key == self.name
        return _template(self.name).match(key) is not None


def _template(name: str) -> re.Pattern[str]:
    """A template's key pattern; each {placeholder} is a named group."""
    parts = re.split(r"(\{[a-z]+\})", name)
    return re.compile("^" + "".join(rf"(?P<{p[1:-1]}>[A-Za-z0-9_.:=+-]+)" if p.startswith("{")
                                    else re.escape(p) for p in parts) + "$")


class Renames(dict[str, str]):
    """v1 name -> v2 name. An exact name wins; a template (`was="{cell}.iops"` of
    `{cell}.ops_per_s`) renames every key it matches, keeping what its placeholders
    matched: randread.bs4096.qd4.iops -> randread.bs4096.qd4.ops_per_s."""

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        for old, new in self.items():
            if "{" in old:
                m = _template(old).match(key)
                if m is not None:
                    return new.format(**m.groupdict())
        return default


def metric(name: str, better: Better, description: str, *, unit: str | None = None,
           phase: bool = False, was: str | Iterable[str] = (),
           optional: bool = False, was_scale: float = 1.0) -> Metric:
    """Declare a metric. Its unit comes from its suffix; a name without one must say
    which unitless thing it is (`unit="count"`, "ratio", "flag", "text")."""
    if not _NAME.match(name):
        raise ValueError(f"metric {name!r}: lower_snake_case, at most one '.'")
    if better not in ("higher", "lower", "neither"):
        raise ValueError(f"metric {name}: better must be higher, lower or neither")
    suffix_unit = unit_of(name)
    if suffix_unit is None:
        if unit not in UNITLESS:
            suffixes = ", ".join(s for s, _ in UNIT_SUFFIXES)
            raise ValueError(f"metric {name}: no unit suffix ({suffixes}); rename it or "
                             f"declare unit= one of {', '.join(UNITLESS)}")
        final = unit
    else:
        if unit is not None and unit != suffix_unit:
            raise ValueError(f"metric {name}: declared unit {unit!r} but its suffix says "
                             f"{suffix_unit!r}")
        final = suffix_unit
    olds = (was,) if isinstance(was, str) else tuple(was)
    return Metric(name, final, better, description, "phase" if phase else "result", olds,
                  optional, was_scale)


@dataclass(frozen=True)
class Metrics:
    """A kind's declared metrics: result-level and phase-level (beyond PHASE_FIELDS)."""

    kind: str
    declared: tuple[Metric, ...]

    def __post_init__(self) -> None:
        seen: set[tuple[str, str]] = set()
        for m in self.declared:
            key = (m.scope, m.name)
            if key in seen:
                raise ValueError(f"{self.kind}: metric {m.name} declared twice")
            seen.add(key)

    def result(self) -> dict[str, Metric]:
        return {m.name: m for m in self.declared if m.scope == "result"}

    def phase(self) -> dict[str, Metric]:
        return {m.name: m for m in self.declared if m.scope == "phase"}

    def get(self, name: str, scope: str = "result") -> Metric | None:
        """The declaration a metric key falls under (templates match key patterns)."""
        pool = [m for m in self.declared if m.scope == scope]
        if scope == "phase":
            pool += list(ENGINE_PHASE_METRICS.values())
        exact = next((m for m in pool if not m.is_template and m.name == name), None)
        return exact or next((m for m in pool if m.is_template and m.matches(name)), None)

    def check(self, result: Result) -> list[str]:
        """What a result emits that is not declared, and declared non-optional metrics it
        lacks: [] when the result matches its kind's declarations."""
        problems = []
        for key in result.metrics:
            if self.get(key) is None:
                problems.append(f"{self.kind}: result metric {key!r} is not declared")
        for m in self.declared:
            if m.scope == "result" and not m.optional and not any(
                    m.matches(k) for k in result.metrics):
                problems.append(f"{self.kind}: declared metric {m.name!r} is missing")
        for ph in result.phases:
            for key in ph.metrics:
                if self.get(key, "phase") is None:
                    problems.append(f"{self.kind}: phase {ph.name!r} metric {key!r} is not "
                                    "declared")
        return problems

    def renames(self) -> tuple[dict[str, str], dict[str, str]]:
        """(result, phase) v1 name -> v2 name (templates rename every key they match)."""
        res = Renames({old: m.name for m in self.declared if m.scope == "result"
                       for old in m.was})
        ph = Renames({old: m.name for m in ENGINE_PHASE_METRICS.values() for old in m.was})
        ph.update({old: m.name for m in self.declared if m.scope == "phase" for old in m.was})
        return res, ph

    def scales(self) -> tuple[dict[str, float], dict[str, float]]:
        """(result, phase) v1 name -> the factor its value takes under the v2 name (only
        renames that change the unit, e.g. a fraction to a percentage)."""
        res = {old: m.was_scale for m in self.declared if m.scope == "result"
               for old in m.was if m.was_scale != 1.0}
        ph = {old: m.was_scale for m in self.declared if m.scope == "phase"
              for old in m.was if m.was_scale != 1.0}
        return res, ph

    def upgrade(self, values: Mapping[str, Any], scope: str = "result") -> dict[str, Any]:
        """Schema-1 metric keys -> these declarations' names: templated names too
        ("{cell}.qps" -> "{cell}.queries_per_s"), values scaled where the unit changed."""
        pool = [m for m in self.declared if m.scope == scope and m.was]
        if scope == "phase":
            pool += [m for m in ENGINE_PHASE_METRICS.values() if m.was]
        out: dict[str, Any] = {}
        for key, value in values.items():
            new, scale = key, 1.0
            for m in pool:
                hit = next((n for n in (_renamed(old, m.name, key) for old in m.was)
                            if n is not None), None)
                if hit is not None:
                    new, scale = hit, m.was_scale
                    break
            if scale != 1.0 and isinstance(value, int | float) and not isinstance(value, bool):
                value = value * scale
            out[new] = value
        return out

    def __iter__(self) -> Iterator[Metric]:
        return iter(self.declared)


def _renamed(old: str, new: str, key: str) -> str | None:
    """`key` under the name `new` if it is the old name `old` (templates: the parts that
    {placeholders} stand for carry over), else None."""
    if "{" not in old:
        return new if key == old else None
    m = re.match(_template(old).pattern.replace(r"[A-Za-z0-9_.:=+-]+", r"([A-Za-z0-9_.:=+-]+)"),
                 key)
    if m is None:
        return None
    parts = iter(m.groups())
    return re.sub(r"\{[a-z]+\}", lambda _: next(parts), new)


def declare(kind: str, *metrics: Metric) -> Metrics:
    return Metrics(kind, tuple(metrics))


# Fields every phase has (results.make_phase); addressable as STEP.PHASE.FIELD in
# criteria. Latency fields are read in microseconds (p99_us) from the phase's latency_ns.
PHASE_FIELDS: dict[str, Metric] = {m.name: m for m in (
    metric("bytes_per_s", "higher", "throughput, B/s", phase=True),
    metric("gb_per_s", "higher", "throughput, GB/s (10^9 B/s)", phase=True),
    metric("gib_per_s", "higher", "throughput, GiB/s (2^30 B/s)", phase=True),
    metric("bytes", "neither", "bytes moved", phase=True),
    metric("seconds", "lower", "phase duration, s", phase=True),
    metric("ops", "neither", "I/O operations", unit="count", phase=True),
    metric("ops_per_s", "higher", "operations per second (IOPS)", phase=True, was="iops"),
    *(metric(f"{p}_us", "lower", f"{p.replace('_', '.')} latency, us", phase=True)
      for p in ("p50", "p90", "p99", "p99_9", "p99_99", "max", "mean")),
)}


# Phase metrics the engines add (iobench.engines.native, .fio, .aio; iobench.verify):
# every kind whose phases come from an engine may carry them.
ENGINE_PHASE_METRICS: dict[str, Metric] = {m.name: m for m in (
    metric("queue", "neither", "how the I/Os were queued: threads, linux-aio, io_uring",
           unit="text", phase=True),
    metric("loop", "neither", "the engine's loop: python or compiled", unit="text",
           phase=True),
    metric("interrupted", "neither", "the phase was cut short by a signal", unit="flag",
           phase=True),
    metric("includes_fsync", "neither", "the phase's time includes the final fsync",
           unit="flag", phase=True),
    metric("cpu_s", "lower", "CPU time of the process during the phase, s", phase=True,
           was="cpu_seconds"),
    metric("fsync_s", "lower", "time of the final fsync, s", phase=True, was="fsync_seconds"),
    metric("write_excl_fsync_s", "lower", "write time without the final fsync, s",
           phase=True, was="write_seconds_excl_fsync"),
    metric("in_flight_mean", "higher", "I/Os really in flight on average", unit="ratio",
           phase=True),
    metric("in_flight_method", "neither", "how in_flight_mean was measured", unit="text",
           phase=True),
    metric("fio_version", "neither", "fio's version", unit="text", phase=True),
    metric("fio_jobs", "neither", "fio jobs in the group", unit="count", phase=True),
    metric("fio_runtime_s", "neither", "fio's own runtime of the group, s", phase=True),
    metric("fio_bytes_per_s", "higher", "fio's own bandwidth figure, B/s", phase=True,
           was="fio_bw_bytes"),
    metric("fio_ops_per_s", "higher", "fio's own IOPS figure", phase=True, was="fio_iops"),
    metric("usr_cpu_pct", "lower", "fio's user CPU, %", phase=True),
    metric("sys_cpu_pct", "lower", "fio's system CPU, %", phase=True),
    metric("latency_source", "neither", "which fio latency block (clat, lat)", unit="text",
           phase=True),
    metric("latency_method", "neither", "how percentiles were merged", unit="text",
           phase=True),
    metric("short_ios", "lower", "short I/Os fio counted", unit="count", phase=True),
    metric("note", "neither", "a remark on the phase", unit="text", phase=True),
    metric("percentiles_unavailable", "neither", "why no percentiles", unit="text",
           phase=True),
    metric("unread_tail_bytes", "neither", "bytes of a file's tail not read (not a whole "
           "block)", phase=True),
    metric("verify", "neither", "achieved depth, byte audit, CPU per GB (iobench.verify)",
           unit="text", phase=True),
    metric("byte_counter", "neither", "the /proc/self/io counter that sees the phase's "
           "bytes when the queue does not imply it, or 'none' (e.g. mapped pages touched): "
           "the run's byte audit (iobench.verify.judge_run) judges it on that counter or "
           "leaves it out", unit="text", phase=True, optional=True),
    metric("byte_counter_why", "neither", "why the byte audit leaves the phase out "
           "(byte_counter 'none')", unit="text", phase=True, optional=True),
    metric("rank", "neither", "the MPI rank of a per-rank phase", unit="count", phase=True),
    metric("summary", "neither", "the phase's bytes are also counted in other phases (an "
           "aggregate): the run's byte audit (iobench.verify.judge_run) leaves it out",
           unit="flag", phase=True),
)}


# --- the context a run is given -------------------------------------------------------
class Progress:
    """What a run reports its progress to: `advance(nbytes)`, `set_label(text)`. The
    default shows nothing; the command line passes a Rich bar (iobench.report.progress,
    the same two methods)."""

    enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None

    def set_label(self, label: str) -> None:
        return None


def no_progress(label: str, total: int | None) -> AbstractContextManager[Any]:
    return nullcontext(Progress())


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what is measured): the options every run command shares."""

    target: Path
    results_dir: Path = Path("iobench-results")
    force: bool = False
    wait: float = 0.0  # seconds to wait for another run's lock on the target
    save: bool = True  # write result.json (a suite's steps and tests may not)


@dataclass(frozen=True)
class Ctx:
    """The world a run lives in, passed explicitly instead of read from globals.

    world: this process's MPI world (a one-rank world without mpirun).
    clock: monotonic nanoseconds (tests inject one).
    progress: factory(label, total_bytes) -> context manager with `.advance(n)`.
    on_result: called on rank 0 with the frozen Result once it is written (the command
      line renders it there); None for a quiet library call.
    command_line: what result.json records as the command (a suite step records its own).
    """

    world: World
    clock: Callable[[], int] = time.monotonic_ns
    progress: Callable[[str, int | None], AbstractContextManager[Any]] = no_progress
    on_result: Callable[[Result, Path | None, bool, str | None], None] | None = None
    command_line: tuple[str, ...] = ()
    json_out: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


def default_ctx(**kw: Any) -> Ctx:
    """A context for a library caller: the current world, no output."""
    from iobench import dist

    return Ctx(world=dist.world(), **kw)
