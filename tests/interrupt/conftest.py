"""Running iobench as a real process and signalling it at a readiness point (never after a
fixed sleep): the provisional result file, a line in IOBENCH_PHASE_LOG, bytes moved (from
/proc/PID/io of the process tree), or the signal handlers being installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from iobench.engines.proctree import descendants

WAIT_S = 120.0  # generous: the machine is shared and loaded
_SPAWNED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> object:
    """A test that fails (or times out) half-way must not leave its iobench running:
    a `--runtime 600s` writer orphaned by a failed test loaded the machine for ten
    minutes. Whatever `spawn` started and is still running at teardown is killed, with
    its process tree."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            for pid in descendants(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            proc.communicate()


def _die_with_pytest() -> None:
    """In the child, before exec: SIGKILL when pytest dies (PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)


def spawn(args: Sequence[str], tmp: Path, env: dict[str, str] | None = None,
          cmd: Sequence[str] | None = None) -> subprocess.Popen[str]:
    e = dict(os.environ, IOBENCH_PHASE_LOG=str(tmp / "phases.log"), **(env or {}))
    proc = subprocess.Popen([*(cmd or [sys.executable, "-m", "iobench"]), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                            preexec_fn=_die_with_pytest)
    _SPAWNED.append(proc)
    return proc


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], what: str,
             timeout: float = WAIT_S) -> None:
    """Poll `cond` until it holds; fail (with the process's output) if it exits first."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited ({proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def results(results_dir: Path) -> list[Path]:
    return sorted(p for p in results_dir.glob("**/result.json") if "steps" not in p.parts)


def provisional(results_dir: Path) -> Callable[[], bool]:
    return lambda: bool(results(results_dir))


def phase_lines(tmp: Path, n: int = 1) -> Callable[[], bool]:
    log = tmp / "phases.log"

    def cond() -> bool:
        try:
            return len(log.read_text().splitlines()) >= n
        except OSError:
            return False

    return cond


def tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/PID/task/TID/children)."""
    return descendants(pid)


def io_bytes(pid: int, key: str) -> int:
    """rchar or wchar summed over the process tree."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/io") as f:
                for line in f:
                    k, v = line.split(":")
                    if k == key:
                        total += int(v)
        except OSError:
            continue
    return total


def moved(proc: subprocess.Popen[str], key: str, nbytes: int) -> Callable[[], bool]:
    """True once the tree has read (rchar) or written (wchar) nbytes more than now."""
    base = io_bytes(proc.pid, key)
    return lambda: io_bytes(proc.pid, key) - base >= nbytes


def handlers_installed(proc: subprocess.Popen[str]) -> Callable[[], bool]:
    """iobench's handlers are in place once SIGTERM is caught (SigCgt in /proc status)."""
    def cond() -> bool:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
        except OSError:
            pass
        return False

    return cond


def finish(proc: subprocess.Popen[str], timeout: float = WAIT_S) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def load_result(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")  # a corrupt file fails here (not UTF-8) ...
    return json.loads(text)  # ... or here (not JSON)


def alive(pids: Sequence[int]) -> list[int]:
    """Those of pids still running (zombies count as gone)."""
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


# --- fixtures --------------------------------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture
def busy_cpus():
    """Two processes spinning on the CPUs for the test's duration (killed by pid after)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """The tiny training data set, generated once."""
    root = tmp_path_factory.mktemp("intr-ds")
    p = subprocess.run([sys.executable, "-m", "iobench", "datagen", "tiny", "--target",
                        str(root / "t"), "--results-dir", str(root / "r"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return root / "t"


# a model of ~17 M parameters (~34 MiB in bf16): enough cells that a signal sent when the
# first cell ends lands while later ones run
ARCH_YAML = """name: intr-arch
description: interruption tests
vocab_size: 1024
hidden_size: 512
intermediate_size: 2048
num_hidden_layers: 4
num_attention_heads: 8
num_key_value_heads: 4
max_position_embeddings: 2048
tie_word_embeddings: false
"""
MODEL_YAML = """name: intr
description: interruption tests
model: {arch}
shard_size: 8MiB
"""

SUITE_YAML = """name: intr
description: one long step, for the interruption tests
steps:
  - command: io seqwrite
    id: write
    params: {size: 16MiB, block-size: 64k, runtime: 600s, cache: allow}
"""


@pytest.fixture(scope="session")
def specs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("intr-specs")
    (root / "intr-arch.yaml").write_text(ARCH_YAML)
    (root / "model.yaml").write_text(MODEL_YAML.format(arch=root / "intr-arch.yaml"))
    (root / "suite.yaml").write_text(SUITE_YAML)
    return {"model": root / "model.yaml", "suite": root / "suite.yaml"}
