"""The arena every containment trap runs in: a target beside canary files outside it.

`Arena.check()` asserts that every canary's content, mode and mtime are unchanged and
that nothing new appeared outside the target (the results directory aside)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from iobench.cli import cli


class Arena:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.target = base / "t"
        self.results = base / "res"
        self.inputs = base / "in"  # job files and YAML the test writes: not watched
        self.inputs.mkdir()
        self.outside = base / "outside"
        self.outside.mkdir()
        (self.outside / "canary.txt").write_text("precious data\n")
        (self.outside / "canary.txt").chmod(0o640)
        sub = self.outside / "dir"
        sub.mkdir()
        (sub / "inner.txt").write_text("more precious data\n")
        (sub / "job0.dat").write_text("not iobench's\n")
        self.canary = self.outside / "canary.txt"
        self.snapshot = self._state()

    def _state(self) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for dirpath, dirnames, filenames in os.walk(self.base, followlinks=False):
            d = Path(dirpath)
            rel_d = d.relative_to(self.base)
            if rel_d.parts and rel_d.parts[0] in ("t", "res", "in"):
                dirnames[:] = []
                continue
            for n in dirnames + filenames:
                p = d / n
                rel = str(p.relative_to(self.base))
                if rel in ("t", "res", "in"):
                    continue
                st = p.lstat()
                content = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
                out[rel] = (content, st.st_mode, st.st_mtime_ns, st.st_nlink)
        return out

    def check(self) -> None:
        now = self._state()
        assert set(now) == set(self.snapshot), (
            f"entries outside the target changed: new {sorted(set(now) - set(self.snapshot))}"
            f", gone {sorted(set(self.snapshot) - set(now))}")
        for rel, (content, mode, mtime, _) in self.snapshot.items():
            c2, m2, t2, _ = now[rel]
            assert c2 == content, f"{rel}: content changed"
            assert m2 == mode, f"{rel}: mode changed"
            assert t2 == mtime, f"{rel}: mtime changed"

    def run(self, *args: object) -> Result:
        argv = [str(a) for a in args]
        if argv and argv[0] not in ("clean", "report", "compare", "sysinfo"):
            argv += ["--results-dir", str(self.results)]
        return CliRunner().invoke(cli, argv)


def refused(res: Result, *needles: str) -> None:
    """Exit 2, one `error:` line (naming what it should), no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture
def arena(tmp_path: Path) -> Arena:
    return Arena(tmp_path)
