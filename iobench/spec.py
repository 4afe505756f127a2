"""Frozen dataclass specs and a YAML loader that declares its schema.

Unknown keys and wrong types are refused with the key path and a did-you-mean; fields
marked as sizes or durations accept '4k', '1.5GiB', '500ms'. Command-line flags override
YAML fields with `override()`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from iobench.errors import SpecError, did_you_mean
from iobench.units import parse_duration, parse_size

MAX_INT = 2**63 - 1


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

T = TypeVar("T")


def size_field(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field holding bytes; YAML may say '4k' or '1.5GiB'."""
    return dataclasses.field(default=default, metadata={"unit": "size"}, **kw)


def duration_field(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field holding seconds; YAML (and the API) may say '30s' or '2m'."""
    return dataclasses.field(default=default, metadata={"unit": "duration"}, **kw)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str, unit: str | None) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, path, unit)
            except SpecError as e:
                errors.append(str(e))
        raise SpecError(errors[0] if errors else f"{path}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise SpecError(f"{path}: {value!r} is not allowed"
                            f"{did_you_mean(str(value), [str(a) for a in args])}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise SpecError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        item_t = args[0] if args else Any
        items = [_convert(v, item_t, f"{path}[{i}]", unit) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SpecError(f"{path}: expected a mapping, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, vt, f"{path}.{k}", unit) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is Path:
        if isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value or "\0" in value:
            raise SpecError(f"{path}: expected a path, got {type(value).__name__} "
                            f"{_short(value)}")
        return Path(value)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)  # type: ignore[arg-type]
    if unit == "size" and tp in (int, float):
        from iobench.errors import UsageError
        try:
            return parse_size(value, path)
        except UsageError as e:
            raise SpecError(str(e)) from None
    if unit == "duration" and tp in (int, float):
        from iobench.errors import UsageError
        try:
            return parse_duration(value, path)
        except UsageError as e:
            raise SpecError(str(e)) from None
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{path}: expected an integer, got {type(value).__name__} "
                            f"{_short(value)}")
        if abs(value) > MAX_INT:
            raise SpecError(f"{path}: {_short(value)} is out of range (at most 2^63 - 1)")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{path}: expected a number, got {type(value).__name__} "
                            f"{_short(value)}")
        if abs(value) > MAX_INT or not math.isfinite(value):
            raise SpecError(f"{path}: {_short(value)} is not a usable number (finite, at "
                            "most 2^63)")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise SpecError(f"{path}: unsupported field type {_type_name(tp)}")


def from_mapping(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, refusing unknown keys and wrong types."""
    label = path or cls.__name__
    if not isinstance(data, Mapping):
        raise SpecError(f"{label}: expected a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_s = str(key).replace("-", "_")
        kp = f"{path}.{key}" if path else str(key)
        if key_s not in fields:
            raise SpecError(f"{kp}: unknown key{did_you_mean(key_s, list(fields))}")
        f = fields[key_s]
        kwargs[key_s] = _convert(value, hints[key_s], kp, f.metadata.get("unit"))
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        where = f" in {path}" if path else ""
        raise SpecError(f"missing required key {missing[0]!r}{where}; add it to the YAML")
    return cls(**kwargs)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start}); save the YAML as "
                        "UTF-8") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a workload file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}: invalid YAML{where}; fix the syntax") from None


def load(cls: type[T], path: Path, root: str = "") -> T:
    return from_mapping(cls, load_yaml(path), root or path.stem)


def override(spec: T, **flags: Any) -> T:
    """Return a copy of `spec` with every non-None flag applied (flags beat YAML)."""
    changes = {k: v for k, v in flags.items() if v is not None}
    return dataclasses.replace(spec, **changes) if changes else spec  # type: ignore[type-var]


def to_dict(spec: Any) -> dict[str, Any]:
    return dataclasses.asdict(spec)
