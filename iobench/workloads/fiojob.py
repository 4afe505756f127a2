"""`iobench fio JOBFILE --target DIR`: run any fio job file inside the target, same tables.

fio runs with the target's `fio/` subdirectory as its working and --directory, so a job's
relative file names land there; absolute paths outside the target are refused, since
iobench writes only inside its target.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
from rich.console import RenderableType
from rich.table import Table

from iobench import target as target_mod
from iobench.cli import cli, common_run_options
from iobench.engines import fio
from iobench.errors import UsageError
from iobench.report import terminal
from iobench.results import Result
from iobench.runner import execute
from iobench.stats import Histogram
from iobench.units import format_bytes, format_count

# job options that name files or directories fio will create, write or read
_PATH_KEYS = ("filename", "directory", "opendir", "filename_format")


def _split_unescaped(value: str) -> list[str]:
    # fio separates several files with ':'; '\:' is a literal colon
    return [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", value) if p]


def check_paths(text: str, jobfile: Path, workdir: Path) -> None:
    """Refuse job files whose file names or directories point outside the target.

    Relative names resolve under `workdir` (fio runs there with --directory), so only
    absolute paths and `..` can leave it. Values with $variables are left to fio.
    """
    root = workdir.resolve().parent  # the target
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in ";#[":
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or key not in _PATH_KEYS:
            continue
        for part in _split_unescaped(value.strip()):
            if "$" in part or "%" in part:
                continue
            p = Path(part)
            resolved = (p if p.is_absolute() else workdir / p).resolve()
            if resolved != root and root not in resolved.parents:
                raise UsageError(
                    f"{jobfile}:{lineno}: {key}={part} is outside --target {root}; iobench "
                    "writes only inside its target: use a relative path (it lands in "
                    f"{workdir}) or run fio directly"
                )


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
        out[f"{d}_iops"] = ops / secs if secs else 0.0
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


def _cache_verdict(doc: dict[str, Any], phases: list[dict[str, Any]]) -> dict[str, Any]:
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


def _fio_table(result: Result) -> list[RenderableType]:
    t = Table(title="fio", title_justify="left", show_header=False)
    t.add_column("key")
    t.add_column("value")
    t.add_row("job file", str(result.spec.get("jobfile")))
    t.add_row("directory", str(result.spec.get("directory")))
    t.add_row("fio", str(result.metrics.get("fio_version")))
    for k, v in result.metrics.items():
        if k == "fio_version":
            continue
        if k.endswith("_bytes"):
            shown = format_bytes(v)
        elif k.endswith("_iops"):
            shown = format_count(v)
        else:
            shown = f"{v:.3f}" if isinstance(v, float) else str(v)
        t.add_row(k, shown)
    return [t]


terminal.register("fio", _fio_table)


@cli.command("fio")
@click.argument("jobfile", type=click.Path(path_type=Path))
@common_run_options
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop fio after this many seconds (the run fails).")
def fio_cmd(jobfile: Path, target: Path, json_out: bool, results_dir: Path, force: bool,
            timeout: float | None) -> None:
    """Run any fio JOBFILE inside the target and render it like every iobench run.

    Relative file names in the job file land in <target>/fio/. fio runs with
    --output-format=json+, so latency percentiles are merged from fio's histograms.
    """
    if not jobfile.is_file():
        what = "is a directory" if jobfile.is_dir() else "no such file"
        raise UsageError(f"JOBFILE {jobfile}: {what}; give the path of an fio job file")
    try:
        text = jobfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"JOBFILE {jobfile}: cannot read it as text ({e})") from None
    fio.fio_binary()  # missing fio: exit 2 before touching the target
    tgt = target_mod.prepare(target, force=force)
    workdir = tgt.root / "fio"
    check_paths(text, jobfile, workdir)
    workdir = tgt.subdir("fio")
    result = Result(kind="fio", name=jobfile.stem, engine="fio",
                    spec={"jobfile": str(jobfile.resolve()), "jobfile_text": text,
                          "directory": str(workdir)})

    def body(r: Result) -> None:
        try:
            doc = fio.run_fio(text, workdir, directory=workdir, timeout=timeout,
                              jobfile_path=jobfile.resolve())
        except BaseException as e:
            partial = getattr(e, "fio_output", None)
            if partial is not None:
                _finish(r, partial, text)
            raise
        _finish(r, doc, text)

    execute(result, body, results_dir=results_dir, json_out=json_out, target=tgt.root)


def _finish(r: Result, doc: dict[str, Any], text: str) -> None:
    extra = doc.get("iobench") or {}
    try:
        phases = fio.parse(doc)
    except Exception:  # a partial document fio cut short: keep what the run can
        if extra.get("partial"):
            return
        raise
    for p in phases:
        r.add_phase(p)
    r.spec["command"] = extra.get("command")
    r.warnings.extend(f"fio: {n}" for n in extra.get("notes") or [])
    r.cache = _cache_verdict(doc, phases)
    r.metrics.update(summary_metrics(phases))
    if not phases:
        r.warnings.append("fio did no I/O: check the job file's rw=, size= and runtime=")
