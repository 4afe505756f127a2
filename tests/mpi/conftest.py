"""Helpers to run iobench under real mpirun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    if os.geteuid() == 0:  # CI and containers run as root; OpenMPI refuses without these
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    env.pop("IOBENCH_NO_MPI", None)
    return env


@pytest.fixture
def mpirun():
    if shutil.which("mpirun") is None:
        pytest.skip("OpenMPI is not installed (CI installs openmpi-bin: make test runs apt-get)")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install 'iobench[mpi]')")

    def run(np: int, args: list[str], timeout: float = 120, check: bool = True):
        cmd = ["mpirun", "-np", str(np), "--oversubscribe", sys.executable, "-m", "iobench",
               *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=mpi_env())
        if check:
            assert p.returncode == 0, p.stdout + p.stderr
        return p

    return run


def single(args: list[str]) -> dict:
    p = subprocess.run([sys.executable, "-m", "iobench", *args, "--json"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def only_result(results_dir: Path) -> dict:
    files = list(results_dir.glob("*/result.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())
