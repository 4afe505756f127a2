"""Under mpirun, when a rank dies, mpirun SIGTERMs the others and SIGKILLs them one second
later (OpenMPI 4's odls_base_sigkill_timeout, 1 s: SIGCONT, the timeout, SIGTERM, the
timeout, SIGKILL). Rank 0's body may take longer than that to
act on the SIGTERM (its workers finish their step first), so the reason naming the dead
rank must be in the result file from the signal handler itself, not from the body's
clean-up: on a loaded machine the clean-up came after the SIGKILL and the result still
said "did not finish".

Here rank 0's body deliberately holds the signal (a shield, as a body waiting for its
workers does) and reads its own result file while it holds it: the reason must already
name rank 1 then. mpirun is given a 5 s grace (its SIGTERM comes 5 s after the death,
its SIGKILL 5 s after that) so the check itself is not raced."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import mpi_env

_PROG = textwrap.dedent("""
    import json, os, signal, sys, time
    from pathlib import Path
    from iobench import dist, interrupt, runner
    from iobench.kinds.base import Ctx, RunOptions
    from iobench.results import Recorder

    out = Path(sys.argv[1])
    w = dist.world()
    interrupt.install()

    def body(rec):
        if w.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        with interrupt.shield():  # holds the signal, as a body waiting for its workers
            deadline = time.monotonic() + 120
            while interrupt.pending() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # mpirun's SIGTERM after rank 1 died
            seen = json.loads((rec.run_dir / "result.json").read_text())["status"]
            (out / "seen.json").write_text(json.dumps(
                {"signalled": interrupt.pending() is not None, "status": seen}))
            interrupt.take()
        raise interrupt.Terminated()

    rec = Recorder(kind="io", name="reason-at-once", spec={})
    runner.run(rec, body, RunOptions(target=out / "t", results_dir=out / "r"),
               Ctx(world=w))
""")


@pytest.mark.mpi
def test_the_dead_rank_is_named_before_the_body_acts_on_the_signal(mpirun, tmp_path: Path):
    (tmp_path / "t").mkdir()
    cmd = ["mpirun", "-np", "2", "--oversubscribe", "--mca", "odls_base_sigkill_timeout",
           "5", sys.executable, "-c", _PROG, str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=mpi_env())
    seen_file = tmp_path / "seen.json"
    assert seen_file.exists(), (p.returncode, p.stderr[-3000:])
    seen = json.loads(seen_file.read_text())
    assert seen["signalled"], "rank 0 never got mpirun's SIGTERM"
    assert seen["status"]["state"] == "failed", seen
    assert "rank 1" in seen["status"]["reason"], seen
    final = json.loads(next((tmp_path / "r").glob("*/result.json")).read_text())
    assert "rank 1" in final["status"]["reason"], final["status"]
