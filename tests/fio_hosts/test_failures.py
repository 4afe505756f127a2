"""A server lost during the run, through the CLI with a stand-in fio that replays the
golden client_stats without one client: exit 1, failed result, the other client kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iobench.cli import cli
from iobench.results import load

GOLDEN = Path(__file__).parent / "data" / "clients-2x2-randread.jsonplus.json"

FAKE = """#!{python}
import os, sys
out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--output="))
jobs = [open(a).read() for a in sys.argv[1:] if a.endswith(".fio")]
if any("create_only=1" in j for j in jobs):  # the layout pass succeeds
    open(out, "w").write('{{"client_stats": []}}')
    sys.exit(0)
with open(out, "w") as f:
    f.write(open(os.environ["FAKE_FIO_JSON"]).read())
print("fio: client 127.0.0.1, timeout on cmd SEND_ETA")
sys.exit(int(os.environ["FAKE_FIO_RC"]))
"""


@pytest.fixture
def fake_fio(tmp_path, monkeypatch):
    """`fio` on PATH replays client 0's half of the golden output, exits FAKE_FIO_RC."""
    doc = json.loads(GOLDEN.read_text()[GOLDEN.read_text().index("\n{") + 1:])
    doc["client_stats"] = [j for j in doc["client_stats"] if j["jobname"].startswith("h0.")]
    (tmp_path / "half.json").write_text(json.dumps(doc))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "fio"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FIO_JSON", str(tmp_path / "half.json"))
    return monkeypatch


@pytest.mark.fio
@pytest.mark.parametrize("rc", [1, 0])
def test_lost_server_fails_and_keeps_the_others(runner, tmp_path, hostfile, fio_servers,
                                                fake_fio, rc):
    # fio exits 1 when a server stops answering mid-run, 0 when one refused at the start
    fake_fio.setenv("FAKE_FIO_RC", str(rc))
    res = runner.invoke(cli, ["io", "randread", "--engine", "fio", "--fio-hosts",
                              str(hostfile), "--target", str(tmp_path / "t"), "--results-dir",
                              str(tmp_path / "r"), "--size", "1m", "-b", "4k", "--jobs", "2"])
    assert res.exit_code == 1, res.output
    (saved,) = (tmp_path / "r").glob("*/result.json")
    r = load(saved)
    assert r.status == "failed"
    if rc:
        assert "fio client failed (exit 1)" in r.reason
        assert "timeout on cmd SEND_ETA" in r.reason
    else:
        assert f"fio server(s) ip:127.0.0.1,{fio_servers[1]} (line 4) reported no " \
               "results" in r.reason
    assert [p["name"] for p in r.phases] == ["randread", f"randread@127.0.0.1:{fio_servers[0]}"]
    assert r.phases[0]["bytes"] == 2 * 1048576  # client 0's two jobs in the golden file
    assert r.phases[0]["metrics"]["clients"] == 1


def server_rchar(pid: int) -> int:
    """Bytes read so far by a fio server's process tree (/proc/PID/io rchar)."""
    from iobench.engines.proctree import descendants

    total = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                if line.startswith("rchar:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def live_processes(pgid: int) -> list[str]:
    """Processes of a process group that are not zombies (fio server + its jobs)."""
    out = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True,
                         text=True, check=False).stdout
    return [ln for ln in out.splitlines() if ln.split() and not ln.split()[1].startswith("Z")]


def measuring(parent: int) -> bool:
    """Whether iobench's fio client runs the timed job files (not create_only=1)."""
    out = subprocess.run(["ps", "-ww", "-o", "args=", "--ppid", str(parent)], capture_output=True,
                         text=True, check=False).stdout
    jobs = [a for ln in out.splitlines() for a in ln.split() if a.endswith("h0.fio")]
    try:
        return bool(jobs) and "create_only" not in Path(jobs[0]).read_text()
    except OSError:
        return False


@pytest.mark.fio
def test_sigterm_stops_every_server_and_keeps_a_partial_result(tmp_path, hostfile,
                                                               fio_server_procs):
    proc = subprocess.Popen(
        [sys.executable, "-m", "iobench", "io", "randread", "--engine", "fio", "--fio-hosts",
         str(hostfile), "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r"),
         "--size", "1m", "-b", "4k", "--runtime", "20s", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # wait until the measured run (not the layout pass) has its jobs reading on both
    # servers (bytes in /proc/PID/io of each server's job processes), never a fixed sleep
    while not measuring(proc.pid):
        assert proc.poll() is None, "never measured"
        assert time.monotonic() < deadline, "never measured"
        time.sleep(0.05)
    base = [server_rchar(p.pid) for p, _ in fio_server_procs]
    while not all(server_rchar(p.pid) - b >= 256 * 1024
                  for (p, _), b in zip(fio_server_procs, base, strict=True)):
        assert proc.poll() is None, "servers never read"
        assert time.monotonic() < deadline, "servers never read"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=15)  # bounded: a hang fails here
    assert rc == 130, proc.stderr.read() if proc.stderr else ""
    (saved,) = (tmp_path / "r").glob("*/result.json")
    r = load(saved)
    assert r.status == "partial"
    assert len(r.phases) == 3
    assert r.phases[0]["bytes"] == r.phases[1]["bytes"] + r.phases[2]["bytes"] > 0
    assert r.phases[0]["seconds"] < 20  # stopped before --runtime 20s
    # each server is back to its idle daemon alone (its connection child leaves ~1 s later)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(len(live_processes(p.pid)) > 1
                                              for p, _ in fio_server_procs):
        time.sleep(0.1)
    assert [len(live_processes(p.pid)) for p, _ in fio_server_procs] == [1, 1]
