"""Two real `fio --server` daemons on 127.0.0.1 (free ports), killed with their whole
process group afterwards, and a hosts file naming them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iobench.engines import fio_hosts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A fio server on a free loopback port, once it accepts connections."""
    for _ in range(5):  # a port taken between free_port() and fio's bind: try another
        port = free_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(["fio", f"--server=ip:127.0.0.1,{port}"],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        server = fio_hosts.parse_address(f"127.0.0.1,{port}")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None:
            if fio_hosts.unreachable(server, 0.5) is None:
                return proc, port
            time.sleep(0.05)
        stop_server(proc)
    raise RuntimeError(f"no fio server started; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    # the server forks a child per connection and per job: end its whole group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=3)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # jobs still running after the parent left


@pytest.fixture(scope="module")
def fio_server_procs(tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    """Two fio servers on 127.0.0.1: (process, port) each."""
    if shutil.which("fio") is None:
        pytest.skip("fio is not installed (CI installs it: make test runs apt-get)")
    log = tmp_path_factory.mktemp("fio-servers") / "servers.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        out = []
        for _ in range(2):
            proc, port = start_server(log)
            procs.append(proc)
            out.append((proc, port))
        yield out
    finally:
        for proc in procs:
            stop_server(proc)


@pytest.fixture
def fio_servers(fio_server_procs: list[tuple[subprocess.Popen[bytes], int]]) -> list[int]:
    """Ports of the two fio servers."""
    return [port for _, port in fio_server_procs]


@pytest.fixture
def hostfile(tmp_path: Path, fio_servers: list[int]) -> Path:
    p = tmp_path / "hosts.txt"
    # both spellings fio accepts, a comment and a blank line
    p.write_text(f"# fio servers\n127.0.0.1,{fio_servers[0]}\n\nip:127.0.0.1,"
                 f"{fio_servers[1]}  # second\n")
    return p
