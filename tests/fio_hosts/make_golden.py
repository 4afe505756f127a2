"""Regenerates tests/fio_hosts/data/ with real fio (3.33 here): two `fio --server` on
127.0.0.1, iobench's own per-client job files (2 jobs each), the raw --output file kept.
The tests hold numbers read off these files; regenerate only together with the tests.

Run: .venv/bin/python tests/fio_hosts/make_golden.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import start_server, stop_server  # noqa: E402

from iobench.engines import IOSpec, fio_hosts  # noqa: E402

DATA = Path(__file__).parent / "data"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="iobench-golden-hosts."))
    procs = []
    try:
        ports = []
        for _ in range(2):
            proc, port = start_server(work / "servers.log")
            procs.append(proc)
            ports.append(port)
        # fixed ports in the golden file, whatever ports the servers got
        servers = [fio_hosts.parse_address(f"127.0.0.1,{p}") for p in ports]
        spec = IOSpec(pattern="randread", size=1 << 20, block_size=4096, jobs=2)
        texts = fio_hosts.jobfiles(spec, 2, work / "io", "drop")
        cmd = ["fio", "--output-format=json+", f"--output={work / 'out.json'}"]
        for i, (s, text) in enumerate(zip(servers, texts, strict=True)):
            (work / f"h{i}.fio").write_text(text)
            cmd += [f"--client={s.address}", str(work / f"h{i}.fio")]
        subprocess.run(cmd, check=True, cwd=work)
        text = (work / "out.json").read_text()
        for i, p in enumerate(ports):
            text = text.replace(f'"port" : {p}', f'"port" : {18801 + i}')
        text = text.replace(str(work), "/tmp/golden")
        (DATA / "clients-2x2-randread.jsonplus.json").write_text(text)
    finally:
        for proc in procs:
            stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
