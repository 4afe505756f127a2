"""`iobench infer load MODEL`: options -> Spec -> run -> render (or --what-if: the plan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from iobench import cli as cli_mod
from iobench.cli import SIZE, common_run_options
from iobench.kinds.infer_load.run import execute, plans
from iobench.kinds.infer_load.spec import Spec, build


@click.command("load")
@click.argument("model_name", metavar="MODEL")
@common_run_options
@click.option("--precision", "-p", default=None,
              help="Comma list of bf16,fp16,fp8,int8,int4 [safetensors: bf16,fp8,int4; "
                   "gguf: bf16,int8,int4].")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "gguf"]),
              default="safetensors", show_default=True)
@click.option("--method", "-m", default=None,
              help="Comma list of read,pread,direct,mmap,safetensors (gguf: gguf instead of "
                   "safetensors) [all of them].")
@click.option("--threads", "-t", type=click.IntRange(min=1, max=1024), default=8,
              show_default=True, help="Reader threads for pread/direct.")
@click.option("--chunk", type=SIZE, default="16MiB", show_default=True,
              help="Bytes per read for pread/direct (and the --discard buffer).")
@click.option("--replicas", type=click.IntRange(min=1, max=1024), default=1, show_default=True,
              help="Also run R processes cold-loading the same model at once.")
@click.option("--cold/--warm", "cold", default=None,
              help="Only cold (page cache dropped) or only warm (files cached) loads "
                   "[both].")
@click.option("--discard", is_flag=True,
              help="Read into bounded per-thread buffers (measures storage, not RAM).")
@click.option("--what-if", is_flag=True,
              help="Print the files, tensor counts and bytes per precision; write nothing.")
def command(target: Path, json_out: bool, results_dir: Path, force: bool, what_if: bool,
            **params: Any) -> None:
    """Load MODEL's weights (a preset in workloads/inference/ or a YAML path)."""
    spec = spec_from_params(params)
    if what_if:
        _what_if(spec, target, json_out)
        return
    ctx = cli_mod.run_context(json_out)
    cli_mod.finish(execute(spec, cli_mod.run_options(target, results_dir, force), ctx))


def spec_from_params(params: dict[str, Any]) -> Spec:
    """Click's parsed params (the common run options removed) -> a validated Spec."""
    p = dict(params)
    p.pop("what_if", None)
    return build(model=p.pop("model_name"), format=p.pop("fmt"),
                 precisions=p.pop("precision"), methods=p.pop("method"), **p)


def _what_if(spec: Any, target: Path, json_out: bool) -> None:
    from rich.table import Table

    from iobench.report import terminal
    from iobench.units import format_bytes

    m, ps = plans(spec)
    if json_out:
        click.echo(json.dumps({"model": m.name, "target": str(target),
                               "plans": [p.summary() for p in ps]}, indent=1))
        return
    t = Table(title=f"{m.name}: files that `infer load` would write under "
                    f"{target}/infer/models/{m.name}/ (nothing written)", title_justify="left")
    for col in ("precision", "format", "files", "tensors", "bytes", "GB", "reference GB",
                "size ratio"):
        t.add_column(col, justify="left" if col in ("precision", "format") else "right")
    base = ps[0].total_bytes
    for p in ps:
        ref = m.reference_gb.get(p.precision if p.fmt == "safetensors"
                                 else f"gguf-{p.precision}")
        t.add_row(p.precision, p.fmt, str(len(p.files)), str(p.tensor_count),
                  format_bytes(p.total_bytes), f"{p.total_bytes / 1e9:.3g}",
                  "-" if ref is None else f"{ref:g}", f"{p.total_bytes / base:.3f}")
    con = terminal.console()
    con.print(t)
    for p in ps:
        names = ", ".join(f.name for f in p.files[:3]) + (" ..." if len(p.files) > 3 else "")
        idx = " + model.safetensors.index.json" if p.index else ""
        con.print(f"{p.dirname}/: {names}{idx}")
