"""The Result model: versioned JSON, one file per run, written atomically.

Schema history (bump SCHEMA_VERSION on any incompatible change and upgrade old files in
`_upgrade`):
  1 (iobench 0.1): first version.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iobench import __version__
from iobench.errors import UsageError
from iobench.stats import Histogram, Timeline

SCHEMA_VERSION = 1
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
        "iops": ops / seconds if seconds > 0 else 0.0,
        "latency_ns": lat,
        "histogram": latency.to_dict() if latency is not None and latency.count else None,
        "timeline": timeline.to_dict() if timeline is not None else None,
        "metrics": dict(metrics or {}),
    }


@dataclass
class Result:
    """One run of one command. Mutable while the run builds it; frozen once written."""

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
        return {
            "schema_version": self.schema_version,
            "iobench_version": self.iobench_version,
            "kind": self.kind,
            "name": self.name,
            "engine": self.engine,
            "started_utc": self.started_utc,
            "finished_utc": self.finished_utc,
            "command_line": self.command_line,
            "spec": self.spec,
            "sysinfo": self.sysinfo,
            "cache": self.cache,
            "status": {"state": self.status, "reason": self.reason},
            "warnings": self.warnings,
            "metrics": self.metrics,
            "phases": self.phases,
            "children": self.children,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> Result:
        d = _upgrade(dict(d), source)
        st = d.get("status") or {}
        return cls(
            kind=d["kind"], name=d["name"], spec=d.get("spec") or {},
            engine=d.get("engine", "native"), command_line=d.get("command_line") or [],
            started_utc=d.get("started_utc", ""), finished_utc=d.get("finished_utc"),
            sysinfo=d.get("sysinfo") or {}, cache=d.get("cache") or {},
            status=st.get("state", "ok"), reason=st.get("reason"),
            phases=list(d.get("phases") or []), metrics=dict(d.get("metrics") or {}),
            warnings=list(d.get("warnings") or []), children=list(d.get("children") or []),
            schema_version=SCHEMA_VERSION, iobench_version=d.get("iobench_version", "?"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_json_default)


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


def mark_unsaved(path: Path, result: Result, note: str) -> None:
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


def save(result: Result, results_dir: Path) -> Path:
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


def rewrite(result: Result, path: Path) -> None:
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
