"""Writes the generated reference pages from the code, so they cannot drift from it.

- docs/reference/cli.md: every command's --help, from Click itself;
- docs/reference/metrics.md: every declared Result metric, from iobench.suite.metrics;
- docs/reference/workload-yaml.md: the keys of each workload YAML kind, from the spec
  dataclasses the loader checks them against.

Run by `make docs` before `mkdocs build --strict`; the pages are not checked in.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path

import click

from iobench.cli import cli
from iobench.suite import metrics as declared


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[click.Context, click.Command]]:
    out: list[tuple[click.Context, click.Command]] = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx, terminal_width=100,
                            max_content_width=100)
        out.append((sub, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, sub))
    return out


def cli_page() -> str:
    lines = ["# Command-line reference", "",
             "Generated from the commands' own `--help` (docs/tools/gen_reference.py).", ""]
    root = click.Context(cli, info_name="iobench", terminal_width=100, max_content_width=100)
    for ctx, cmd in _commands(cli, root):
        lines += [f"## `{ctx.command_path}`", "", "```", cmd.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(lines)


def metrics_page() -> str:
    lines = ["# Metrics reference", "",
             "Every metric a command's Result declares (iobench/suite/metrics.py and the "
             "`declare()` calls of each command). Suite criteria and `iobench compare` read "
             "these names; `better` is the declared direction `compare` uses (blank: from "
             "the unit suffix).", "",
             "## Fields of every phase", "", "| field | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in declared.PHASE_FIELDS.items()]
    for command in sorted(declared._RESULT_METRICS):
        lines += ["", f"## `{command}`", "", "| metric | meaning | better |", "|---|---|---|"]
        better = declared.BETTER.get(command, {})
        for k, v in declared.result_metrics(command).items():
            lines.append(f"| `{k}` | {v} | {better.get(k, '')} |")
        extra = declared._PHASE_METRICS.get(command)
        if extra:
            lines += ["", "Phase metrics:", "", "| metric | meaning |", "|---|---|"]
            lines += [f"| `{k}` | {v} |" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def _type(tp: typing.Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _fields(cls: type, prefix: str = "") -> list[str]:
    rows: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name, f.type)
        default = ("required" if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING else
                   repr(f.default) if f.default is not dataclasses.MISSING else "(computed)")
        unit = f.metadata.get("unit", "")
        rows.append(f"| `{prefix}{f.name}` | {_type(tp)}{' (' + unit + ')' if unit else ''} "
                    f"| {default} |")
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            rows += _fields(tp, f"{prefix}{f.name}.")
    return rows


def yaml_page() -> str:
    from iobench.checkpoint.model import ModelSpec as CheckpointModel
    from iobench.datagen.spec import AcceleratorTable, TrainingSpec
    from iobench.kinds.infer_load.preset import Preset as InferenceModel
    from iobench.suite.steps import StepSpec

    kinds = [("Training workload (workloads/training/*.yaml)", TrainingSpec),
             ("Accelerator table (workloads/accelerators.yaml)", AcceleratorTable),
             ("Checkpoint model (workloads/checkpoint/*.yaml)", CheckpointModel),
             ("Inference preset (workloads/inference/*.yaml; `model:` names workloads/models/)",
              InferenceModel),
             ("Suite step (workloads/suites/*.yaml, under steps:)", StepSpec)]
    lines = ["# Workload YAML reference", "",
             "Generated from the dataclasses the YAML loader checks files against: an "
             "unknown key is refused with its path and a suggestion. Sizes accept `4k`, "
             "`1.5GiB`, `10GB` (see Units).", ""]
    for title, cls in kinds:
        lines += [f"## {title}", "", "| key | type | default |", "|---|---|---|"]
        lines += _fields(cls)
        lines.append("")
    return "\n".join(lines)


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cli.md").write_text(cli_page(), encoding="utf-8")
    (out / "metrics.md").write_text(metrics_page(), encoding="utf-8")
    (out / "workload-yaml.md").write_text(yaml_page(), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/reference")
