"""`client_limited` under real CPU contention (issue 13): other processes saturating the
cores make a run client-limited even though its own CPU share looks modest, and the
verdict says why (the host's /proc/stat window and run queue, not only this run's CPU)."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from iobench.cli import cli

SPIN = "import sys\nprint('ready', flush=True)\nwhile True:\n    pass\n"


def test_other_processes_taking_the_cpu_make_the_run_client_limited(tmp_path):
    spec = tmp_path / "cl.yaml"
    spec.write_text("name: cl\nformat: raw\nrecord_size: 24KiB\nsamples_per_file: 16\n"
                    "files: 48\nbatch_size: 2\nread_threads: 2\nau_threshold_pct: 80\n")
    target = tmp_path / "t"
    r = CliRunner().invoke(cli, ["datagen", str(spec), "--target", str(target),
                                 "--results-dir", str(tmp_path / "dg")])
    assert r.exit_code == 0, r.output
    n = 2 * (os.cpu_count() or 1) + 1  # more runnable spinners than cores
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE,
                                 text=True) for _ in range(n)]
    try:
        for p in spinners:  # every spinner is running before the run starts
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        r = CliRunner().invoke(cli, ["train", str(spec), "--target", str(target),
                                     "--results-dir", str(tmp_path / "res"), "--epochs", "3",
                                     "--cache", "allow", "--compute-time", "0", "--json"])
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    train = next(p for p in d["phases"] if p["name"] == "train")
    m = train["metrics"]
    why = m["client_limited_why"]
    assert m["client_limited"] is True, why
    # judged from the host, not only from this run's own share of the cores
    assert m["host_cpu"]["host_busy_pct"] >= 50.0, m["host_cpu"]
    assert ("host's cores were" in why) or ("this run kept" in why), why
