"""Every Python package of iobench is listed for the wheel (an installed iobench has them
all, not only an editable checkout)."""

from pathlib import Path

import tomllib

import iobench

ROOT = Path(iobench.__file__).parent


def test_every_package_is_in_pyproject():
    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT.parent).parts)
             for p in ROOT.rglob("__init__.py")}
    assert sorted(found - listed) == []
    stale = {p for p in listed - found if not p.startswith("iobench.presets")}
    assert sorted(stale) == []
