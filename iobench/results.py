"""The results vocabulary: a run fills a `Recorder`; what leaves a run is a frozen `Result`.

A `Result` (and each of its `Phase`s) is immutable and typed: renderers, `compare`, suite
criteria and the Python API read it, nobody changes it. While a run measures, its body
fills a `Recorder` (phases are appended as plain JSON-ready dicts, `make_phase`); the
runner freezes it (`Recorder.freeze()`) when the run ends, checking every phase's shape.
Versioned JSON, one file per run, written atomically.

Schema history (bump SCHEMA_VERSION on any incompatible change and upgrade old files in
`_upgrade`):
  1 (iobench 0.1): first version.
  2 (iobench 0.2): one suffix rule for metric names (iobench.kinds.base.UNIT_SUFFIXES):
    a phase's `iops` is `ops_per_s`; metrics renamed per kind (each kind's metrics.py
    names what it was called in v1). Version-1 files are upgraded on load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iobench import __version__
from iobench.errors import UsageError
from iobench.stats import Histogram, Timeline

SCHEMA_VERSION = 2
STATUSES = ("ok", "partial", "failed")


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_phase(
    name: str,
    *,
    nbytes: int,
    seconds: float,
    ops: int,
    latency: Histogram | None = None,
    timeline: Timeline | None = None,
    engine: str = "native",
    direction: str = "read",
    metrics: Mapping[str, Any] | None = None,
    latency_summary: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """One phase as the results schema stores it (JSON-ready).

    `latency_summary` is for engines (fio) that report percentiles without a histogram
    of ours; otherwise the summary is read off `latency`.
    """
    lat: dict[str, Any]
    if latency is not None and latency.count:
        lat = latency.summary()
    elif latency_summary is not None:
        lat = dict(latency_summary)
    else:
        lat = {k: None for k in ("p50", "p90", "p99", "p99_9", "p99_99", "max", "mean")}
    bps = nbytes / seconds if seconds > 0 else 0.0
    return {
        "name": name,
        "engine": engine,
        "direction": direction,
        "bytes": int(nbytes),
        "seconds": float(seconds),
        "bytes_per_s": bps,
        "gb_per_s": bps / 1e9,
        "gib_per_s": bps / 2**30,
        "ops": int(ops),
        "ops_per_s": ops / seconds if seconds > 0 else 0.0,
        "latency_ns": lat,
        "histogram": latency.to_dict() if latency is not None and latency.count else None,
        "timeline": timeline.to_dict() if timeline is not None else None,
        "metrics": dict(metrics or {}),
    }


PHASE_KEYS = ("name", "engine", "direction", "bytes", "seconds", "bytes_per_s", "gb_per_s",
              "gib_per_s", "ops", "ops_per_s", "latency_ns", "histogram", "timeline",
              "metrics")


@dataclass(frozen=True)
class Phase(Mapping[str, Any]):
    """One measured phase, immutable. Typed attributes for code; a read-only mapping of
    its JSON form (`phase["bytes"]`) for renderers and criteria that address fields by
    name. Keys beyond the common ones (an engine's own block such as `fio`, a rank's
    `rank`) are kept in `extra`."""

    name: str
    engine: str
    direction: str
    bytes: int
    seconds: float
    ops: int
    latency_ns: Mapping[str, float | None]
    metrics: Mapping[str, Any]
    histogram: Mapping[str, Any] | None = None
    timeline: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def gb_per_s(self) -> float:
        return self.bytes_per_s / 1e9

    @property
    def gib_per_s(self) -> float:
        return self.bytes_per_s / 2**30

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "phase") -> Phase:
        """Check a phase's shape (a damaged or foreign file is one line, not a crash)."""
        def need(key: str, types: type | tuple[type, ...]) -> Any:
            v = d.get(key)
            if not isinstance(v, types) or isinstance(v, bool):
                raise UsageError(f"{where}: field {key!r} is missing or not "
                                 f"{getattr(types, '__name__', 'a number')}; the result "
                                 "file is damaged")
            return v
        name = need("name", str)
        nbytes = need("bytes", int)
        seconds = float(need("seconds", (int, float)))
        ops = need("ops", int)
        for key, v in (("bytes", nbytes), ("seconds", seconds), ("ops", ops)):
            if not math.isfinite(v) or v < 0:
                raise UsageError(f"{where}: {key} is {v!r}, not a number >= 0; the result "
                                 "file is damaged")
        lat = d.get("latency_ns") or {}
        metrics = d.get("metrics") or {}
        if not isinstance(lat, Mapping) or not isinstance(metrics, Mapping):
            raise UsageError(f"{where}: latency_ns and metrics must be objects; the result "
                             "file is damaged")
        extra = {k: v for k, v in d.items() if k not in PHASE_KEYS}
        return cls(name=name, engine=str(d.get("engine", "native")),
                   direction=str(d.get("direction", "read")), bytes=nbytes, seconds=seconds,
                   ops=ops, latency_ns=_freeze(lat), metrics=_freeze(metrics),
                   histogram=_freeze(d["histogram"]) if d.get("histogram") else None,
                   timeline=_freeze(d["timeline"]) if d.get("timeline") else None,
                   extra=_freeze(extra))

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "engine": self.engine, "direction": self.direction,
             "bytes": self.bytes, "seconds": self.seconds, "bytes_per_s": self.bytes_per_s,
             "gb_per_s": self.gb_per_s, "gib_per_s": self.gib_per_s, "ops": self.ops,
             "ops_per_s": self.ops_per_s, "latency_ns": _thaw(self.latency_ns),
             "histogram": _thaw(self.histogram), "timeline": _thaw(self.timeline),
             "metrics": _thaw(self.metrics)}
        d.update(_thaw(self.extra))
        return d

    # the read-only mapping view of the JSON form
    def __getitem__(self, key: str) -> Any:
        if key in PHASE_KEYS:
            v = getattr(self, key)
            return v
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from PHASE_KEYS
        yield from self.extra

    def __len__(self) -> int:
        return len(PHASE_KEYS) + len(self.extra)


