"""A relative --target (as `make run`'s ./iobench-scratch) from another working directory:
fio gets absolute paths, so every engine measures the files inside the target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from iobench.cli import cli

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")


def _run(*args: object) -> dict:
    res = CliRunner().invoke(cli, [*map(str, args), "--json", "--results-dir", "res"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _no_nested(root: Path) -> None:
    nested = [p for p in root.rglob("*") if "iobench-scratch" in p.relative_to(root).parts]
    assert not nested, nested


@pytest.mark.parametrize("pattern", ["seqwrite", "seqread"])
def test_io_fio_relative_target(elsewhere: Path, pattern: str) -> None:
    r = _run("io", pattern, "--target", "./iobench-scratch", "--engine", "fio",
             "--size", "256k", "--block-size", "64k", "--cache", "allow")
    target = elsewhere / "iobench-scratch"
    assert r["phases"][0]["bytes"] == 256 * 1024
    assert [Path(f) for f in r["spec"]["files"]] == [target / "io" / "job0.dat"]
    assert (target / "io" / "job0.dat").stat().st_size == 256 * 1024
    _no_nested(target)


def test_infer_randread_fio_relative_target(elsewhere: Path) -> None:
    r = _run("infer", "randread", "--target", "iobench-scratch", "--engine", "fio",
             "--file-size", "1m", "--files", 1, "--block-size", "4k", "--queue-depth", 1,
             "--runtime", "0.3s", "--cache", "allow")
    target = elsewhere / "iobench-scratch"
    assert r["phases"]
    assert sum(p["bytes"] for p in r["phases"]) > 0
    _no_nested(target)


def test_checkpoint_fio_relative_target(elsewhere: Path) -> None:
    r = _run("checkpoint", "tiny", "--target", "iobench-scratch", "--engine", "fio",
             "--count", 1, "--no-space-check")
    assert any(p["direction"] == "write" and p["bytes"] > 0 for p in r["phases"])
    _no_nested(elsewhere / "iobench-scratch")


def test_train_fio_relative_target(elsewhere: Path) -> None:
    res = CliRunner().invoke(cli, ["datagen", "tiny", "--target", "iobench-scratch",
                                   "--jobs", "1", "--results-dir", "res"])
    assert res.exit_code == 0, res.output
    r = _run("train", "tiny", "--target", "iobench-scratch", "--engine", "fio",
             "--epochs", 1)
    assert any(p.get("engine") == "fio" and p["bytes"] > 0 for p in r["phases"])
    _no_nested(elsewhere / "iobench-scratch")
