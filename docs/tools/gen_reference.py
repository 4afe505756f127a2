"""Writes the generated reference pages from the code, so they cannot drift from it.

- docs/reference/cli.md: every command's --help, from Click itself;
- docs/reference/metrics.md: every declared metric, from iobench/kinds/<kind>/metrics.py;
- docs/reference/python-api.md: the Python API, each kind's Spec from its dataclass;
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


def _metric_rows(ms: typing.Iterable[typing.Any]) -> list[str]:
    rows = ["| metric | unit | better | meaning | v1 name |", "|---|---|---|---|---|"]
    for m in ms:
        opt = " (only when asked for)" if m.optional else ""
        rows.append(f"| `{m.name}` | {m.unit} | {m.better} | {m.description}{opt} | "
                    f"{', '.join(f'`{w}`' for w in m.was)} |")
    return rows


def metrics_page() -> str:
    from iobench import kinds
    from iobench.kinds.base import ENGINE_PHASE_METRICS, PHASE_FIELDS, UNIT_SUFFIXES

    suffixes = ", ".join(f"`{s}` {u}" for s, u in UNIT_SUFFIXES)
    lines = ["# Metrics reference", "",
             "Generated from each kind's declarations (iobench/kinds/<kind>/metrics.py): "
             "every metric a result carries, its unit, which way is better (what `iobench "
             "compare` and suite criteria use), and its name in results schema 1 where it "
             "was renamed (old results are upgraded on load).", "",
             f"Names follow one suffix rule, the suffix is the unit: {suffixes}; a name "
             "without one is a count, a ratio, a flag or text, as declared.", "",
             "## Fields of every phase", ""]
    lines += _metric_rows(PHASE_FIELDS.values())
    lines += ["", "## Phase metrics the engines add", ""]
    lines += _metric_rows(ENGINE_PHASE_METRICS.values())
    for kind in kinds.KINDS:
        decl = kinds.metrics(kind)
        if decl is None:
            continue
        lines += ["", f"## `{kind}`", ""]
        lines += _metric_rows(decl.result().values())
        if decl.phase():
            lines += ["", "Phase metrics:", ""]
            lines += _metric_rows(decl.phase().values())
    return "\n".join(lines) + "\n"


def api_page() -> str:
    import importlib

    from iobench import kinds

    lines = ["# Python API", "",
             "Every command is a Python call: `iobench.<kind>.run(spec, options, ctx=None)` "
             "returns the frozen `Result` (status `ok`, `partial` or `failed`; it never "
             "exits the process and prints nothing unless the context asks). "
             "`iobench.<kind>.build(**values)` makes a validated `Spec` from plain values "
             "(sizes as strings like `\"64MiB\"` or bytes); bad input raises "
             "`iobench.errors.UsageError` with the one-line message the command line "
             "prints. `execute(...)` returns the `Outcome` (the result, the exit code the "
             "command would give, where the result was written).", "",
             "```python",
             "from pathlib import Path",
             "import iobench",
             "",
             "spec = iobench.io.build(pattern=\"randread\", size=\"1GiB\", block_size=\"4k\",",
             "                        queue_depth=32, cache=\"direct\")",
             "opts = iobench.RunOptions(target=Path(\"/mnt/nvme/iobench\"),",
             "                          results_dir=Path(\"results\"))",
             "r = iobench.io.run(spec, opts)",
             "print(r.status, r.metrics[\"ops_per_s\"], r.phases[0].latency_ns[\"p99\"])",
             "```", "",
             "`RunOptions`: `target` (the directory on the storage under test), "
             "`results_dir`, `force` (use a non-empty unmarked target), `wait` (seconds to "
             "wait for another run's lock), `save` (write result.json). `Ctx` "
             "(iobench.kinds.base): the MPI world, the clock, a progress factory and an "
             "`on_result` hook; `None` gives a quiet one for this process.", "",
             "A `Result` and its `Phase`s are immutable (frozen dataclasses; mappings and "
             "lists in them refuse changes). `iobench.results.load(path)` reads a saved "
             "one, upgrading results schema 1 files.", ""]
    for kind, pkg in kinds.KINDS.items():
        try:
            mod = importlib.import_module(f"iobench.kinds.{pkg}")
        except ModuleNotFoundError:
            continue
        spec_cls = getattr(mod, "Spec", None)
        if spec_cls is None or not dataclasses.is_dataclass(spec_cls):
            continue
        lines += [f"## `iobench.{pkg}` (kind `{kind}`)", "",
                  (mod.__doc__ or "").strip().splitlines()[0], "",
                  "`Spec` fields:", "", "| key | type | default |", "|---|---|---|"]
        lines += _fields(spec_cls)
        lines.append("")
    return "\n".join(lines)


def _type(tp: typing.Any) -> str:
    name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
    return name.replace("pathlib.", "").replace(" | ", " or ")


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
    from iobench.kinds.checkpoint.model import Preset as CheckpointModel
    from iobench.kinds.infer_load.preset import Preset as InferenceModel
    from iobench.kinds.suite.steps import StepSpec
    from iobench.workload import AcceleratorTable, TrainingSpec

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
    (out / "python-api.md").write_text(api_page(), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/reference")