class _Frozen(dict):
    """A dict that refuses changes (JSON-serialisable, unlike MappingProxyType)."""

    def _refuse(self, *a: Any, **k: Any) -> Any:
        raise TypeError("a Result is immutable; build a new one (Recorder) instead")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


class _FrozenList(list):
    """A list that refuses changes (still a list to readers and to json)."""

    def _refuse(self, *a: Any, **k: Any) -> Any:
        raise TypeError("a Result is immutable; build a new one (Recorder) instead")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return _Frozen({k: _freeze(x) for k, x in v.items()})
    if isinstance(v, list | tuple):
        return _FrozenList(_freeze(x) for x in v)
    return v


def _thaw(v: Any) -> Any:
    if isinstance(v, Phase):
        return v.to_dict()
    if isinstance(v, Mapping):
        return {k: _thaw(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_thaw(x) for x in v]
    return v


@dataclass(frozen=True)
class Result:
    """One run of one command, as written: immutable. `Recorder.freeze()` makes one,
    `load` reads one."""

    kind: str
    name: str
    spec: Mapping[str, Any]
    engine: str
    command_line: tuple[str, ...]
    started_utc: str
    finished_utc: str | None
    sysinfo: Mapping[str, Any]
    cache: Mapping[str, Any]
    status: str
    reason: str | None
    phases: tuple[Phase, ...]
    metrics: Mapping[str, Any]
    warnings: tuple[str, ...]
    children: tuple[Mapping[str, Any], ...]
    # the independent byte audit of the whole run (iobench.verify.judge_run); {} in
    # results written before it existed
    audit: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    iobench_version: str = __version__
    run_dir: Path | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _document(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_json_default)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> Result:
        d = _upgrade(dict(d), source)
        st = d.get("status") or {}
        if not isinstance(st, Mapping):
            raise UsageError(f"{source}: field 'status' is not an object; the result file "
                             "is damaged")
        phases = d.get("phases") or []
        if not isinstance(phases, list) or not all(isinstance(p, Mapping) for p in phases):
            raise UsageError(f"{source}: field 'phases' is not a list of objects; the "
                             "result file is damaged")
        for key in ("spec", "sysinfo", "cache", "metrics", "audit"):
            if not isinstance(d.get(key) or {}, Mapping):
                raise UsageError(f"{source}: field {key!r} is not an object; the result "
                                 "file is damaged")
        for key in ("warnings", "children", "command_line"):
            if not isinstance(d.get(key) or [], list):
                raise UsageError(f"{source}: field {key!r} is not a list; the result file "
                                 "is damaged")
        if not all(isinstance(c, Mapping) for c in d.get("children") or []):
            raise UsageError(f"{source}: a child of field 'children' is not an object; the "
                             "result file is damaged")
        for key in ("kind", "name"):
            if not isinstance(d.get(key), str):
                raise UsageError(f"{source}: field {key!r} is not a string; the result "
                                 "file is damaged")
        return cls(
            kind=str(d["kind"]), name=str(d["name"]), spec=_freeze(d.get("spec") or {}),
            engine=str(d.get("engine", "native")),
            command_line=tuple(map(str, d.get("command_line") or [])),
            started_utc=str(d.get("started_utc", "")), finished_utc=d.get("finished_utc"),
            sysinfo=_freeze(d.get("sysinfo") or {}), cache=_freeze(d.get("cache") or {}),
            status=str(st.get("state", "ok")), reason=st.get("reason"),
            phases=tuple(Phase.from_dict(p, f"{source}: phase {i}")
                         for i, p in enumerate(phases)),
            metrics=_freeze(d.get("metrics") or {}),
            warnings=tuple(map(str, d.get("warnings") or [])),
            children=tuple(_freeze(c) for c in d.get("children") or []),
            audit=_freeze(d.get("audit") or {}),
            schema_version=SCHEMA_VERSION, iobench_version=str(d.get("iobench_version", "?")),
        )


@dataclass
class Recorder:
    """One run of one command while it runs: the body fills it, the runner freezes it."""

    kind: str  # io, fio, datagen, train, checkpoint, infer-randread, infer-load, suite
    name: str  # pattern, workload or model name
    spec: dict[str, Any]
    engine: str = "native"
    command_line: list[str] = field(default_factory=lambda: list(sys.argv))
    started_utc: str = field(default_factory=utc_now)
    finished_utc: str | None = None
    sysinfo: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    reason: str | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)  # suite steps
    audit: dict[str, Any] = field(default_factory=dict)  # filled by iobench.runner.run
    schema_version: int = SCHEMA_VERSION
    iobench_version: str = __version__
    # where this run's result.json lives while it runs (not saved): for logs beside it
    run_dir: Path | None = field(default=None, repr=False, compare=False)

    def add_phase(self, phase: dict[str, Any]) -> dict[str, Any]:
        self.phases.append(phase)
        log = os.environ.get("IOBENCH_PHASE_LOG")
        if log:  # one line per finished phase, for scripts that watch a run
            with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as f:
                f.write(f"{self.kind} {phase.get('name')}\n")
        return phase

    def mark(self, status: str, reason: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        # never upgrade a failure back to ok/partial
        if self.status == "failed" and status != "failed":
            return
        self.status = status
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return _document(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_json_default)

    def freeze(self) -> Result:
        """The immutable Result of what was recorded (phases checked and typed)."""
        r = Result.from_dict(json.loads(self.to_json()), f"{self.kind} {self.name}")
        return dataclasses.replace(r, run_dir=self.run_dir)


def _document(r: Result | Recorder) -> dict[str, Any]:
    """A result as the results schema writes it (JSON-ready copies, never the live data)."""
    return {
        "schema_version": r.schema_version,
        "iobench_version": r.iobench_version,
        "kind": r.kind,
        "name": r.name,
        "engine": r.engine,
        "started_utc": r.started_utc,
        "finished_utc": r.finished_utc,
        "command_line": list(r.command_line),
        "spec": _thaw(r.spec),
        "sysinfo": _thaw(r.sysinfo),
        "cache": _thaw(r.cache),
        "status": {"state": r.status, "reason": r.reason},
        "warnings": list(r.warnings),
        "metrics": _thaw(r.metrics),
        "phases": [_thaw(p) for p in r.phases],
        "children": [_thaw(c) for c in r.children],
        **({"audit": _thaw(r.audit)} if r.audit else {}),
    }


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _upgrade(d: dict[str, Any], source: str) -> dict[str, Any]:
    v = d.get("schema_version")
    if not isinstance(v, int):
        raise UsageError(f"{source}: not an iobench result (no integer schema_version)")
    if v > SCHEMA_VERSION:
        raise UsageError(
            f"{source}: written with results schema {v} by iobench "
            f"{d.get('iobench_version', '?')}; this iobench ({__version__}) reads up to "
            f"schema {SCHEMA_VERSION}: upgrade iobench to read it"
        )
    for key in ("kind", "name", "phases"):
        if key not in d:
            raise UsageError(f"{source}: result has no {key!r}; the file is damaged")
    if v < 2:
        d = _v1_to_v2(d)
    return d


def _v1_to_v2(d: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: metric names under one suffix rule. The renames are the kinds' own
    declarations (`Metric.was`), so a kind that renames a metric says so in one place."""
    from iobench.kinds import metrics as kind_metrics
    from iobench.kinds import renames

    result_names, phase_names = renames(str(d.get("kind")))
    declared = kind_metrics(str(d.get("kind")))

    def rename(m: Any, table: Mapping[str, str], scope: str) -> Any:
        if not isinstance(m, Mapping):
            return m
        if declared is not None:  # templates and unit changes too
            return declared.upgrade(m, scope)
        return {table.get(k, k): v for k, v in m.items()}

    d = dict(d)
    d["metrics"] = rename(d.get("metrics"), result_names, "result")
    phases = []
    for p in d.get("phases") or []:
        if isinstance(p, Mapping):
            p = {k: v for k, v in p.items() if k != "iops"}
            p["metrics"] = rename(p.get("metrics"), phase_names, "phase")
        phases.append(p)
    d["phases"] = phases
    d["children"] = [_v1_to_v2(dict(c)) if isinstance(c, Mapping)
                     and c.get("schema_version") == 1 else c for c in d.get("children") or []]
    d["schema_version"] = SCHEMA_VERSION
    return d


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a new temp file + fsync + rename (never a half-written file).

    The temp file is created with O_EXCL|O_NOFOLLOW under a fresh random name and written
    through its own descriptor, opened here and closed before the rename: nothing else in
    the process can hold it. On any error the temp file is removed and the error raised.
    """
    data = text.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(
        os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"{path.parent}: cannot create a temporary file")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def mark_unsaved(path: Path, result: Recorder, note: str) -> None:
    """The full result could not be written (e.g. the disk is full): replace the
    provisional file's "did not finish" by the truth, in place, in the blocks it already
    has (a compact form is smaller than the indented provisional one). Best effort."""
    d = result.to_dict()
    d["status"] = {"state": "failed",
                   "reason": f"{note}; the run itself ended: {result.status}"
                             + (f" ({result.reason})" if result.reason else "")}
    d["phases"] = [{k: v for k, v in p.items() if k not in ("histogram", "timeline")}
                   for p in result.phases]
    d["sysinfo"] = {}
    d["children"] = []
    text = json.dumps(d, separators=(",", ":"), default=_json_default).encode("utf-8")
    with contextlib.suppress(OSError):
        write_atomic(path, text.decode("utf-8"))
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            size = os.fstat(fd).st_size
            if len(text) > size:  # no room: keep just what the status needs
                d = {k: d[k] for k in ("schema_version", "iobench_version", "kind", "name",
                                       "started_utc", "finished_utc", "status")}
                d["phases"] = []
                text = json.dumps(d, separators=(",", ":")).encode("utf-8")
            if len(text) <= size:
                os.pwrite(fd, text, 0)
                os.ftruncate(fd, len(text))
                os.fsync(fd)
        finally:
            os.close(fd)


def new_run_dir(results_dir: Path, started_utc: str, kind: str, name: str) -> Path:
    """Create a fresh directory results/<UTC time>-<kind>-<name>[-n]/ (never reused)."""
    stamp = started_utc[:19].replace(":", "-")
    base = f"{stamp}-{_slug(kind)}-{_slug(name)}"
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--results-dir {results_dir}: cannot create it ({e.strerror})") from e
    for n in range(1000):
        d = results_dir / (base if n == 0 else f"{base}-{n}")
        try:
            d.mkdir()
        except FileExistsError:
            continue
        return d
    raise UsageError(f"--results-dir {results_dir}: too many results named {base}")


def save(result: Recorder, results_dir: Path) -> Path:
    """Write result.json into a new directory results/<UTC time>-<kind>-<name>/."""
    if result.finished_utc is None:
        result.finished_utc = utc_now()
    path = new_run_dir(results_dir, result.started_utc, result.kind, result.name) / "result.json"
    try:
        write_atomic(path, result.to_json())
    except BaseException:
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the directory this call made, still empty
        raise
    return path


def rewrite(result: Recorder, path: Path) -> None:
    """Replace this run's own result file (written by `save`) atomically."""
    write_atomic(path, result.to_json())


def load(path: str | Path) -> Result:
    """Load a result.json, or the result.json inside a results directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "result.json"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such result file or directory") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(d, dict):
        raise UsageError(f"{p}: not an iobench result (top level is not an object)")
    return Result.from_dict(d, source=str(p))
