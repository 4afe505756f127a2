"""The fio kind as a library call: a job file run inside the target, declared metrics."""

import pytest

from iobench.errors import UsageError
from iobench.kinds import fio
from iobench.kinds.base import RunOptions

pytestmark = pytest.mark.fio


def test_a_job_file_runs_through_the_api(tmp_path):
    job = tmp_path / "j.fio"
    job.write_text("[w]\nrw=write\nsize=256k\nbs=64k\n\n[r]\nstonewall\nrw=read\n"
                   "size=256k\nbs=64k\nfilename=w.0.0\n")
    r = fio.run(fio.build(job), RunOptions(target=tmp_path / "t",
                                           results_dir=tmp_path / "r"))
    assert r.status == "ok", r.reason
    assert fio.METRICS.check(r) == []
    assert r.metrics["read_bytes"] == 256 << 10
    assert r.metrics["write_bytes"] == 256 << 10


def test_a_missing_job_file_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        fio.build(tmp_path / "nope.fio")
