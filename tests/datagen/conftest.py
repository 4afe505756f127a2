"""Helpers for datagen tests: small workload YAML files and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from iobench.cli import cli


def write_spec(directory: Path, name: str, fmt: str, **extra: object) -> Path:
    lines = [f"name: {name}", f"format: {fmt}"]
    if fmt == "indexed":
        extra.setdefault("seq_len", 1000)
    else:
        extra.setdefault("record_size", "100KiB")
        extra.setdefault("record_size_stdev", "30KiB")
    extra.setdefault("samples_per_file", 3)
    extra.setdefault("files", 2)
    for k, v in extra.items():
        lines.append(f"{k}: {v}")
    p = directory / f"{name}.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture(scope="session")
def spec_file():
    return write_spec


@pytest.fixture
def run(tmp_path: Path):
    def _run(*args: str) -> Result:
        return CliRunner().invoke(
            cli, ["datagen", *args, "--results-dir", str(tmp_path / "results")],
            catch_exceptions=False)
    return _run
