"""One rank of `mpirun -np 2` gets SIGTERM or SIGKILL in the middle of train, checkpoint or
io: the job ends within a bound (no deadlock), rank 0's result is failed and names the
rank, and no process of the job (ranks, checkpoint writers) is left. The signal is sent at
a readiness point (the provisional result, then I/O or a finished phase), never after a
fixed sleep."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iobench.engines.proctree import descendants

from .conftest import mpi_env

BOUND_S = 30  # a generous bound on the exit (a deadlock never ends), not a performance claim
MiB = 2**20


def _alive(pids: list[int]) -> list[int]:
    out = []
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            out.append(p)
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in env.split(b"\0"):
        if item.startswith(b"OMPI_COMM_WORLD_RANK="):
            return int(item.split(b"=", 1)[1])
    return None


def _io(pids: list[int], key: str) -> int:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                k, v = line.split(":")
                if k == key:
                    total += int(v)
        except OSError:
            continue
    return total


def _wait(cond, proc, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"mpirun exited ({proc.returncode}) before {what}: {err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _ended_failed_naming_rank_1(proc, err: str, res: Path, job: list[int]) -> None:
    """mpirun failed without a traceback; one result, failed, naming rank 1; within 10 s
    no process of the job is left."""
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-3000:]
    files = list(res.glob("*/result.json"))
    assert len(files) == 1, files
    d = json.loads(files[0].read_text())
    assert d["status"]["state"] == "failed", d["status"]
    assert "rank 1" in d["status"]["reason"], (d["status"]["reason"], err[-2000:])
    deadline = time.monotonic() + 10
    while _alive(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(job)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpifault")
    p = subprocess.run([sys.executable, "-m", "iobench", "datagen", "tiny", "--target",
                        str(root / "t"), "--results-dir", str(root / "dg"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return root / "t"


def _args(workload: str, tmp: Path, data: Path | None) -> list[str]:
    if workload == "train":
        return ["train", "tiny", "--epochs", "100000", "--accelerators", "2",
                "--compute-time", "0.001", "--cache", "allow", "--target", str(data)]
    if workload == "checkpoint":
        return ["checkpoint", "tiny", "--count", "100000", "--keep", "2", "--no-read",
                "--cache", "allow", "--target", str(tmp / "t")]
    return ["io", "randread", "--size", "4MiB", "-b", "4k", "--runtime", "600s",
            "--cache", "allow", "--target", str(tmp / "t")]


@pytest.mark.mpi
@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"),
                                 pytest.param(signal.SIGKILL, id="SIGKILL")])
@pytest.mark.parametrize("workload", [
    "train",
    # rank 0 writes the reason naming the rank before it stops its rank processes
    # (runner.note_fault), so mpirun's SIGKILL a moment later cannot leave it unnamed
    "checkpoint",
    "io",
])
def test_a_signalled_rank_ends_the_job_with_a_failed_result_naming_it(
        mpirun, tmp_path, request, workload, sig):
    data = request.getfixturevalue("tiny_data") if workload == "train" else None
    res = tmp_path / "r"
    phases = tmp_path / "phases.log"
    env = dict(mpi_env(), IOBENCH_PHASE_LOG=str(phases))
    cmd = ["mpirun", "-np", "2", "--oversubscribe", sys.executable, "-m", "iobench",
           *_args(workload, tmp_path, data), "--results-dir", str(res)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    seen: list[int] = []
    try:
        _check_fault(proc, res, phases, workload, sig, seen)
    finally:  # whatever failed, leave nothing running (by pid: only this job's processes)
        for p in _alive([*seen, *descendants(proc.pid)]):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.communicate()


def _check_fault(proc: subprocess.Popen, res: Path, phases: Path, workload: str, sig: int,
                 seen: list[int]) -> None:
    _wait(lambda: bool(list(res.glob("*/result.json"))), proc, "the provisional result")
    if workload == "checkpoint":  # a checkpoint written: the writers are busy
        _wait(lambda: phases.exists() and phases.read_text().count("\n") >= 2, proc,
              "a finished checkpoint")
    else:  # bytes read by the ranks: the measured phase is under way
        base = _io(descendants(proc.pid), "rchar")
        need = 12 * MiB if workload == "train" else 4 * MiB
        _wait(lambda: _io(descendants(proc.pid), "rchar") - base >= need, proc, "reads")
    job = descendants(proc.pid)
    seen += job
    victims = [p for p in job if _rank_of(p) == 1 and p != proc.pid]
    assert victims, "rank 1 not found"
    victim = min(victims)  # the rank itself, not its checkpoint writer (a later child)
    os.kill(victim, sig)
    try:
        out, err = proc.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        for p in _alive(descendants(proc.pid)):
            os.kill(p, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"mpirun -np 2 {workload}: still running {BOUND_S} s after "
                    f"{signal.Signals(sig).name} to rank 1 (deadlock)")
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-3000:]
    files = list(res.glob("*/result.json"))
    assert len(files) == 1, files
    d = json.loads(files[0].read_text())
    assert d["status"]["state"] == "failed", d["status"]
    # nothing of the job is left: ranks, checkpoint writer processes
    deadline = time.monotonic() + 10
    while _alive(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(job), [Path(f"/proc/{p}/cmdline").read_bytes()[:100]
                             for p in _alive(job)]
    assert "rank 1" in d["status"]["reason"], (d["status"]["reason"], err[-3000:])
    if workload != "io":  # train's finished epochs, checkpoint's finished writes
        assert d["phases"], "phases finished before the fault are kept"


@pytest.mark.mpi
def test_a_rank_killed_at_the_start_still_leaves_a_failed_result_naming_it(mpirun, tmp_path):
    """SIGKILL of rank 1 as soon as the provisional result exists: it is written before the
    first collective (the ranks' check-in, the target's preparation), so rank 0 has a
    result to rewrite, and names the rank whether it died before checking in or after."""
    res = tmp_path / "r"
    cmd = ["mpirun", "-np", "2", "--oversubscribe", sys.executable, "-m", "iobench",
           *_args("io", tmp_path, None), "--results-dir", str(res)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpi_env())
    seen: list[int] = []
    try:
        _wait(lambda: bool(list(res.glob("*/result.json"))), proc, "the provisional result")
        victims: list[int] = []

        def rank1() -> bool:
            victims[:] = [p for p in descendants(proc.pid) if _rank_of(p) == 1]
            return bool(victims)

        _wait(rank1, proc, "rank 1's process")
        job = descendants(proc.pid)
        seen += job
        os.kill(min(victims), signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mpirun -np 2 io: still running {BOUND_S} s after SIGKILL of rank 1 "
                        "at the start (deadlock)")
        _ended_failed_naming_rank_1(proc, err, res, job)
    finally:
        for p in _alive([*seen, *descendants(proc.pid)]):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.communicate()


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["hangs", "dies"])
def test_a_rank_that_never_checks_in_is_named(mpirun, tmp_path, how):
    """Rank 1 of the job is not iobench at all (mpirun's MPMD form): a process that joins
    MPI and then hangs or dies without ever checking in. Rank 0 must end (its check-in wait
    is bounded by IOBENCH_MPI_TIMEOUT, or mpirun ends it when rank 1 dies) with a failed
    result that names rank 1, and leave no process."""
    res = tmp_path / "r"
    peer = ("from mpi4py import MPI; import time; MPI.COMM_WORLD.Get_rank(); "
            + ("time.sleep(3600)" if how == "hangs" else "import os; os._exit(3)"))
    cmd = ["mpirun", "--oversubscribe", "-np", "1", sys.executable, "-m", "iobench",
           *_args("io", tmp_path, None), "--results-dir", str(res), ":",
           "-np", "1", sys.executable, "-c", peer]
    env = {**mpi_env(), "IOBENCH_MPI_TIMEOUT": "5"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    seen: list[int] = []
    try:
        _wait(lambda: bool(list(res.glob("*/result.json"))), proc, "the provisional result")
        seen += descendants(proc.pid)
        try:
            out, err = proc.communicate(timeout=BOUND_S + 5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mpirun: still running {BOUND_S + 5} s with rank 1 never checking in")
        _ended_failed_naming_rank_1(proc, err, res, seen)
    finally:
        for p in _alive([*seen, *descendants(proc.pid)]):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
