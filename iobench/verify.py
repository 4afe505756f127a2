"""Figures checked against independent counts, per phase: the kernel's own byte counters
for this process tree (/proc/self/io, reaped children such as fio included) and for the
target's block device (/proc/diskstats), the CPU time the phase cost, and the queue depth
it really achieved (Little's law and, where the engine measures it, the mean number of
requests in flight) beside the one requested.

    window = verify.Window(files)      # before the phase
    ...run the phase...
    window.close()                     # after it
    warnings = verify.annotate(phase, window, requested_depth=..., counter=...)

`annotate` stores everything under phase['metrics']['verify'] and returns the warnings
(a byte disagreement above 1% beyond the start-up allowance, depth below 0.9 x).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

TOLERANCE = 0.01  # byte counts that differ by more than this (beyond start-up) warn
# The run-level audit: a surplus (the kernel counted more than the phases) under this many
# bytes is not a disagreement: small reads no phase makes (a YAML spec, locale and
# encoding files, a lazily loaded table) that a run of a few MiB would otherwise flag.
# A shortfall (bytes measured that the kernel never saw) has no floor.
SURPLUS_FLOOR = 1 << 20
DEPTH_WARN = 0.9  # achieved / requested queue depth below this warns
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size


_SELF_READ = [0]  # bytes this module read from /proc itself: the audit leaves them out


def note_own_read(nbytes: int) -> None:
    """`nbytes` that iobench read of its own bookkeeping (fio's JSON output and stderr):
    counted in rchar, measured by no phase; every audit leaves them out."""
    _SELF_READ[0] += int(nbytes)


def _read_proc(path: str, first_line: bool = False) -> str:
    """A /proc file's text, its bytes added to what the audit knows it read itself."""
    with open(path, "rb") as f:
        data = f.readline() if first_line else f.read()
    _SELF_READ[0] += len(data)
    return data.decode("ascii", "replace")


def proc_io(thread: bool = False) -> dict[str, int]:
    """This process's I/O counters (threads and reaped children included), or {};
    with `thread`, the calling thread's own."""
    try:
        text = _read_proc("/proc/thread-self/io" if thread else "/proc/self/io")
        return {k: int(v) for k, v in (ln.split(": ") for ln in text.splitlines() if ln)}
    except (OSError, ValueError):
        return {}


def device_of(path: Path) -> str | None:
    """The block device (as named in /proc/diskstats) that holds `path`, or None (tmpfs,
    network file systems, overlay without a backing device)."""
    try:
        p = Path(path)
        st = (p if p.exists() else p.parent).stat()
    except OSError:
        return None
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    try:
        link = Path(f"/sys/dev/block/{major}:{minor}").readlink()
    except OSError:
        return None
    return link.name


def diskstats(device: str) -> tuple[int, int] | None:
    """(bytes read, bytes written) since boot for `device`, from /proc/diskstats."""
    try:
        for ln in _read_proc("/proc/diskstats").splitlines():
            parts = ln.split()
            if len(parts) >= 10 and parts[2] == device:
                return int(parts[5]) * SECTOR, int(parts[9]) * SECTOR
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds() -> tuple[float, float]:
    """(this process's user+system CPU s, its reaped children's)."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def host_cpu() -> dict[str, int]:
    """The host's CPU time counters (/proc/stat 'cpu' line, clock ticks), or {}."""
    try:
        parts = _read_proc("/proc/stat", first_line=True).split()
    except OSError:
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {n: int(v) for n, v in zip(names, parts[1:9], strict=False)}


def run_queue() -> tuple[float, int]:
    """(1-minute load average, runnable tasks now) from /proc/loadavg."""
    try:
        parts = _read_proc("/proc/loadavg").split()
        return float(parts[0]), int(parts[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0.0, 0


class Window:
    """Counters read before a phase; `close()` reads them again after it."""

    def __init__(self, files: Iterable[Path] = ()) -> None:
        import sys

        paths = list(files)
        self.device = device_of(paths[0]) if paths else None
        self.modules0 = set(sys.modules)  # what is imported inside is start-up I/O
        self.imported: list[str] = []
        self.own0 = _SELF_READ[0]
        self.own_read = 0
        self.io0 = proc_io()
        self.disk0 = diskstats(self.device) if self.device else None
        self.cpu0 = cpu_seconds()
        self.host0 = host_cpu()
        self.io1: dict[str, int] = {}
        self.disk1: tuple[int, int] | None = None
        self.cpu1 = self.cpu0
        self.host1: dict[str, int] = {}

    def close(self) -> Window:
        import sys

        self.io1 = proc_io()
        self.own_read = _SELF_READ[0] - self.own0  # this module's and fio's output reads
        self.imported = sorted(set(sys.modules) - self.modules0)
        self.disk1 = diskstats(self.device) if self.device else None
        self.cpu1 = cpu_seconds()
        self.host1 = host_cpu()
        return self

    def io_delta(self) -> dict[str, int]:
        return {k: self.io1[k] - self.io0[k] for k in self.io0 if k in self.io1}

    def disk_delta(self) -> tuple[int, int] | None:
        if self.disk0 is None or self.disk1 is None:
            return None
        return self.disk1[0] - self.disk0[0], self.disk1[1] - self.disk0[1]

    def cpu_delta(self) -> float:
        """CPU seconds of this process and its reaped children (fio) in the window."""
        return (self.cpu1[0] - self.cpu0[0]) + (self.cpu1[1] - self.cpu0[1])

    def host_delta(self) -> dict[str, int]:
        return {k: self.host1[k] - self.host0[k] for k in self.host0 if k in self.host1}


_NULL: dict[str, dict[str, int]] = {}


def startup_allowance(kind: str) -> dict[str, int]:
    """The bytes an empty window of this kind counts on its own (start-up I/O: fio
    reading its libraries and job file, /proc reads), measured once per process by a
    null run: for 'fio', an fio job that reads nothing; for 'native', an empty window."""
    if kind in _NULL:
        return _NULL[kind]
    with untimed(children=True):  # a run under way leaves this measurement's I/O out
        return _null_run(kind)


def _null_run(kind: str) -> dict[str, int]:
    w = Window()
    if kind == "fio":
        import shutil
        import subprocess
        import tempfile

        exe = shutil.which("fio")
        if exe is not None:
            with tempfile.TemporaryDirectory(prefix="iobench-null-") as tmp:
                subprocess.run([exe, "--name=null", "--ioengine=null", "--size=4k",
                                "--output-format=json", f"--directory={tmp}"],
                               capture_output=True, check=False)
    w.close()
    _NULL[kind] = {k: max(0, v) for k, v in w.io_delta().items()}
    return _NULL[kind]


def counter_for(direction: str, queue: str | None, ioengine: str | None = None) -> str:
    """Which /proc/self/io counter sees a phase's bytes: read(2)-family calls count in
    rchar/wchar; Linux AIO and io_uring bypass them, and only the block layer's
    read_bytes/write_bytes (O_DIRECT: exactly the bytes moved) see those."""
    async_path = queue in ("io_uring", "linux-aio", "libaio") or \
        ioengine in ("libaio", "io_uring")
    if direction == "read":
        return "read_bytes" if async_path else "rchar"
    return "write_bytes" if async_path else "wchar"


def achieved_depth(phase: dict[str, Any], requested: int) -> dict[str, Any]:
    """Little's law (mean latency x IOPS over the I/O time) and the engine's measured mean
    in flight, beside the requested depth; `low` when Little's figure < 0.9 x requested."""
    m = phase.get("metrics") or {}
    mean_ns = (phase.get("latency_ns") or {}).get("mean")
    io_s = m.get("write_excl_fsync_s") or phase.get("seconds") or 0.0
    ops = phase.get("ops") or 0
    out: dict[str, Any] = {"requested": requested}
    if mean_ns and io_s > 0 and ops:
        little = mean_ns / 1e9 * ops / io_s
        out["little"] = round(little, 3)
        out["low"] = bool(requested and little < DEPTH_WARN * requested)
    if m.get("in_flight_mean") is not None:
        out["in_flight_mean"] = round(float(m["in_flight_mean"]), 3)
        out["in_flight_method"] = m.get("in_flight_method")
    return out


def audit(measured: int, window: Window, counter: str, allowance: dict[str, int],
          direct: bool, direction: str) -> dict[str, Any]:
    """The phase's bytes against the process counter and the device's. The process
    counter must agree within 1% beyond start-up; the device's count includes every
    process on it, so it is only a bound: with O_DIRECT the device must have moved at
    least the bytes measured."""
    delta = window.io_delta()
    out: dict[str, Any] = {"measured_bytes": int(measured), "proc_io": delta,
                           "counter": counter}
    warn = []
    if counter in delta:
        seen = delta[counter] - (window.own_read if counter == "rchar" else 0)
        slack = allowance.get(counter, 0)
        if counter == "rchar":  # byte code Python read for modules imported in the window
            slack += _module_bytes(window.imported)
        diff = seen - measured
        out["counter_bytes"] = seen
        out["startup_allowance_bytes"] = slack
        ok = -TOLERANCE * measured <= diff <= TOLERANCE * measured + slack
        out["agrees"] = ok
        if not ok:
            warn.append(f"byte audit: the phase counted {measured:,} bytes, the kernel's "
                        f"{counter} for this process {seen:,} ({diff / max(measured, 1):+.1%})")
    else:
        out["agrees"] = None
    dd = window.disk_delta()
    if dd is not None:
        dev = dd[0] if direction == "read" else dd[1]
        out["device"] = window.device
        out["device_bytes"] = dev
        if direct and dev < (1 - TOLERANCE) * measured:
            warn.append(f"byte audit: {window.device} moved {dev:,} bytes for "
                        f"{measured:,} O_DIRECT bytes measured: they did not all reach it")
            out["device_agrees"] = False
    out["warnings"] = warn
    return out


def annotate(phase: dict[str, Any], window: Window, *, requested_depth: int, counter: str,
             allowance: dict[str, int], direct: bool, cpu_s: float | None = None,
             ) -> list[str]:
    """Attach depth, byte audit and CPU cost to phase['metrics']['verify']; warnings."""
    m = phase.setdefault("metrics", {})
    depth = achieved_depth(phase, requested_depth)
    aud = audit(phase["bytes"], window, counter, allowance, direct, phase["direction"])
    cpu = window.cpu_delta() if cpu_s is None else cpu_s
    gb = phase["bytes"] / 1e9
    v: dict[str, Any] = {"depth": depth, "audit": aud, "cpu_s": round(cpu, 4),
                         "cpu_s_per_gb": round(cpu / gb, 4) if gb > 0 else None}
    m["verify"] = v
    warn = list(aud["warnings"])
    if depth.get("low"):
        warn.append(f"{phase['name']}: achieved queue depth {depth['little']:.1f} (mean "
                    f"latency x IOPS) is under 0.9 x the {requested_depth} requested")
    return warn


def table(phases: Sequence[Mapping[str, Any]]) -> Any:
    """A Rich table of what was verified per phase, or None when nothing was."""
    from rich.table import Table

    from iobench.units import format_bytes

    rows = [p for p in phases if (p.get("metrics") or {}).get("verify")]
    if not rows:
        return None
    t = Table(title="Verified", title_justify="left")
    for col in ("phase", "QD asked", "QD achieved", "in flight", "resident start/end",
                "bytes", "kernel count", "device", "CPU s/GB"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    for p in rows:
        m = p["metrics"]
        v = m["verify"]
        d = v["depth"]
        a = v.get("audit") or {}  # under MPI: depth only (the counters are per process)
        little = f"{d['little']:.1f}" if "little" in d else "-"
        if d.get("low"):
            little += " LOW"
        fl = f"{d['in_flight_mean']:.1f}" if "in_flight_mean" in d else "-"
        rs, re_ = m.get("resident_start_pct"), m.get("resident_end_pct")
        res = "-" if rs is None else f"{rs:.1f}% / {'-' if re_ is None else f'{re_:.1f}%'}"
        if a.get("counter_bytes") is not None:
            kc = f"{format_bytes(a['counter_bytes'])} {a['counter']}"
            kc += "" if a.get("agrees") else " DIFFERS"
        else:
            kc = "-"
        dev = (f"{format_bytes(a['device_bytes'])} {a['device']}" if "device_bytes" in a
               else "-")
        cpg = v.get("cpu_s_per_gb")
        t.add_row(p["name"], str(d["requested"]), little, fl, res, format_bytes(p["bytes"]),
                  kc, dev, "-" if cpg is None else f"{cpg:.3f}")
    t.caption = ("QD achieved = mean latency x IOPS (Little's law); in flight = the engine's "
                 "own measurement; resident = share of the data set in the page cache "
                 "(measured); kernel count = /proc/self/io of this process tree; device = "
                 "/proc/diskstats of the target's device (every process's I/O on it)")
    return t


# --- the whole run's audit (iobench.runner.run: every kind) ----------------------------
_OPEN: list[RunWindow] = []  # runs under way in this process, innermost last


class untimed:  # noqa: N801 - used as `with verify.untimed():`
    """I/O a run does outside its measured phases (laying out files, writing a manifest, a
    reference read): counted by the kernel, measured by no phase. `with verify.untimed():`
    records it, so the run's byte audit leaves it out (and shows it) instead of warning
    about it. The calling thread's own counters are read (other threads may be moving
    measured bytes meanwhile); `children=True` reads the process's, for a block that
    runs and reaps a child process (fio) while nothing else moves bytes.

    `mirror=True` is for messages on a pipe to a worker process of this run (a rank
    process, a replica): the worker counts the bytes this thread wrote as its rchar and
    the bytes it read as its wchar, and they reach this process's counters when it is
    reaped; both halves are recorded. A run whose workers exchange every message this
    way is judged on equality, not only on a lower bound (judge_run's `workers`)."""

    def __init__(self, children: bool = False, mirror: bool = False) -> None:
        self.thread = not children
        self.mirror = mirror

    def __enter__(self) -> untimed:
        own = _SELF_READ[0]
        self.io0 = proc_io(self.thread)
        # that read itself lands in rchar inside the window; it is already counted as
        # the audit's own /proc read (own_proc_read_bytes), so not here again
        self.own_read = _SELF_READ[0] - own
        return self

    def __exit__(self, *exc: object) -> None:
        io1 = proc_io(self.thread)
        delta = {k: v - self.io0[k] for k, v in io1.items() if k in self.io0}
        if "rchar" in delta:
            delta["rchar"] -= self.own_read
        if self.mirror:
            moved = delta.get("rchar", 0) + delta.get("wchar", 0)
            delta["rchar"] = delta["wchar"] = moved
        for w in _OPEN:
            for k, v in delta.items():
                w.untimed[k] = w.untimed.get(k, 0) + v
            if self.mirror:
                w.workers_accounted = True


ELF_HEADER_READ = 832  # what the dynamic loader read(2)s of each shared object (x86-64)


def _module_bytes(names: Iterable[str]) -> int:
    """Bytes Python read importing the modules `names`: each one's byte code where it is
    current, else its source; an extension module is mapped, and only the loader's read
    of its ELF header counts."""
    import sys

    got = 0
    for name in names:
        mod = sys.modules.get(name)
        src = getattr(mod, "__file__", None)
        if not src:
            continue
        try:
            st = Path(src).stat()
        except OSError:
            continue
        if str(src).endswith(".so"):
            got += ELF_HEADER_READ
            continue
        if not str(src).endswith(".py"):
            continue
        cached = getattr(mod, "__cached__", None)
        try:
            pyc = Path(cached).stat() if cached else None
        except OSError:
            pyc = None
        got += pyc.st_size if pyc is not None and pyc.st_mtime >= st.st_mtime else st.st_size
    return got


class RunWindow:
    """The kernel's counters around a whole run's body: this process tree's /proc/self/io,
    the target device's /proc/diskstats, CPU seconds, the modules imported (start-up I/O)
    and the I/O the body declared untimed. `judge(phases)` compares them with the bytes
    the phases measured."""

    def __init__(self, target: Path | None) -> None:

        self.device = device_of(target) if target is not None and str(target) else None
        self.untimed: dict[str, int] = {}
        self.nested: dict[str, int] = {}  # runs inside this one (suite steps): their own audit
        self.workers_accounted = False  # worker pipes declared with untimed(mirror=True)
        self.imported: list[str] = []
        self.null = startup_allowance("native")
        self.self0 = _SELF_READ[0]
        self.self_read = 0
        self.window = Window()
        self.window.device = self.device
        self.window.disk0 = diskstats(self.device) if self.device else None
        _OPEN.append(self)

    def close(self) -> RunWindow:

        self.window.close()
        self.self_read = _SELF_READ[0] - self.self0  # the audit's own /proc reads
        if self in _OPEN:
            _OPEN.remove(self)
        if _OPEN:  # a step's I/O is audited by the step: the enclosing run leaves it out
            parent = _OPEN[-1]
            for k, v in self.window.io_delta().items():
                parent.nested[k] = parent.nested.get(k, 0) + v
        self.imported = self.window.imported
        return self


COUNTERS = ("rchar", "wchar", "read_bytes", "write_bytes")
NO_COUNTER = "none"  # metrics.byte_counter: no counter of this process tree sees the bytes


def phase_counter(phase: Mapping[str, Any], ioengine: str | None = None) -> str | None:
    """The /proc/self/io counter that sees a phase's bytes, or None when no counter of
    this process does: not a read or write, bytes counted in other phases too (metrics
    `summary`), bytes moved on other hosts (fio client/server: `client`, `clients`) or in
    memory (engine `ram`), or a kind says so (metrics `byte_counter: none`: pages of a
    mapping touched, not read(2)). A kind whose phase is seen by another counter than
    its queue implies names it in `byte_counter` (e.g. 'read_bytes')."""
    return None if left_out(phase, ioengine) else _counter(phase, ioengine)


def _counter(phase: Mapping[str, Any], ioengine: str | None) -> str:
    m = phase.get("metrics") or {}
    if m.get("byte_counter") in COUNTERS:
        return str(m["byte_counter"])
    a = (m.get("verify") or {}).get("audit") or {}
    if a.get("counter"):
        return str(a["counter"])
    return counter_for(str(phase["direction"]), m.get("queue"),
                       m.get("ioengine") or (ioengine if phase.get("engine") == "fio"
                                             else None))


def left_out(phase: Mapping[str, Any], ioengine: str | None = None) -> str | None:
    """Why the run's byte audit does not count this phase's bytes, or None if it does."""
    m = phase.get("metrics") or {}
    engine = m.get("ioengine") or (ioengine if phase.get("engine") == "fio" else None)
    if phase.get("direction") not in ("read", "write"):
        return f"direction {phase.get('direction')}: no bytes to a file"
    if phase.get("engine") == "ram":
        return "moved in memory (engine ram)"
    if m.get("summary"):
        return "an aggregate: its bytes are in other phases too"
    if "client" in m or "clients" in m:
        return "moved on other hosts (fio client/server)"
    if m.get("rank") is not None:
        return "one MPI rank's share"
    if m.get("byte_counter") == NO_COUNTER:
        return str(m.get("byte_counter_why") or "no counter of this process sees them")
    if m.get("direct") is False and m.get("byte_counter") not in COUNTERS and \
            counter_for("read", m.get("queue"), engine) == "read_bytes":
        # Linux AIO / io_uring bypass rchar/wchar, and buffered they hit the page cache,
        # which read_bytes/write_bytes (the block layer) do not see either
        return ("buffered AIO/io_uring: rchar/wchar do not see it and the block layer only "
                "what missed the page cache")
    return None


_BLOCK = ("read_bytes", "write_bytes")


def rank_counts(rw: RunWindow, host: str | None = None) -> dict[str, Any]:
    """What one process's run window counted, as plain data (sent to rank 0 under MPI):
    its /proc/self/io deltas, the I/O it declared untimed or audited in nested runs, its
    own /proc reads, its start-up allowance (a null window, the byte code it imported),
    its target device's /proc/diskstats deltas, its CPU seconds, whether worker
    processes ran (and whether their pipes were declared)."""
    import socket

    w = rw.window
    return {"host": host or socket.gethostname(), "proc_io": w.io_delta(),
            "untimed": dict(rw.untimed), "nested": dict(rw.nested),
            "self_read": rw.self_read, "code_read": _module_bytes(rw.imported),
            "null": dict(rw.null), "device": w.device, "disk": w.disk_delta(),
            "cpu_s": w.cpu_delta(), "children_cpu_s": w.cpu1[1] - w.cpu0[1],
            "workers_accounted": rw.workers_accounted}


def _add(dicts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def sum_counts(per_rank: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every rank's counts summed. The /proc/self/io counters, untimed and nested bytes,
    own reads, allowances and CPU are per process: summed over ranks. /proc/diskstats is
    per host and device-wide: each (host, device) is counted once, from the lowest rank
    on that host (ranks sharing a host see the same device counters over nearly the same
    window: summing them would count the device's bytes once per rank)."""
    disk: dict[tuple[str, str], tuple[int, int]] = {}
    for r in per_rank:
        if r.get("device") and r.get("disk") is not None:
            disk.setdefault((str(r["host"]), str(r["device"])), tuple(r["disk"]))
    if any(not r.get("device") or r.get("disk") is None for r in per_rank):
        disk = {}  # a rank's target has no block device here: a partial sum would warn
    devices = sorted({d for _, d in disk})
    out: dict[str, Any] = {
        "ranks": len(per_rank),
        "hosts": sorted({str(r["host"]) for r in per_rank}),
        "proc_io": _add(r["proc_io"] for r in per_rank),
        "untimed": _add(r["untimed"] for r in per_rank),
        "nested": _add(r["nested"] for r in per_rank),
        "self_read": sum(int(r["self_read"]) for r in per_rank),
        "code_read": sum(int(r["code_read"]) for r in per_rank),
        "null": _add(r["null"] for r in per_rank),
        "device": ",".join(devices) if devices else None,
        "disk": (sum(d[0] for d in disk.values()), sum(d[1] for d in disk.values()))
        if disk else None,
        "device_hosts": sorted({f"{h}:{d}" for h, d in disk}),
        "cpu_s": sum(float(r["cpu_s"]) for r in per_rank),
        "children_cpu_s": sum(float(r["children_cpu_s"]) for r in per_rank),
        # worker pipes are judged on equality only if every rank that had workers declared
        # them
        "workers_accounted": all(r["workers_accounted"] or r["children_cpu_s"] <= 0
                                 for r in per_rank),
        "per_rank": [{"host": r["host"], "proc_io": r["proc_io"], "untimed": r["untimed"],
                      "device": r.get("device"), "disk": r.get("disk")} for r in per_rank],
    }
    return out


def judge_run(rw: RunWindow, phases: Sequence[Mapping[str, Any]], *,
              ioengine: str | None = None, ranks: int = 1,
              per_rank: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The run's byte audit: per /proc/self/io counter, the bytes the phases measured
    against the kernel's count, the start-up allowance (a null window, the byte code of
    the modules imported during the run, fio's start-up per fio phase) and the untimed
    I/O the run declared; the device's bytes; CPU seconds per GB moved. Disagreements
    go to out['warnings']: the read(2)-family counters (rchar, wchar) must agree within
    1% beyond the allowance; the block-layer counters (read_bytes, write_bytes) and the
    device must have seen at least the bytes of the phases that bypass read(2) (AIO,
    io_uring: O_DIRECT) — their surplus is page-cache traffic, not a disagreement.

    Under MPI (`ranks` > 1) the phases carry every rank's bytes: `per_rank` must hold
    every rank's `rank_counts` (gathered on rank 0), and their sums are judged
    (`sum_counts`: device counters once per host); without it the audit is skipped."""
    if ranks > 1 and (per_rank is None or len(per_rank) != ranks):
        c = rank_counts(rw)
        out = _judge(c, phases, ioengine, ranks)
        out["skipped"] = (f"under MPI ({ranks} ranks) the ranks' counters were not all "
                          "gathered (a rank stopped early); /proc/self/io here counts "
                          "rank 0 only, the phases every rank's")
        out.pop("checks", None)
        out["warnings"] = []
        out["agrees"] = None
        out["verdict"] = "skipped"
        return out
    c = sum_counts(per_rank) if ranks > 1 and per_rank is not None else rank_counts(rw)
    return _judge(c, phases, ioengine, ranks)


def _judge(c: Mapping[str, Any], phases: Sequence[Mapping[str, Any]], ioengine: str | None,
           ranks: int) -> dict[str, Any]:
    delta: dict[str, int] = dict(c["proc_io"])
    untimed_b: dict[str, int] = dict(c["untimed"])
    nested_b: dict[str, int] = dict(c["nested"])
    measured: dict[str, int] = {}
    by_direction = {"read": 0, "write": 0}
    fio_runs = 0  # fio processes the phases ran (a merged phase: one per rank)
    unaudited: list[dict[str, Any]] = []
    for p in phases:
        ctr = phase_counter(p, ioengine)
        if ctr is None:
            if p.get("direction") in ("read", "write") and p.get("bytes"):
                unaudited.append({"phase": p.get("name"), "bytes": int(p["bytes"]),
                                  "why": left_out(p, ioengine)})
            continue
        measured[ctr] = measured.get(ctr, 0) + int(p["bytes"])
        by_direction[str(p["direction"])] += int(p["bytes"])
        if p.get("engine") == "fio":  # under MPI a merged phase ran fio on each rank
            fio_runs += ranks if ranks > 1 and (p.get("metrics") or {}).get("ranks") else 1
    fio_null = startup_allowance("fio") if fio_runs else {}
    null = c["null"]
    allowance = {k: null.get(k, 0) + fio_runs * fio_null.get(k, 0)
                 for k in ("rchar", "wchar", "read_bytes", "write_bytes")}
    allowance["rchar"] += int(c["code_read"])
    cpu = float(c["cpu_s"])
    moved = by_direction["read"] + by_direction["write"]
    out: dict[str, Any] = {
        "measured_bytes": by_direction, "proc_io": delta,
        "startup_allowance_bytes": allowance, "untimed_bytes": untimed_b,
        "nested_bytes": nested_b, "own_proc_read_bytes": int(c["self_read"]), "checks": [],
        "cpu_s": round(cpu, 4), "cpu_s_per_gb": round(cpu / (moved / 1e9), 4) if moved else None,
        "tolerance_pct": TOLERANCE * 100, "surplus_floor_bytes": SURPLUS_FLOOR,
        "left_out": unaudited, "warnings": []}
    if ranks > 1:
        out["ranks"] = {"ranks": ranks, "hosts": c.get("hosts"),
                        "device_counted_on": c.get("device_hosts"),
                        "how": "each rank's own /proc/self/io (its threads and reaped "
                               "children), its untimed I/O and its start-up allowance, "
                               "summed on rank 0; /proc/diskstats once per host and "
                               "device (ranks sharing a host share its device counters)",
                        "per_rank": c.get("per_rank")}
    warn: list[str] = out["warnings"]
    # worker processes (not fio) ran and were reaped: their pipes to this process count
    # in rchar/wchar too, so those counters can only bound the bytes from below
    workers = float(c["children_cpu_s"]) > 0 and not fio_runs and \
        not c["workers_accounted"]
    if workers:
        out["note"] = ("worker processes ran: their pipe traffic counts in rchar/wchar, so "
                       "a surplus there is not judged (a shortfall is)")
    for counter, want in sorted(measured.items()):
        if counter not in delta:
            continue
        seen = delta[counter] - untimed_b.get(counter, 0) - nested_b.get(counter, 0)
        if counter == "rchar":
            seen -= int(c["self_read"])
        slack = allowance.get(counter, 0)
        diff = seen - want
        lower_only = counter in _BLOCK or workers
        if lower_only:
            ok = diff >= -TOLERANCE * want
        else:
            ok = -TOLERANCE * want <= diff <= max(TOLERANCE * want, SURPLUS_FLOOR) + slack
        out["checks"].append({"counter": counter, "measured_bytes": want,
                              "counter_bytes": seen, "allowance_bytes": slack,
                              "agrees": ok, "bound": "at least" if lower_only
                              else "equal"})
        if not ok:
            tree = "this process tree" if ranks == 1 else f"the {ranks} ranks' process trees"
            warn.append(f"byte audit: the phases measured {want:,} bytes, the kernel's "
                        f"{counter} for {tree} {seen:,} "
                        f"({diff / max(want, 1):+.1%}; allowed: 1% and {slack:,} bytes of "
                        f"start-up, a surplus up to {SURPLUS_FLOOR >> 20} MiB)")
    dd = c.get("disk")
    if dd is not None:
        out["device"] = c["device"]
        out["device_bytes"] = {"read": dd[0], "write": dd[1]}
        for direction, counter, dev in (("read", "read_bytes", dd[0]),
                                        ("write", "write_bytes", dd[1])):
            want = measured.get(counter, 0)
            if want and dev < (1 - TOLERANCE) * want:
                warn.append(f"byte audit: {c['device']} moved {dev:,} bytes for the "
                            f"{want:,} {direction} bytes measured past the page cache: they "
                            "did not all reach it")
    judged = bool(out["checks"])
    out["agrees"] = not warn if judged or warn else None
    out["verdict"] = ("differs" if warn else "agrees" if judged
                      else "unchecked")  # no phase's bytes are seen by a counter here
    return out


def summarise_steps(children: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A suite's audit: each step's result carries its own (judge_run, measured while the
    step ran); the suite lists every step's verdict and is `differs` if any step's is,
    `agrees` if every judged step agrees, `unchecked` if none could be judged."""
    rows: list[dict[str, Any]] = []
    for c in children:
        a = c.get("audit") or {}
        verdict = a.get("verdict") or ("error" if a.get("error") else
                                       "none" if not a else
                                       "agrees" if a.get("agrees") else "differs")
        row: dict[str, Any] = {"step": c.get("step_id"), "kind": c.get("kind"),
                               "verdict": verdict}
        if a.get("warnings"):
            row["warnings"] = list(a["warnings"])
        if a.get("error"):
            row["error"] = a["error"]
        rows.append(row)
    verdicts = [r["verdict"] for r in rows]
    out: dict[str, Any] = {"steps": rows,
                           "counts": {v: verdicts.count(v) for v in sorted(set(verdicts))}}
    bad = [r for r in rows if r["verdict"] == "differs"]
    out["warnings"] = [f"byte audit: step '{r['step']}' differs: {w}"
                       for r in bad for w in r.get("warnings") or ["(see its result)"]]
    if bad:
        out["verdict"], out["agrees"] = "differs", False
    elif "agrees" in verdicts:
        out["verdict"], out["agrees"] = "agrees", True
    else:
        out["verdict"], out["agrees"] = "unchecked", None
    return out


def audit_line(a: Mapping[str, Any]) -> str:
    """One line for the terminal header: each counter against the phases, CPU per GB."""
    from iobench.units import format_bytes

    if not a:
        return ""
    if a.get("skipped"):
        return f"byte audit: {a['skipped']}"
    if "counts" in a:  # a suite: its steps' own audits
        counts = ", ".join(f"{n} {v}" for v, n in a["counts"].items())
        return f"byte audit ({a['verdict']}): steps: {counts}"
    if a.get("verdict") == "unchecked":
        why = "; ".join(sorted({str(x["why"]) for x in a.get("left_out") or []}))
        return "byte audit: nothing to check" + (f" ({why})" if why else "")
    parts = []
    for c in a.get("checks") or []:
        sign = ("=" if c["bound"] == "equal" else ">=") if c["agrees"] else "!="
        off = (c["counter_bytes"] - c["measured_bytes"]) / max(c["measured_bytes"], 1)
        parts.append(f"{c['counter']} {format_bytes(c['counter_bytes'])} {sign} "
                     f"{format_bytes(c['measured_bytes'])} measured ({off:+.1%})")
    if "device_bytes" in a:
        d = a["device_bytes"]
        parts.append(f"{a['device']} r {format_bytes(d['read'])} w {format_bytes(d['write'])}")
    if a.get("cpu_s_per_gb") is not None:
        parts.append(f"CPU {a['cpu_s_per_gb']:.3f} s/GB")
    if not parts:
        return ""
    verdict = "agrees" if a.get("agrees") else "DIFFERS"
    return f"byte audit ({verdict}): " + "; ".join(parts)
