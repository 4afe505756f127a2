"""Run any fio job file inside the target and keep its result like every iobench run."""

from __future__ import annotations

from typing import Any

from iobench import dist, runner
from iobench import target as target_mod
from iobench.engines import fio
from iobench.kinds.base import Ctx, RunOptions, default_ctx
from iobench.kinds.fio.policy import cache_verdict, check_paths, summary_metrics
from iobench.kinds.fio.spec import Spec
from iobench.results import Recorder, Result


def execute(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> runner.Outcome:
    ctx = ctx or default_ctx()
    spec.validate()
    text = spec.text()
    fio.fio_binary()  # missing fio: exit 2 before touching the target
    with target_mod.locked():
        tgt = dist.root_first(lambda: target_mod.prepare(options.target, force=options.force,
                                                         wait=options.wait > 0), ctx.world)
        check_paths(text, spec.jobfile, tgt.root / "fio", options.force)
        workdir = tgt.subdir("fio")
        jobfile = spec.jobfile.resolve()
        rec = Recorder(kind="fio", name=spec.jobfile.stem, engine="fio",
                       spec={"jobfile": str(jobfile), "jobfile_text": text,
                             "directory": str(workdir), "timeout": spec.timeout})

        def body(r: Recorder) -> None:
            try:
                doc = fio.run_fio(text, workdir, directory=workdir, timeout=spec.timeout,
                                  jobfile_path=jobfile)
            except BaseException as e:
                partial = getattr(e, "fio_output", None)
                if partial is not None:
                    _finish(r, partial, text)
                raise
            _finish(r, doc, text)

        opts = RunOptions(target=tgt.root, results_dir=options.results_dir,
                          force=options.force, wait=options.wait, save=options.save)
        return runner.run(rec, body, opts, ctx)


def run(spec: Spec, options: RunOptions, ctx: Ctx | None = None) -> Result:
    return execute(spec, options, ctx).result


def _finish(r: Recorder, doc: dict[str, Any], text: str) -> None:
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
    r.cache = cache_verdict(doc, phases)
    r.metrics.update(summary_metrics(phases))
    if not phases:
        r.warnings.append("fio did no I/O: check the job file's rw=, size= and runtime=")
