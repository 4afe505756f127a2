"""Shared fixtures: a CLI runner, and a results dir per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def have_fio() -> None:
    if shutil.which("fio") is None:
        pytest.skip("fio is not installed (CI installs it: make test runs apt-get)")


# --- tiers -----------------------------------------------------------------------------
# Every test gets exactly one tier marker, from what it uses, so `make test-fast` can run
# the first tier alone:
#   unit         no disk, no subprocess, no tool (pure functions, golden files read-only)
#   functional   real files in tmp_path, the CLI in-process (CliRunner)
#   integration  real fio, mpirun, a browser, or a child process of iobench
_INTEGRATION_MARKS = ("fio", "mpi", "browser", "integration")
_FUNCTIONAL_FIXTURES = ("tmp_path", "tmp_path_factory", "runner", "tmpdir")


def _vm_flags(addr: int) -> list[str]:
    """The VmFlags of this process's mapping that holds `addr` (/proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {addr:#x}")


@pytest.fixture
def vm_flags() -> Callable[[int], list[str]]:
    """vm_flags(addr): the kernel's flags of the mapping holding addr ('hg': advised
    MADV_HUGEPAGE)."""
    return _vm_flags


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = {m.name for m in item.iter_markers()}
        fixtures = set(getattr(item, "fixturenames", ()))
        if names & set(_INTEGRATION_MARKS) or "have_fio" in fixtures:
            item.add_marker(pytest.mark.tier_integration)
        elif fixtures & set(_FUNCTIONAL_FIXTURES):
            item.add_marker(pytest.mark.tier_functional)
        else:
            item.add_marker(pytest.mark.tier_unit)


# Some tests run the CLI with a relative --target from inside a tmp directory (the fuzz,
# the relative-target tests); a run that ends with the process's working directory gone
# must not make every later test (and every subprocess it starts) fail in os.getcwd().
_START_CWD = os.getcwd()


@pytest.fixture(autouse=True)
def _working_directory_exists() -> Iterator[None]:
    try:
        os.getcwd()
    except FileNotFoundError:
        os.chdir(_START_CWD)
    yield
    try:
        os.getcwd()
    except FileNotFoundError:
        os.chdir(_START_CWD)
