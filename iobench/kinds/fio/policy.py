"""What an fio job file may do inside iobench: every option that names a path, runs a
command or changes the host is classified, and a job file is checked before fio runs.

fio runs with the target's `fio/` subdirectory as its working and --directory, so a job's
relative file names land there; absolute paths outside the target are refused, since
iobench writes only inside its target.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from iobench import safepath
from iobench import target as target_mod
from iobench.engines import fio
from iobench.errors import UsageError
from iobench.stats import Histogram

# --- what a job file may do ----------------------------------------------------------
# Every fio option that names a file, a directory or a device, runs a command or changes
# the system, classified (tests/fio/test_fio_options.py checks this against the options
# of the installed fio: `fio --cmdhelp=all` and `--enghelp` of each allowed engine).
#   path:    names a file or directory fio writes or reads: must resolve inside the target
#   paths:   the same, several separated by ':'
#   logpath: a log file name prefix (fio appends _bw.1.log etc.): inside the target
#   pattern: filename_format ($jobname, $jobnum, $filenum expand to names): inside
#   mem:     mem=/iomem= mmap:FILE / mmaphuge:FILE: FILE inside the target
#   engine:  ioengine: one of ALLOWED_ENGINES (local files only)
#   force:   changes the host (I/O scheduler, cgroups): refused unless --force
#   never:   runs a program or writes a device, whatever --force says
#   safe:    mentions files but names none (a mode, a count, a flag, a choice)
OPTION_CLASSES: dict[str, str] = {
    "filename": "paths", "directory": "paths", "opendir": "path",
    "filename_format": "pattern",
    "write_iolog": "path", "read_iolog": "path", "merge_blktrace_file": "path",
    "write_bw_log": "logpath", "write_lat_log": "logpath", "write_iops_log": "logpath",
    "write_hist_log": "logpath",
    "mem": "mem", "iomem": "mem",
    "ioengine": "engine",
    "ioscheduler": "force", "cgroup": "force",
    "exec_prerun": "never", "exec_postrun": "never", "replay_redirect": "never",
    "profile": "never",
    # mention files or logs, name none
    "description": "safe", "lockfile": "safe", "unique_filename": "safe", "rw": "safe",
    "size": "safe", "fill_device": "safe", "filesize": "safe", "file_append": "safe",
    "nrfiles": "safe", "file_service_type": "safe", "openfiles": "safe",
    "fallocate": "safe", "sync_file_range": "safe", "direct": "safe", "atomic": "safe",
    "buffered": "safe", "verify_backlog": "safe", "verify_backlog_batch": "safe",
    "trim_backlog": "safe", "trim_backlog_batch": "safe", "read_iolog_chunked": "safe",
    "replay_no_stall": "safe", "merge_blktrace_scalars": "safe",
    "merge_blktrace_iters": "safe", "ignore_zone_limits": "safe",
    "zone_reset_threshold": "safe", "zone_reset_frequency": "safe",
    "create_serialize": "safe", "create_fsync": "safe", "create_on_open": "safe",
    "create_only": "safe", "allow_file_create": "safe", "allow_mounted_write": "safe",
    "pre_read": "safe", "fsync_on_close": "safe", "unlink": "safe",
    "unlink_each_loop": "safe", "per_job_logs": "safe", "log_entries": "safe",
    "log_avg_msec": "safe", "log_hist_msec": "safe", "log_hist_coarseness": "safe",
    "log_max_value": "safe", "log_offset": "safe", "log_prio": "safe",
    "log_compression": "safe", "log_compression_cpus": "safe",
    "log_store_compressed": "safe", "log_unix_epoch": "safe", "log_alternate_epoch": "safe",
    "log_alternate_epoch_clock_id": "safe", "dedupe_working_set_percentage": "safe",
    "disk_util": "safe", "disable_bw_measurement": "safe", "unified_rw_reporting": "safe",
    "cgroup_nodelete": "safe", "cgroup_weight": "safe", "uid": "safe", "gid": "safe",
    "registerfiles": "safe", "stat_type": "safe", "wait_for": "safe", "lockmem": "safe",
    "runtime": "safe", "thinktime_spin": "safe", "zonesize": "safe", "nonvectored": "safe",
}
# ioengines that only do I/O to the job's files (the others reach devices, networks or
# run programs: exec, external:LIB, sg, io_uring_cmd, net, rdma, nbd, http, ...)
ALLOWED_ENGINES = ("sync", "psync", "vsync", "pvsync", "pvsync2", "libaio", "io_uring",
                   "posixaio", "mmap", "null", "falloc", "ftruncate", "filecreate",
                   "filestat", "filedelete", "splice", "cpuio")
_FORMAT_TOKENS = ("$jobname", "$jobnum", "$filenum", "$clientuid")
_MAX_INCLUDE_DEPTH = 8


def _split_unescaped(value: str) -> list[str]:
    # fio separates several files with ':'; '\:' is a literal colon
    return [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", value) if p]


class JobCheck:
    """Refuse a job file (and the files it includes) that would touch anything outside
    the target, run a program, or change the host (the last allowed with --force)."""

    def __init__(self, workdir: Path, force: bool) -> None:
        self.workdir = safepath.normal_root(workdir)
        self.root = self.workdir.parent  # the target
        self.force = force

    def refuse(self, where: str, msg: str) -> UsageError:
        return UsageError(f"{where}: {msg}")

    def inside(self, where: str, key: str, value: str) -> None:
        if "\0" in value or "$" in value:
            raise self.refuse(where, f"{key}={value}: iobench cannot check a name with "
                              "variables ($...); write the path out")
        p = Path(value)
        q = Path(os.path.normpath(p if p.is_absolute() else self.workdir / p))
        if q != self.root and self.root not in q.parents:
            raise self.refuse(where, f"{key}={value} is outside --target {self.root}; "
                              "iobench writes only inside its target: use a relative path "
                              f"(it lands in {self.workdir}) or run fio directly")
        if q in (self.root / m for m in target_mod.OWN_FILES):
            raise self.refuse(where, f"{key}={value} is iobench's own marker or lock")
        # nothing below the target on the way is a link, the file no hard link
        cur = self.root
        for c in q.relative_to(self.root).parts:
            cur = cur / c
            try:
                st = cur.lstat()
            except FileNotFoundError:
                break
            if stat.S_ISLNK(st.st_mode):
                raise self.refuse(where, f"{key}={value}: {cur} is a symbolic link; iobench "
                                  "never follows links inside its target: remove it")
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                raise self.refuse(where, f"{key}={value}: {cur} has other hard links; "
                                  "iobench will not let fio write it: remove it")

    def check(self, text: str, jobfile: Path, depth: int = 0) -> None:
        for lineno, raw in enumerate(text.splitlines(), 1):
            where = f"{jobfile}:{lineno}"
            line = raw.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("["):
                name = line.strip("[]").strip()
                if "/" in name or name.startswith(".") or "$" in name:
                    raise self.refuse(where, f"job name [{name}] becomes a file name: use a "
                                      "plain name (no '/', '$', leading '.')")
                continue
            if line.startswith("include ") or line == "include":
                self.include(where, line[len("include"):].strip(), jobfile, depth)
                continue
            key, sep, value = line.partition("=")
            self.option(where, key.strip(), value.strip() if sep else None)

    def include(self, where: str, name: str, jobfile: Path, depth: int) -> None:
        if depth >= _MAX_INCLUDE_DEPTH:
            raise self.refuse(where, f"include nested deeper than {_MAX_INCLUDE_DEPTH}")
        path = Path(name) if Path(name).is_absolute() else jobfile.parent / name
        try:
            sub = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise self.refuse(where, f"include {name}: cannot read it as text ({e})") from None
        self.check(sub, path, depth + 1)

    def option(self, where: str, key: str, value: str | None) -> None:
        k = key.lower()
        cls = OPTION_CLASSES.get(k)
        if k != key and k in OPTION_CLASSES:
            raise self.refuse(where, f"{key}: fio option names are lower case ({k})")
        if cls is None:  # fio refuses options it does not know; no fio option names
            return       # files beyond OPTION_CLASSES (tested against fio's own list)
        if cls == "never":
            raise self.refuse(where, f"{key}= runs a program, writes a device or generates "
                              "jobs iobench cannot check; iobench refuses it even with "
                              "--force: run fio directly")
        if cls == "force":
            if not self.force:
                raise self.refuse(where, f"{key}= changes the host (not only files in the "
                                  "target); pass --force to allow it")
            return
        if value is None or cls == "safe":
            return
        if cls == "engine":
            engine = value.split(":", 1)[0].strip()
            if engine not in ALLOWED_ENGINES:
                raise self.refuse(where, f"ioengine={value}: only engines that do I/O to "
                                  f"the job's files are allowed ({', '.join(ALLOWED_ENGINES)})"
                                  "; run fio directly for others")
            return
        if cls == "mem":
            kind, sep, path = value.partition(":")
            if sep and path:
                self.inside(where, key, path)
            return
        if cls == "pattern":
            for tok in _FORMAT_TOKENS:
                value = value.replace(tok, "x")
            self.inside(where, key, value)
            return
        if cls == "logpath" and value in ("", "0", "1"):
            return  # a flag form: the log is named after the job, in fio's directory
        parts = _split_unescaped(value) if cls == "paths" else [value]
        for part in parts:
            self.inside(where, key, part)


def check_paths(text: str, jobfile: Path, workdir: Path, force: bool = False) -> None:
    """Refuse job files that write or read outside the target, run programs or (without
    --force) change the host. Relative names resolve under `workdir`."""
    JobCheck(workdir, force).check(text, jobfile)


def summary_metrics(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per direction: bytes, GB/s over the phases' time, IOPS, p99 from merged histograms."""
    out: dict[str, Any] = {}
    for d in ("read", "write", "trim"):
        ps = [p for p in phases if p.get("direction") == d]
        if not ps:
            continue
        nbytes = sum(p["bytes"] for p in ps)
        secs = sum(p["seconds"] for p in ps)
        ops = sum(p["ops"] for p in ps)
        out[f"{d}_bytes"] = nbytes
        out[f"{d}_gb_per_s"] = nbytes / secs / 1e9 if secs else 0.0
        out[f"{d}_ops_per_s"] = ops / secs if secs else 0.0
        hists = [p.get("histogram") for p in ps]
        if all(hists):
            merged = Histogram.merged(Histogram.from_dict(h) for h in hists if h)
            p99 = merged.percentile(99.0)
        elif len(ps) == 1:
            p99 = ps[0]["latency_ns"].get("p99")
        else:
            p99 = None
        if p99 is not None:
            out[f"{d}_p99_us"] = p99 / 1e3
    if phases:
        out["fio_version"] = phases[0].get("metrics", {}).get("fio_version")
    return out


def cache_verdict(doc: dict[str, Any], phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the figures may come from, read off each job's effective options."""
    jobs = doc.get("jobs") or []
    opt = fio.job_option
    direct = bool(jobs) and all(opt(j, doc, "direct") not in (None, "0") for j in jobs)
    invalidate = all(opt(j, doc, "invalidate") in (None, "1") for j in jobs)
    reads = any(p.get("direction") == "read" for p in phases)
    if direct:
        return {"policy": "jobfile", "method": "o_direct", "may_be_cached": False,
                "note": "direct=1 in every job: the host page cache is bypassed"}
    if not reads:
        return {"policy": "jobfile", "method": "buffered", "may_be_cached": False,
                "note": "buffered writes: they reach storage only at fsync (end_fsync=1 "
                        "or fsync=N in the job file), otherwise figures include the page cache"}
    how = ("fio invalidated each file's cache before its job (invalidate=1)" if invalidate
           else "invalidate=0: files may already be in the page cache")
    return {"policy": "jobfile", "method": "invalidate" if invalidate else "none",
            "may_be_cached": True,
            "note": f"buffered reads: {how}; re-reads may come from RAM"}
