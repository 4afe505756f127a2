"""The fio engine: job files from IOSpecs, fio as a subprocess, its JSON parsed into phases.

fio runs with `--output-format=json+ --output=FILE --status-interval=1`: the last JSON
document in FILE is the summary; the earlier ones (one a second) give the throughput
timeline; json+ `bins` give each job's latency histogram, merged into ours so percentiles
across jobs are read off the merge, never averaged. Ctrl-C sends SIGINT to fio, which
stops its jobs and still writes its summary, so the partial phases are kept.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from iobench import __version__
from iobench.engines import IOSpec, proctree
from iobench.errors import RunFailed, ToolMissing, UsageError
from iobench.results import make_phase
from iobench.stats import Histogram, Timeline

RW = {"seqread": "read", "seqwrite": "write", "randread": "randread", "randwrite": "randwrite"}
DIRECTIONS = ("read", "write", "trim")
PERCENTILE_LIST = "50:90:99:99.9:99.99"
# fio's percentile keys ("99.900000") -> the results schema's names
_PCT_NAMES = ((50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99_9"), (99.99, "p99_99"))
_LAT_KEYS = ("p50", "p90", "p99", "p99_9", "p99_99", "max", "mean")
TRACK_S = 0.5  # how often the processes fio started are listed while it runs
STOP_GRACE_S = 5.0  # after SIGINT fio writes its summary; SIGKILL if it has not exited by then
TAIL_LINES = 15

INSTALL_HINT = ("fio is not installed; install it with `apt-get install fio` (Debian/Ubuntu), "
                "`dnf install fio` (Fedora/RHEL) or `brew install fio` (macOS), "
                "or use --engine native")


def fio_binary() -> str:
    """Path of the fio executable, or ToolMissing (exit 2) with the install hint."""
    exe = shutil.which("fio")
    if exe is None:
        raise ToolMissing(INSTALL_HINT)
    return exe


def _escape(path: Path | str) -> str:
    # fio splits filename= on ':' (several files per job); a literal colon is '\:'
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def _lanes(spec: IOSpec) -> int:
    """fio jobs per file: psync has one I/O in flight per job, so depth d becomes d jobs
    per file (the native engine's d threads per file); async engines use iodepth."""
    return spec.queue_depth if spec.ioengine == "psync" and spec.queue_depth > 1 else 1


def warnings_for(spec: IOSpec) -> list[str]:
    """What the user should know about how fio will run this spec."""
    out: list[str] = []
    if spec.ioengine == "libaio" and not spec.direct and spec.queue_depth > 1:
        out.append("fio libaio queues I/O only with O_DIRECT (--cache direct); buffered "
                   "libaio submits one I/O at a time, so queue depth has no effect")
    lanes = _lanes(spec)
    if lanes > 1:
        out.append(f"fio psync: queue depth {spec.queue_depth} runs as {lanes} jobs per file, "
                   f"each on its own 1/{lanes} slice of the file")
    return out


def jobfile_for(spec: IOSpec, name: str) -> str:
    """An fio job file for `spec`: one [global] section and one job section per file.

    Each job section names exactly one of `spec.files` (job i -> files[i]), so fio reads and
    writes the same files, in the same sizes, as the native engine. Jobs run concurrently.
    """
    if spec.pattern not in RW:
        raise UsageError(f"pattern {spec.pattern!r}: fio knows seqread, seqwrite, randread, "
                         "randwrite")
    if not spec.files:
        raise UsageError("the fio engine needs the files to use (IOSpec.files is empty)")
    if len(spec.files) != spec.jobs:
        raise UsageError(f"--jobs {spec.jobs} needs {spec.jobs} files, got {len(spec.files)}")
    if spec.ioengine not in ("psync", "libaio", "io_uring"):
        raise UsageError(f"--ioengine {spec.ioengine!r}: use psync, libaio or io_uring")
    if spec.size < spec.block_size:
        raise UsageError(f"--size {spec.size} is smaller than --block-size {spec.block_size}; "
                         "give a larger --size")
    lanes = _lanes(spec)
    depth = 1 if spec.ioengine == "psync" else spec.queue_depth
    lines = [
        f"; iobench {__version__}: {name} ({spec.pattern}), fio engine",
        f"; {spec.jobs} job(s), one file each; run: fio --output-format=json+ JOBFILE",
        "[global]",
        f"rw={RW[spec.pattern]}",
        f"bs={spec.block_size}",
        f"ioengine={spec.ioengine}",
        f"iodepth={depth}",
        f"direct={int(spec.direct)}",
        # iobench applies the cache policy (drop/direct/allow) itself before the run, the
        # same for both engines; fio's default invalidate=1 would drop the cache under it
        "invalidate=0",
        # randrepeat=1 (fio's default) replays the same offsets every run: cache hits
        "randrepeat=0",
        # the native engine writes in place without preallocating; so does fio then
        "fallocate=none",
        # percentiles of the whole I/O time (submission to completion), as native measures
        "lat_percentiles=1",
        f"percentile_list={PERCENTILE_LIST}",
    ]
    if spec.is_write:
        # fresh random bytes for every write: incompressible and never deduplicated
        lines += ["refill_buffers=1", "buffer_compress_percentage=0"]
        if spec.end_fsync:
            lines.append("end_fsync=1")
    if spec.runtime > 0:
        lines += ["time_based=1", f"runtime={max(1, round(spec.runtime * 1000))}ms"]
    if lanes > 1:
        per_lane = spec.size // lanes // spec.block_size * spec.block_size
        if per_lane == 0:
            raise UsageError(f"--size {spec.size} is too small for queue depth {lanes} with "
                             f"psync (one slice of at least {spec.block_size} bytes each)")
        lines += [f"size={per_lane}", f"numjobs={lanes}", f"offset_increment={per_lane}"]
    else:
        lines.append(f"size={spec.size}")
    for i, path in enumerate(spec.files):
        lines += ["", f"[{name}.{i}]", f"filename={_escape(path)}"]
    return "\n".join(lines) + "\n"


def jobfile_for_files(files: Sequence[Path], *, rw: str, block_size: int, jobs: int,
                      direct: bool, ioengine: str = "psync", iodepth: int = 1,
                      end_fsync: bool = False, size_per_file: int | None = None,
                      name: str = "files") -> str:
    """An fio job file that reads or writes an explicit list of files, each whole, one
    after another, the list dealt round-robin over `jobs` concurrent jobs."""
    if rw not in ("read", "write"):
        raise UsageError(f"rw {rw!r}: use read or write")
    if not files:
        raise UsageError("no files to run fio on")
    if rw == "write" and size_per_file is None:
        raise UsageError("writing files with fio needs size_per_file")
    jobs = max(1, min(jobs, len(files)))
    lines = [
        f"; iobench {__version__}: {name}, fio engine, {len(files)} file(s) over {jobs} job(s)",
        "[global]",
        f"rw={rw}", f"bs={block_size}", f"ioengine={ioengine}",
        f"iodepth={1 if ioengine == 'psync' else iodepth}", f"direct={int(direct)}",
        "invalidate=0", "fallocate=none", "file_service_type=sequential",
        "lat_percentiles=1", f"percentile_list={PERCENTILE_LIST}",
    ]
    if size_per_file is not None:
        lines.append(f"filesize={size_per_file}")
    if rw == "write":
        lines += ["refill_buffers=1", "buffer_compress_percentage=0"]
        if end_fsync:
            lines.append("end_fsync=1")
    for j in range(jobs):
        mine = files[j::jobs]
        lines += ["", f"[{name}.{j}]", f"nrfiles={len(mine)}",
                  "filename=" + ":".join(_escape(p) for p in mine)]
        if size_per_file is not None:
            lines.append(f"size={size_per_file * len(mine)}")
    return "\n".join(lines) + "\n"


def exact_size(nbytes: int, max_block: int = 16 << 20) -> tuple[int, int]:
    """(bytes, block size) fio can write exactly: fio writes whole blocks only, so the size
    is rounded up to 4 KiB (1 MiB above `max_block`: < 0.1% of a larger file) and the
    block size is the largest multiple of that unit up to `max_block` that divides it."""
    unit = 4096 if nbytes <= max_block else 1 << 20
    size = max(unit, -(-nbytes // unit) * unit)
    blocks = size // unit
    most = max_block // unit
    best = max(d for d in range(1, min(most, blocks) + 1) if blocks % d == 0)
    return size, best * unit


def jobfile_per_file(entries: Sequence[tuple[str, Path, int]], *, rw: str, direct: bool,
                     block_size: int = 16 << 20, title: str = "files") -> str:
    """An fio job file of one job per (job name, file, bytes), all running at once, each
    file written whole at its own exact size (exact_size) with end_fsync, or read whole
    (a file smaller than `block_size` with a block size that divides it)."""
    if rw not in ("read", "write"):
        raise UsageError(f"rw {rw!r}: use read or write")
    lines = [
        f"; iobench {__version__}: {title}",
        "[global]", f"rw={rw}", f"bs={block_size}", "ioengine=psync", f"direct={int(direct)}",
        "invalidate=0", "fallocate=none", "lat_percentiles=1",
    ]
    if rw == "write":
        lines += ["end_fsync=1", "refill_buffers=1", "buffer_compress_percentage=0"]
    for name, path, nbytes in entries:
        lines += ["", f"[{name}]", f"filename={_escape(path)}"]
        if rw == "write":
            size, bs = exact_size(nbytes, block_size)
            lines += [f"size={size}", f"bs={bs}"]
        else:
            fsize = path.stat().st_size if path.exists() else 0
            if fsize and fsize < block_size:
                lines.append(f"bs={exact_size(fsize, block_size)[1]}")
    return "\n".join(lines) + "\n"


def jobfile_random_files(files: Sequence[Path], *, block_size: int, iodepth: int,
                         runtime_s: float, direct: bool, ioengine: str, file_size: int,
                         name: str) -> str:
    """One fio job, `iodepth` random reads in flight over all `files` for `runtime_s` (as
    iobench.engines.randfiles: a random block of a random file each, no random map)."""
    return "\n".join([
        f"; iobench {__version__}: {name}, fio engine",
        "[global]", "rw=randread", f"bs={block_size}", f"ioengine={ioengine}",
        f"iodepth={iodepth}", f"direct={int(direct)}", "randrepeat=0", "norandommap=1",
        "invalidate=0", "time_based=1", f"runtime={max(1, round(runtime_s * 1000))}ms",
        "file_service_type=random", f"nrfiles={len(files)}", f"filesize={file_size}",
        "lat_percentiles=1", f"percentile_list={PERCENTILE_LIST}",
        "", "[randread]", "filename=" + ":".join(_escape(p) for p in files), "",
    ])


HUGE_TUNABLE = "glibc.malloc.hugetlb=1"  # glibc's: malloc advises its mappings MADV_HUGEPAGE


def huge_buffers_env() -> dict[str, str]:
    """The variables that put fio's buffers on huge pages, kept beside any glibc tunables
    this process already has (glibc 2.35 or later reads it; older ones ignore it)."""
    have = os.environ.get("GLIBC_TUNABLES")
    if not have:
        return {"GLIBC_TUNABLES": HUGE_TUNABLE}
    return {"GLIBC_TUNABLES": have if HUGE_TUNABLE in have else f"{have}:{HUGE_TUNABLE}"}


def jobfile_for_chunks(root: Path, files: Sequence[Path], *, file_bytes: int,
                       chunk_sizes: Mapping[int, int], iodepth: int, runtime_s: float,
                       rwmixread: int = 100, fsync_every: int = 0, ramp_s: float = 0.0,
                       request_chunks: int = 0, huge_buffers: bool = False,
                       name: str = "kvchunks", comment: str = "KV chunks") -> str:
    """fio's job for whole-chunk I/O on a chunk set (one file per chunk, or slab files):
    random chunk-sized requests with `iodepth` in flight, libaio, O_DIRECT, time-based.

    `chunk_sizes` {bytes: I/Os}: one size gives bs=, several give bssplit= with each
    size's share; rwmixread < 100 mixes reads and writes (randrw) as the pattern did;
    fsync_every = N issues an fsync after every N writes (0: none). File names are
    relative to `directory=` (fio caps the length of one option value). ramp_s > 0 adds
    fio's ramp_time: it runs that long first and resets its statistics (latencies, bytes,
    bandwidth) when it ends, so its start-up (faulting in the buffers it never touched
    before its first reads) is left out as a caller's own buffer set-up is; runtime= is
    then measured after the ramp.

    request_chunks = N > 0 replays restore requests of N chunks each instead of a steady
    stream: after every N issued I/Os fio drains what is in flight before it issues more
    (thinktime_blocks=N, thinktime_blocks_type=issue: fio's backend calls io_u_quiesce
    when the count is reached, then thinks for thinktime=1 us), so each request starts in
    a burst of iodepth and ends in a drain, as a restore of N chunks does. No
    thinktime_spin: fio 3.33 subtracts the time it really spun from thinktime, and a spin
    that overshoots (2 us for 1) leaves a negative remainder that it sleeps as a huge one
    (seen here: a job stuck in 2 s sleeps long past its runtime; fixed in fio 3.36).

    huge_buffers: fio's buffers on transparent huge pages, as iobench's chunk buffers of
    2 MiB or more are: iomem_align=2m here, and fio run with glibc's tunable
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (run_chunks sets it: huge_buffers_env), which
    makes malloc advise its large mappings MADV_HUGEPAGE. An O_DIRECT read reaches the
    device as one segment per physically contiguous run of its buffer: on base pages fio's
    reads split by whatever pages it drew (docs/kvcache.md, "Measured figures").
    """
    if not files:
        raise UsageError("no chunk files to run fio on")
    if not chunk_sizes or any(b <= 0 or b % 4096 for b in chunk_sizes):
        raise UsageError(f"chunk sizes {sorted(chunk_sizes)}: O_DIRECT needs multiples of "
                         "4096 bytes")
    if not 0 <= rwmixread <= 100:
        raise UsageError(f"rwmixread {rwmixread}: give 0 to 100")
    if request_chunks < 0:
        raise UsageError(f"request_chunks {request_chunks}: give 0 (a steady stream) or "
                         "the chunks per restore request")
    total = sum(chunk_sizes.values()) or 1
    sizes = sorted(chunk_sizes)
    if len(sizes) == 1:
        bs = [f"bs={sizes[0]}"]
    else:  # fio wants whole percentages summing to 100: the largest share takes the rest
        pct = {b: max(1, round(100 * chunk_sizes[b] / total)) for b in sizes}
        top = max(sizes, key=lambda b: chunk_sizes[b])
        pct[top] += 100 - sum(pct.values())
        bs = ["bssplit=" + ":".join(f"{b}/{pct[b]}" for b in sizes),
              f"blockalign={min(sizes)}"]
    rw = "randread" if rwmixread == 100 else ("randwrite" if rwmixread == 0 else "randrw")
    lines = [f"; iobench {__version__}: {comment}, fio engine",
             *([f"; buffers on huge pages: run as GLIBC_TUNABLES={HUGE_TUNABLE} fio JOBFILE"]
               if huge_buffers else []),
             "[global]", f"rw={rw}", *bs, "ioengine=libaio", f"iodepth={iodepth}",
             "direct=1", *(["iomem_align=2097152"] if huge_buffers else []),
             "randrepeat=0", "norandommap=1", "invalidate=0", "fallocate=none",
             "time_based=1", f"runtime={max(1, round(runtime_s * 1000))}ms",
             "lat_percentiles=1", f"percentile_list={PERCENTILE_LIST}"]
    if ramp_s > 0:
        lines.append(f"ramp_time={max(1, round(ramp_s * 1000))}ms")
    if request_chunks:
        lines += ["thinktime=1", f"thinktime_blocks={request_chunks}",
                  "thinktime_blocks_type=issue"]
    if rw == "randrw":
        lines.append(f"rwmixread={rwmixread}")
    if rwmixread < 100:
        lines += ["refill_buffers=1", "buffer_compress_percentage=0"]
        if fsync_every:
            lines.append(f"fsync={fsync_every}")
    if len(files) > 1:
        lines += ["file_service_type=random", f"nrfiles={len(files)}",
                  f"filesize={file_bytes}"]
    else:
        lines.append(f"size={file_bytes}")
    lines += ["", f"[{name}]", f"directory={_escape(root)}",
              "filename=" + ":".join(_escape(Path(p).relative_to(root)) for p in files), ""]
    return "\n".join(lines)


def run_chunks(root: Path, files: Sequence[Path], *, name: str,
               timeout: float | None = None, **job: Any) -> tuple[list[dict[str, Any]], str]:
    """Run jobfile_for_chunks(root, files, **job) in `root`; (phases, job file). Files
    fio may write are checked first (iobench's own, never a link)."""
    from iobench import safepath

    if job.get("rwmixread", 100) < 100:
        for f in files:
            safepath.check_writable(Path(f))
    text = jobfile_for_chunks(root, files, **job)
    env = huge_buffers_env() if job.get("huge_buffers") else None
    return _run_text(text, root, name, timeout, [], env), text


# --- output ------------------------------------------------------------------------------
def documents(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Split fio's output file into its JSON documents and the other (warning) lines.

    fio writes warnings and errors into the --output file too, before or between the JSON
    documents, and `--status-interval` writes one document per interval.
    """
    dec = json.JSONDecoder()
    docs: list[dict[str, Any]] = []
    notes: list[str] = []
    pos = 0
    n = len(text)
    while pos < n:
        nl = text.find("\n", pos)
        line_end = n if nl < 0 else nl
        if text.startswith("{", pos):
            try:
                doc, end = dec.raw_decode(text, pos)
            except json.JSONDecodeError:
                doc = None
            if isinstance(doc, dict):
                docs.append(doc)
                nl = text.find("\n", end)
                pos = n if nl < 0 else nl + 1
                continue
        line = text[pos:line_end].strip()
        if line:
            notes.append(line)
        pos = line_end + 1
    return docs, notes


def load_output(text: str) -> dict[str, Any]:
    """The final fio JSON document of an output file, with the interval snapshots and the
    non-JSON lines under doc['iobench'] (as run_fio returns it)."""
    docs, notes = documents(text)
    if not docs:
        tail = "; ".join(notes[-TAIL_LINES:]) or "empty output"
        raise RunFailed(f"fio wrote no JSON result: {tail}")
    final = docs[-1]
    final["iobench"] = {"snapshots": [_snapshot(d) for d in docs[:-1]], "notes": notes}
    return final


def _snapshot(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The cumulative bytes and runtime per group and direction of an interval document."""
    snap: dict[str, Any] = {}
    for job in doc.get("jobs") or []:
        g = str(job.get("groupid", 0))
        for d in DIRECTIONS:
            block = job.get(d) or {}
            cur = snap.setdefault(g, {}).setdefault(d, {"io_bytes": 0, "runtime_ms": 0})
            cur["io_bytes"] += int(block.get("io_bytes", 0))
            cur["runtime_ms"] = max(cur["runtime_ms"], int(block.get("runtime", 0)))
    return snap


# --- running -------------------------------------------------------------------------------
def _tail(*texts: str, lines: int = TAIL_LINES) -> str:
    """The lines that explain a failure: fio's own `fio: ...`/error lines when there are
    any (its option help is long), else the last lines; duplicates dropped."""
    seen: dict[str, None] = {}
    for t in texts:
        for ln in t.splitlines():
            if ln.strip():
                seen.setdefault(ln.strip(), None)
    every = list(seen)
    key = [ln for ln in every
           if ln.startswith("fio:") or "error" in ln.lower() or "fail" in ln.lower()]
    return " | ".join((key or every)[-lines:])


def _stop(proc: subprocess.Popen[bytes], tree: proctree.Tree | None = None) -> None:
    """SIGINT fio's process group and every process it started (fio then writes its
    summary), SIGKILL after a grace; `tree` also reaches job processes that left the group
    (setsid) and stays after fio itself exits until they are gone too."""
    tree = tree or proctree.Tree(proc.pid)
    for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        tree.refresh()
        tree.kill(sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                if proc.poll() is not None:
                    tree.refresh()
                    tree.reap()
                    if not tree.alive():
                        return
                    if sig == signal.SIGINT:  # fio is done; what it left gets SIGKILL
                        break
                time.sleep(0.1)
                tree.refresh()
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
                break
    tree.reap()


def _end_leftovers(tree: proctree.Tree) -> None:
    """After fio exited: end what it started and left running (its job processes when
    fio itself was killed, a setsid'd exec_prerun command), SIGINT then SIGKILL, and reap
    the ones reparented to iobench."""
    tree.refresh()
    for sig in (signal.SIGINT, signal.SIGKILL):
        if not tree.alive():
            break
        tree.kill(sig)
        deadline = time.monotonic() + 2.0
        while tree.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
            tree.reap()
    tree.reap()


def run_process(cmd: list[str], workdir: Path, errpath: Path, timeout: float | None,
                partial: Callable[[], dict[str, Any] | None],
                env: Mapping[str, str] | None = None) -> int:
    """Start fio (`cmd`) with its output to `errpath`, wait, and return its exit status.
    `env`: variables set for fio on top of this process's environment.

    A timeout stops fio and raises RunFailed; an interruption (Ctrl-C, the runner's
    SIGTERM) stops fio and re-raises with `partial()` attached as `exc.fio_output`.
    """
    proctree.become_subreaper()  # fio's orphaned job processes come back to iobench
    with open(errpath, "wb") as err:
        try:
            # its own session: a terminal's Ctrl-C reaches iobench only, which then
            # stops fio deliberately (SIGINT first, so fio writes its summary)
            proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=subprocess.STDOUT,
                                    start_new_session=True,
                                    env={**os.environ, **env} if env else None)
        except OSError as e:
            raise RunFailed(f"cannot start fio ({cmd[0]}): {e.strerror}") from None
    tree = proctree.Tree(proc.pid)  # every process fio starts, setsid'd ones included
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            left = TRACK_S if deadline is None else min(TRACK_S, deadline - time.monotonic())
            try:
                rc = proc.wait(timeout=max(left, 0.0))
                _end_leftovers(tree)  # job processes fio left behind (killed fio, setsid)
                return rc
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                tree.refresh()
    except subprocess.TimeoutExpired:
        _stop(proc, tree)
        raise RunFailed(f"fio ran longer than the {timeout:g} s limit and was stopped; "
                        "give a longer timeout or a smaller job") from None
    except BaseException as e:
        _stop(proc, tree)
        e.fio_output = partial()  # type: ignore[attr-defined]
        raise


def run_fio(jobfile_text: str, workdir: Path, *, output_format: str = "json+",
            timeout: float | None = None, status_interval: int | None = 1,
            directory: Path | None = None, jobfile_path: Path | None = None,
            env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run fio on a job file's text in `workdir`; returns its final JSON document.

    The document gets an 'iobench' key: interval snapshots (for the timeline), fio's
    non-JSON output lines, the command and the job file text. fio failing -> RunFailed
    with the tail of what it printed; killed by a signal -> RunFailed naming the signal.
    KeyboardInterrupt (and runner's SIGTERM) stop fio and are re-raised with the partial
    document attached as `exc.fio_output` (None when fio wrote nothing usable).
    `jobfile_path`: run that file itself (its `include`s resolve next to it) rather than a
    temporary copy of `jobfile_text`; `directory`: fio's --directory for relative files;
    `env`: variables set for fio (shown before the command, as a shell would take them).
    """
    exe = fio_binary()
    with tempfile.TemporaryDirectory(prefix="iobench-fio-") as tmp:
        jobpath = jobfile_path or Path(tmp) / "job.fio"
        outpath = Path(tmp) / "output.json"
        errpath = Path(tmp) / "stderr.txt"
        if jobfile_path is None:
            jobpath.write_text(jobfile_text, encoding="utf-8")
        cmd = [exe, f"--output-format={output_format}", f"--output={outpath}"]
        if status_interval:
            cmd.append(f"--status-interval={status_interval}")
        if directory is not None:
            cmd.append(f"--directory={directory}")
        cmd.append(str(jobpath.resolve()))
        shown = [*cmd[:-1], str(jobfile_path) if jobfile_path else "JOBFILE"]
        shown = [a if not a.startswith("--output=") else "--output=FILE" for a in shown]
        shown = [f"{k}={v}" for k, v in (env or {}).items()] + shown
        rc = run_process(cmd, workdir, errpath, timeout,
                         lambda: _partial(outpath, shown, jobfile_text), env)
        stderr = errpath.read_text(encoding="utf-8", errors="replace")
        text = outpath.read_text(encoding="utf-8", errors="replace") if outpath.exists() else ""
        from iobench import verify

        verify.note_own_read(len(stderr.encode()) + len(text.encode()))  # not the data's
        if rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
            tail = _tail(stderr, text) or "no output"
            raise RunFailed(f"fio was killed by signal {name}: {tail}")
        if rc != 0:
            _docs, notes = documents(text)
            tail = _tail(stderr, "\n".join(notes)) or "it printed nothing"
            raise RunFailed(f"fio failed (exit {rc}): {tail}")
        doc = load_output(text)
        errors = [f"{j.get('jobname')}: error {j.get('error')}" for j in doc.get("jobs") or []
                  if j.get("error")]
        if errors:
            raise RunFailed(f"fio reported job errors: {'; '.join(errors)}; "
                            f"{_tail(stderr, text, lines=5)}")
        doc["iobench"].update(command=shown, jobfile=jobfile_text,
                              stderr=[ln for ln in stderr.splitlines() if ln.strip()])
        return doc


def _partial(outpath: Path, cmd: list[str], jobfile_text: str) -> dict[str, Any] | None:
    try:
        doc = load_output(outpath.read_text(encoding="utf-8", errors="replace"))
    except (OSError, RunFailed):
        return None
    doc["iobench"].update(command=cmd, jobfile=jobfile_text, partial=True)
    return doc


def partial_phases(exc: BaseException) -> list[dict[str, Any]]:
    """Phases fio measured before an interruption (attached by run/run_fio), or []."""
    phases = getattr(exc, "phases", None)
    if phases is not None:
        return list(phases)
    doc = getattr(exc, "fio_output", None)
    return parse(doc) if doc else []


# --- parsing -------------------------------------------------------------------------------
def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0


def _percentiles(pct: Mapping[str, Any] | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {k: None for _, k in _PCT_NAMES}
    for key, val in (pct or {}).items():
        try:
            p = float(key)
        except ValueError:
            continue
        for want, name in _PCT_NAMES:
            if abs(p - want) < 1e-6:
                out[name] = float(val)
    return out


def _latency_block(blocks: list[Mapping[str, Any]]) -> tuple[str, list[Mapping[str, Any]]]:
    """Which latency fio measured with percentiles: total (lat_ns, with lat_percentiles=1)
    or completion (clat_ns, fio's default); the per-job blocks of that kind."""
    for key in ("lat_ns", "clat_ns"):
        sub = [b.get(key) or {} for b in blocks]
        if any("bins" in s or "percentile" in s for s in sub):
            return key, sub
    return "clat_ns", [b.get("clat_ns") or {} for b in blocks]


def merge_latency(stats: list[Mapping[str, Any]]) -> tuple[Histogram | None,
                                                           dict[str, float | None], str]:
    """Merge per-job fio latency blocks ({min,max,mean,stddev,N,percentile,bins}).

    With json+ bins in every job that has samples: one merged Histogram (percentiles read
    off the merge). With one job and only fio's percentiles: those. With several jobs and
    no bins: no percentiles (they cannot be averaged), but exact count/min/max/mean.
    Returns (histogram or None, summary, how).
    """
    live = [s for s in stats if int(s.get("N", 0) or 0) > 0]
    empty: dict[str, float | None] = {k: None for k in _LAT_KEYS}
    if not live:
        return None, empty, "no samples"
    count = sum(int(s["N"]) for s in live)
    total = sum(_num(s.get("mean")) * int(s["N"]) for s in live)
    lo = min(_num(s.get("min")) for s in live)
    hi = max(_num(s.get("max")) for s in live)
    # fio's stddev uses n-1; recover each job's sum of squares from it
    sumsq = sum((int(s["N"]) - 1) * _num(s.get("stddev")) ** 2
                + int(s["N"]) * _num(s.get("mean")) ** 2 for s in live)
    exact: dict[str, float | None] = {
        "max": hi, "min": lo, "mean": total / count,
        "stddev": math.sqrt(max(sumsq / count - (total / count) ** 2, 0.0)), "count": count,
    }
    if all("bins" in s for s in live):
        hist = Histogram.from_buckets(
            (int(v), int(c)) for s in live for v, c in (s.get("bins") or {}).items())
        # the bins hold bucket values; fio's min/max/mean are exact
        hist.min, hist.max = int(lo), int(hi)
        hist.total, hist.sumsq = round(total), sumsq
        return hist, hist.summary(), "json+ bins merged"
    if len(live) == 1 and live[0].get("percentile"):
        # fio reports bucket values, which can lie just past the exact max: clamp
        pct = {k: None if v is None else min(max(v, lo), hi)
               for k, v in _percentiles(live[0]["percentile"]).items()}
        return None, {**pct, **exact}, "fio percentiles"
    why = ("fio printed no percentiles" if len(live) == 1 else
           f"{len(live)} jobs without json+ bins: percentiles are not averaged")
    return None, {**{k: None for _, k in _PCT_NAMES}, **exact}, why


def _timeline(snaps: list[Mapping[str, Any]], group: str, direction: str,
              final_bytes: int, final_ms: int) -> Timeline | None:
    """Bytes per second from fio's cumulative interval documents (status-interval)."""
    points = []
    for s in snaps:
        cur = (s.get(group) or {}).get(direction)
        if cur:
            points.append((int(cur["runtime_ms"]), int(cur["io_bytes"])))
    points.append((final_ms, final_bytes))
    tl = Timeline(0)
    prev = 0
    for ms, b in points:
        if b > prev:
            tl.add(max(0, ms * 1_000_000 - 1), b - prev)
            prev = b
    return tl


def job_option(job: Mapping[str, Any], doc: Mapping[str, Any], key: str) -> str | None:
    """A job's effective option: its own, else the global one, else None (fio default)."""
    opts = job.get("job options") or {}
    if key in opts:
        return str(opts[key])
    g = doc.get("global options") or {}
    return str(g[key]) if key in g else None


def parse(fio_json: Mapping[str, Any], engine_label: str = "fio",
          name: str | None = None) -> list[dict[str, Any]]:
    """fio's JSON (json or json+) -> phases: one per reporting group and direction.

    Jobs of one group (they run together; `stonewall` starts a new group) are aggregated:
    bytes and ops summed, seconds = the longest job's runtime, latency merged (see
    `merge_latency`). A `sync` block with I/Os (fsync=N) gives an extra `fsync` phase.
    Phase names: `name` (with -read/-write when a group did both), else JOBNAME:direction.
    """
    jobs = list(fio_json.get("jobs") or [])
    if not jobs:  # client/server output: per-client entries, without the merged one
        jobs = [j for j in fio_json.get("client_stats") or [] if j.get("jobname") != "All clients"]
    if not jobs:
        raise RunFailed("fio's JSON has no jobs: the job file defined no job that ran")
    version = str(fio_json.get("fio version", "?"))
    extra = fio_json.get("iobench") or {}
    snaps = list(extra.get("snapshots") or [])
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for j in jobs:
        groups.setdefault(str(j.get("groupid", 0)), []).append(j)
    phases: list[dict[str, Any]] = []
    for gid, gjobs in groups.items():
        active = [d for d in DIRECTIONS
                  if any(int((j.get(d) or {}).get("total_ios", 0)) or
                         int((j.get(d) or {}).get("io_bytes", 0)) for j in gjobs)]
        if name is not None:
            base = name if len(groups) == 1 else f"{name}-g{gid}"
        else:
            base = str(gjobs[0].get("jobname", f"group{gid}"))
        for d in active:
            blocks = [j.get(d) or {} for j in gjobs]
            nbytes = sum(int(b.get("io_bytes", 0)) for b in blocks)
            ops = sum(int(b.get("total_ios", 0)) for b in blocks)
            runtime_ms = max(int(b.get("runtime", 0)) for b in blocks)
            source, lat_blocks = _latency_block(blocks)
            hist, summary, how = merge_latency(lat_blocks)
            metrics: dict[str, Any] = {
                "fio_version": version,
                "fio_jobs": len(gjobs),
                "fio_runtime_s": runtime_ms / 1000,
                "fio_bytes_per_s": sum(int(b.get("bw_bytes", 0)) for b in blocks),
                "fio_ops_per_s": sum(_num(b.get("iops")) for b in blocks),
                "usr_cpu_pct": sum(_num(j.get("usr_cpu")) for j in gjobs) / len(gjobs),
                "sys_cpu_pct": sum(_num(j.get("sys_cpu")) for j in gjobs) / len(gjobs),
                "latency_source": source,
                "latency_method": how,
            }
            short = sum(int(b.get("short_ios", 0)) for b in blocks)
            if short:
                metrics["short_ios"] = short
            if runtime_ms == 0 and nbytes:
                metrics["note"] = "ran under fio's 1 ms runtime resolution: no throughput"
            if d == "write" and any(job_option(j, fio_json, "end_fsync") not in (None, "0")
                                    for j in gjobs):
                # fio's write runtime includes the final fsync, as the native engine's
                # write phase does (it also shows the fsync alone as its own phase)
                metrics["includes_fsync"] = True
            if summary.get("p50") is None and summary.get("count"):
                metrics["percentiles_unavailable"] = how
            label = f"{base}-{d}" if name is not None and len(active) > 1 else (
                base if name is not None else f"{base}:{d}")
            phases.append(make_phase(
                label, nbytes=nbytes, seconds=runtime_ms / 1000, ops=ops, latency=hist,
                timeline=_timeline(snaps, gid, d, nbytes, runtime_ms), engine=engine_label,
                direction=d, metrics=metrics, latency_summary=summary))
        syncs = [j.get("sync") or {} for j in gjobs]
        n_sync = sum(int(s.get("total_ios", 0)) for s in syncs)
        if n_sync:
            hist, summary, how = merge_latency([s.get("lat_ns") or {} for s in syncs])
            mean = summary.get("mean") or 0.0
            phases.append(make_phase(
                f"{base}-fsync" if name is None else f"{name}-fsync", nbytes=0,
                seconds=mean * n_sync / 1e9, ops=n_sync, latency=hist, engine=engine_label,
                direction="sync", latency_summary=summary,
                metrics={"fio_version": version, "latency_method": how,
                         "note": "seconds = fsync calls x mean fsync latency"}))
    return phases


# --- engine entry points -------------------------------------------------------------------
def _annotate(phases: list[dict[str, Any]], doc: Mapping[str, Any] | None,
              jobfile: str, warnings: Iterable[str] = ()) -> list[dict[str, Any]]:
    extra = (doc or {}).get("iobench") or {}
    info = {"jobfile": jobfile, "command": extra.get("command"),
            "notes": list(extra.get("notes") or []), "warnings": list(warnings)}
    for p in phases:
        p["fio"] = info
    return phases


def _run_text(text: str, workdir: Path, name: str, timeout: float | None,
              warnings: list[str], env: Mapping[str, str] | None = None
              ) -> list[dict[str, Any]]:
    try:
        doc = run_fio(text, workdir, timeout=timeout, env=env)
    except BaseException as e:
        partial = getattr(e, "fio_output", None)
        if partial is not None:
            try:
                e.phases = _annotate(parse(partial, name=name), partial, text,  # type: ignore[attr-defined]
                                     warnings)
            except RunFailed:
                e.phases = []  # type: ignore[attr-defined]
        raise
    return _annotate(parse(doc, name=name), doc, text, warnings)


def run(spec: IOSpec, workdir: Path, *, timeout: float | None = None) -> list[dict[str, Any]]:
    """Run one pattern with fio on `spec.files` (the native engine's files); its phases.

    Phase names match the native engine's (the pattern). Each phase carries the job file
    under phase['fio']['jobfile'] so the run can be reproduced with fio alone. On Ctrl-C
    the partial phases are attached to the re-raised exception: see `partial_phases`.
    """
    from iobench import safepath

    for f in spec.files:  # fio opens (and may create or extend) them by name
        safepath.check_writable(f)
    text = jobfile_for(spec, spec.pattern)
    return _run_text(text, workdir, spec.pattern, timeout, warnings_for(spec))


def run_files(files: Sequence[Path], *, rw: str, block_size: int, jobs: int, direct: bool,
              ioengine: str = "psync", iodepth: int = 1, end_fsync: bool = False,
              size_per_file: int | None = None, name: str | None = None,
              workdir: Path | None = None, timeout: float | None = None) -> list[dict[str, Any]]:
    """Read or write an explicit list of files with fio, each whole and sequentially,
    the files dealt round-robin over `jobs` concurrent jobs (for checkpoint, load, train).

    fio issues whole blocks only: reading, a file's last `size % block_size` bytes are
    skipped (counted in metrics['unread_tail_bytes'] and a warning).
    """
    label = name or rw
    if rw != "read":
        from iobench import safepath

        for f in files:
            safepath.check_writable(f)
    text = jobfile_for_files(files, rw=rw, block_size=block_size, jobs=jobs, direct=direct,
                             ioengine=ioengine, iodepth=iodepth, end_fsync=end_fsync,
                             size_per_file=size_per_file, name=label)
    wd = workdir or Path(files[0]).parent
    warnings: list[str] = []
    tail = 0
    if rw == "read":
        # fio issues whole blocks only: a file's last size % block_size bytes are not read
        tail = sum(Path(f).stat().st_size % block_size for f in files if Path(f).exists())
        if tail:
            warnings.append(f"fio reads whole {block_size}-byte blocks: {tail} bytes of file "
                            "tails were not read")
    phases = _run_text(text, wd, label, timeout, warnings)
    for p in phases:
        if tail and p["direction"] == "read":
            p["metrics"]["unread_tail_bytes"] = tail
    return phases
