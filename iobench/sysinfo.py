"""Host, kernel, CPU, RAM, filesystem, device and tool versions for every result."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from iobench import __version__


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else platform.processor() or "unknown"


def fio_version() -> str | None:
    exe = shutil.which("fio")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def mount_of(path: Path) -> dict[str, Any]:
    """The mount entry holding `path`: device, mount point, fs type, options."""
    best: dict[str, Any] = {}
    text = _read("/proc/self/mounts") or ""
    rp = str(path.resolve())
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        dev, mnt, fstype, opts = parts[:4]
        mnt = mnt.replace("\\040", " ")
        if (rp == mnt or rp.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(
            best.get("mount_point", "")
        ):
            best = {"device": dev, "mount_point": mnt, "fs_type": fstype, "options": opts}
    return best


def block_device(dev: str) -> dict[str, Any]:
    """Model and rotational flag of a /dev/... device where sysfs tells them."""
    name = os.path.basename(os.path.realpath(dev)) if dev.startswith("/dev/") else ""
    if not name:
        return {}
    sys_block = Path("/sys/class/block") / name
    if not sys_block.exists():
        return {"name": name}
    base = sys_block
    if (sys_block / "partition").exists():
        base = sys_block.resolve().parent
    info: dict[str, Any] = {"name": name}
    model = _read(base / "device" / "model")
    if model:
        info["model"] = model
    rot = _read(base / "queue" / "rotational")
    if rot is not None:
        info["rotational"] = rot == "1"
    sched = _read(base / "queue" / "scheduler")
    if sched:
        info["scheduler"] = sched
    return info


def collect(target: Path | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "python": platform.python_version(),
        "iobench": __version__,
        "fio": fio_version(),
        "euid": os.geteuid(),
        "in_container": Path("/.dockerenv").exists() or Path("/run/.containerenv").exists(),
    }
    if target is not None:
        info.update(target_info(target))
    return info


def target_info(target: Path) -> dict[str, Any]:
    """{"target": its path, mount and block device} once it exists, else {}."""
    try:
        if not target.exists():
            return {}
    except OSError:  # a name too long...: the target's own check gives the one line
        return {}
    m = mount_of(target)
    info: dict[str, Any] = {"path": str(target.resolve()), **m}
    if m.get("device"):
        info["block_device"] = block_device(m["device"])
    return {"target": info}
