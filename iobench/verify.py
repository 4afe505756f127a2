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
DEPTH_WARN = 0.9  # achieved / requested queue depth below this warns
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size


def proc_io() -> dict[str, int]:
    """This process's I/O counters (threads and reaped children included), or {}."""
    try:
        with open("/proc/self/io") as f:
            return {k: int(v) for k, v in (ln.split(": ") for ln in f.read().splitlines() if ln)}
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
        with open("/proc/diskstats") as f:
            for ln in f:
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
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {n: int(v) for n, v in zip(names, parts[1:9], strict=False)}


def run_queue() -> tuple[float, int]:
    """(1-minute load average, runnable tasks now) from /proc/loadavg."""
    try:
        with open("/proc/loadavg") as f:
            parts = f.read().split()
        return float(parts[0]), int(parts[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0.0, 0


class Window:
    """Counters read before a phase; `close()` reads them again after it."""

    def __init__(self, files: Iterable[Path] = ()) -> None:
        paths = list(files)
        self.device = device_of(paths[0]) if paths else None
        self.io0 = proc_io()
        self.disk0 = diskstats(self.device) if self.device else None
        self.cpu0 = cpu_seconds()
        self.host0 = host_cpu()
        self.io1: dict[str, int] = {}
        self.disk1: tuple[int, int] | None = None
        self.cpu1 = self.cpu0
        self.host1: dict[str, int] = {}

    def close(self) -> Window:
        self.io1 = proc_io()
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
    async_path = queue in ("io_uring", "linux-aio") or ioengine in ("libaio", "io_uring")
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
        seen = delta[counter]
        slack = allowance.get(counter, 0)
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
