"""Find workload YAML by name: the repo's workloads/ (shipped in the wheel as
iobench.presets) or an explicit path to a YAML file."""

from __future__ import annotations

from pathlib import Path

from iobench.errors import SpecError, did_you_mean


def presets_root() -> Path:
    """The workloads/ directory: next to the package in a checkout, else in the wheel."""
    here = Path(__file__).resolve().parent
    repo = here.parent / "workloads"
    if repo.is_dir():
        return repo
    # installed wheel: the YAML sits in iobench/presets/, a directory without __init__.py
    # that importlib cannot open as a package because the module presets.py shadows it
    wheel = here / "presets"
    if wheel.is_dir():
        return wheel
    import importlib.resources

    return Path(str(importlib.resources.files("iobench.presets")))


def names(kind: str) -> list[str]:
    d = presets_root() / kind
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def find(kind: str, name_or_path: str) -> Path:
    """Resolve a preset name under workloads/<kind>/ or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not p.is_file():
            raise SpecError(f"{name_or_path}: no such workload file; give a preset name "
                            f"({', '.join(names(kind))}) or a path to a YAML file")
        return p
    candidate = presets_root() / kind / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    hint = did_you_mean(name_or_path, names(kind))
    raise SpecError(f"unknown {kind} preset {name_or_path!r}{hint}")
