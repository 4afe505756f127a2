"""Sizes, durations and rates: parse what users type, format with explicit units.

Binary units (KiB, MiB, GiB, TiB) are powers of 1024; decimal units (kB, MB, GB, TB)
are powers of 1000; bare k/m/g/t (any case) are binary, as in fio. Throughput headlines
are decimal GB/s, as datasheets use, and always labelled.
"""

from __future__ import annotations

import math
import re
from typing import Any

from iobench.errors import UsageError

_SIZE_UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "pib": 1024**5,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4, "pb": 1000**5,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*$")

_TIME_UNITS: dict[str, float] = {
    "": 1.0, "s": 1.0, "sec": 1.0, "ns": 1e-9, "us": 1e-6, "ms": 1e-3,
    "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
}


def parse_size(text: str | int | float, what: str = "size") -> int:
    """Parse '4k', '4KiB', '1.5GiB', '10GB', '512' into bytes (int, > 0 not required)."""
    if isinstance(text, bool):
        raise UsageError(f"{what}: {text!r} is not a size; use e.g. 4k, 1MiB, 10GB")
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"{what}: {text} is negative; give a size >= 0 such as 4k or 1GiB")
        return text
    if isinstance(text, float):
        text = repr(text)
    m = _SIZE_RE.match(str(text))
    if not m:
        raise UsageError(
            f"{what}: cannot parse {text!r} as a size; use e.g. 4k, 4KiB, 1.5GiB, 10GB "
            "(KiB/MiB/GiB binary, kB/MB/GB decimal, bare k/m/g binary as in fio)"
        )
    number, unit = m.group(1), m.group(2).lower()
    if unit not in _SIZE_UNITS:
        raise UsageError(
            f"{what}: unknown unit {m.group(2)!r} in {text!r}; use B, KiB, MiB, GiB, TiB, "
            "kB, MB, GB, TB or k, m, g, t"
        )
    value = float(number) * _SIZE_UNITS[unit]
    if value != math.floor(value):
        raise UsageError(f"{what}: {text!r} is not a whole number of bytes; use a smaller unit")
    return int(value)


def parse_positive_size(text: str | int, what: str = "size") -> int:
    value = parse_size(text, what)
    if value <= 0:
        raise UsageError(f"{what}: {text!r} must be greater than zero, e.g. 4k or 1GiB")
    return value


def parse_duration(text: str | int | float, what: str = "duration") -> float:
    """Parse '500ms', '2m', '30s', '1.5h', '10' (seconds) into seconds."""
    if isinstance(text, bool):
        raise UsageError(f"{what}: {text!r} is not a duration; use e.g. 30s, 500ms, 2m")
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = _SIZE_RE.match(str(text))
        unit = m.group(2).lower() if m else None
        if not m or unit not in _TIME_UNITS:
            raise UsageError(
                f"{what}: cannot parse {text!r} as a duration; use e.g. 500ms, 30s, 2m, 1h"
            )
        value = float(m.group(1)) * _TIME_UNITS[unit]
    if value < 0 or not math.isfinite(value):
        raise UsageError(f"{what}: {text!r} must be a finite duration >= 0, e.g. 30s")
    return value


def parse_list(text: str, parse: Any, what: str) -> list:
    """Parse a comma-separated list ('4k,16k,64k') with `parse` applied to each item."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what}: {text!r} is empty; give one or more comma-separated values")
    return [parse(t, what) for t in items]


def _scaled(value: float, base: int, names: tuple[str, ...]) -> str:
    v = float(value)
    i = 0
    while abs(v) >= base and i < len(names) - 1:
        v /= base
        i += 1
    if i == 0:
        return f"{int(v)} {names[0]}"
    return f"{v:.3g} {names[i]}" if abs(v) < 100 else f"{v:.1f} {names[i]}"


def format_bytes(n: float, binary: bool = True) -> str:
    """4096 -> '4 KiB' (binary) or '4.1 kB' (decimal)."""
    if binary:
        return _scaled(n, 1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"))
    return _scaled(n, 1000, ("B", "kB", "MB", "GB", "TB", "PB"))


def format_gbps(bytes_per_s: float) -> str:
    """Decimal GB/s, the headline unit: '12.34 GB/s'."""
    return f"{bytes_per_s / 1e9:.2f} GB/s"


def format_ns(ns: float | None) -> str:
    """Latency with the unit that keeps 3 significant digits: '85.2 us', '1.20 ms'."""
    if ns is None:
        return "-"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.3g} us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e9:.3g} s"


def format_count(n: float) -> str:
    """IOPS and sample counts: '37.6k', '1.20M'."""
    if n < 1_000:
        return f"{n:.0f}" if n == int(n) or n >= 100 else f"{n:.3g}"
    if n < 1_000_000:
        return f"{n / 1e3:.3g}k" if n < 100_000 else f"{n / 1e3:.0f}k"
    return f"{n / 1e6:.3g}M"
