"""Shared fixtures: a CLI runner, and a results dir per test."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def have_fio() -> None:
    if shutil.which("fio") is None:
        pytest.skip("fio is not installed (CI installs it: make test runs apt-get)")
