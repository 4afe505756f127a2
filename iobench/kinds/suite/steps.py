"""Suite files and their steps: each step is a registered Click command run in-process.

A step names a command path ("io", "infer randread") and its arguments and options; the
runner checks them against the live Click command before anything runs, then invokes
the command with `--target` and `--results-dir` of its own and loads the Result it saved.
Any command that writes a Result can therefore be a step, including ones added later.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from iobench import presets
from iobench import spec as spec_mod
from iobench.errors import IobenchError, SpecError, UsageError, did_you_mean
from iobench.kinds.suite import criteria as crit

# Options the suite runner sets for every step: a suite file may not set them.
RESERVED = ("target", "results-dir", "json", "force", "help")


@dataclass(frozen=True)
class StepSpec:
    command: str  # command path and optional positional arguments: "io seqwrite"
    id: str | None = None  # default: the command's last word ("randread" for infer randread)
    args: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # option -> value
    criteria: list[str] = field(default_factory=list)
    description: str = ""


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    steps: list[StepSpec]
    description: str = ""
    duration: str = ""  # what a user should expect, e.g. "1-2 minutes"
    criteria: list[str] = field(default_factory=list)


@dataclass
class Step:
    """A step resolved against the live CLI: its command object and final parameters."""

    id: str
    path: tuple[str, ...]  # ("infer", "randread")
    command: click.Command
    args: list[str]
    params: dict[str, Any]
    description: str = ""

    @property
    def command_name(self) -> str:
        return " ".join(self.path)

    def option_argv(self) -> list[str]:
        out: list[str] = []
        for key, value in self.params.items():
            out += _render_option(self, key, value)
        return out

    def argv(self, target: Path, results_dir: Path, force: bool = False) -> list[str]:
        """The arguments after `iobench`, as a user would type them."""
        extra = ["--force"] if force else []
        return [*self.path, *self.args, "--target", str(target),
                "--results-dir", str(results_dir), *extra, *self.option_argv()]

    def display(self) -> str:
        return shlex.join(["iobench", *self.path, *self.args, *self.option_argv()])


def load_suite(name_or_path: str) -> tuple[SuiteSpec, Path]:
    """The suite and the directory of its file (for ${suite_dir} in step values)."""
    path = presets.find("suites", name_or_path)
    suite = spec_mod.load(SuiteSpec, path, root=path.stem)
    if not suite.steps:
        raise SpecError(f"{path}: the suite has no steps; list at least one under 'steps:'")
    return suite, path.resolve().parent


def _expand(value: Any, suite_dir: Path | None) -> Any:
    """${suite_dir} in a step's argument or option value: files shipped next to the suite
    (e.g. a DLIO config for `train --dlio-config`) resolve wherever iobench runs."""
    if isinstance(value, str) and suite_dir is not None:
        return value.replace("${suite_dir}", str(suite_dir))
    if isinstance(value, list):
        return [_expand(v, suite_dir) for v in value]
    return value


def _options(cmd: click.Command) -> dict[str, click.Option]:
    """Every spelling a suite may use for an option: --block-size, block-size, block_size."""
    out: dict[str, click.Option] = {}
    for p in cmd.params:
        if not isinstance(p, click.Option):
            continue
        for o in (*p.opts, *p.secondary_opts):
            if o.startswith("--"):
                out[o[2:]] = p
        if p.name:
            out.setdefault(p.name.replace("_", "-"), p)
    return out


def _option(step: Step, key: str) -> click.Option:
    norm = key.lstrip("-").replace("_", "-")
    if norm in RESERVED or norm == "json-out":
        raise SpecError(f"step '{step.id}': {key!r} is set by `iobench run` for every step; "
                        "remove it from the suite (give --target/--force to iobench run)")
    opts = _options(step.command)
    if norm not in opts:
        names = [n for n in opts if n not in RESERVED and n != "json-out"]
        raise SpecError(f"step '{step.id}': '{step.command_name}' has no option {key!r}"
                        f"{did_you_mean(norm, names)}")
    return opts[norm]


def _render_option(step: Step, key: str, value: Any) -> list[str]:
    opt = _option(step, key)
    name = next((o for o in opt.opts if o.startswith("--")), opt.opts[0])
    if value is None:
        return []
    if opt.is_flag and not opt.count:
        if not isinstance(value, bool):
            raise SpecError(f"step '{step.id}': {key} is an on/off flag; give true or false, "
                            f"not {value!r}")
        # `no-decode: true` means --no-decode: the key may name either side of --x/--no-x
        negated = "--" + key.lstrip("-").replace("_", "-") in opt.secondary_opts
        if value != negated:
            return [name]
        return [opt.secondary_opts[0]] if opt.secondary_opts else []
    if opt.multiple and isinstance(value, list | tuple):
        return [x for v in value for x in (name, _scalar(v))]
    if isinstance(value, list | tuple):
        return [name, ",".join(_scalar(v) for v in value)]
    if isinstance(value, Mapping):
        raise SpecError(f"step '{step.id}': {key} takes one value, not a mapping")
    return [name, _scalar(value)]


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def available_commands(group: click.Group) -> list[str]:
    out: list[str] = []
    ctx = click.Context(group)
    for n in group.list_commands(ctx):
        c = group.get_command(ctx, n)
        if isinstance(c, click.Group):
            out += [f"{n} {s}" for s in available_commands(c)]
        elif c is not None:
            out.append(n)
    return out


def resolve(group: click.Group, s: StepSpec, index: int, suite_dir: Path | None = None) -> Step:
    """Find the step's command in the CLI; refuse a command this iobench does not have."""
    tokens = [_expand(t, suite_dir) for t in shlex.split(s.command)]
    where = f"step '{s.id}'" if s.id else f"step {index + 1}"
    if not tokens:
        raise SpecError(f"{where}: empty command; give e.g. 'io seqread'")
    cur: click.Command = group
    path: list[str] = []
    ctx = click.Context(group)
    while tokens and isinstance(cur, click.Group):
        name = tokens[0]
        sub = cur.get_command(ctx, name)
        if sub is None:
            shown = " ".join([*path, name])
            choices = available_commands(group)
            hint = did_you_mean(shown, choices)
            raise SpecError(f"{where}: command '{shown}' is not available in this iobench"
                            f"{hint}")
        path.append(tokens.pop(0))
        cur = sub
    if isinstance(cur, click.Group):
        subs = ", ".join(cur.list_commands(ctx))
        raise SpecError(f"{where}: '{' '.join(path)}' needs a subcommand ({subs})")
    names = {p.name for p in cur.params}
    if not {"target", "results_dir"} <= names:
        raise SpecError(f"{where}: '{' '.join(path)}' is not a run command (it takes no "
                        "--target/--results-dir), so it cannot be a suite step")
    step_id = s.id or path[-1]
    return Step(id=step_id, path=tuple(path), command=cur,
                args=[*tokens, *(_expand(str(a), suite_dir) for a in s.args)],
                params={k: _expand(v, suite_dir) for k, v in s.params.items()},
                description=s.description)


def resolve_all(group: click.Group, suite: SuiteSpec, suite_dir: Path | None = None
                ) -> list[Step]:
    steps = [resolve(group, s, i, suite_dir) for i, s in enumerate(suite.steps)]
    seen: dict[str, int] = {}
    for i, st in enumerate(steps):
        if st.id in seen:
            raise SpecError(f"steps {seen[st.id] + 1} and {i + 1} are both '{st.id}'; "
                            "give one of them an 'id:'")
        seen[st.id] = i
        if not crit._STEP_RE.match(st.id):
            raise SpecError(f"step id {st.id!r}: use letters, digits, _ and - only")
    return steps


def apply_overrides(steps: list[Step], sets: Sequence[str]) -> None:
    """Apply --set STEP.OPTION=VALUE (or STEP.args=A,B) to the resolved steps, in place."""
    by_id = {s.id: s for s in steps}
    for item in sets:
        key, eq, raw = item.partition("=")
        if not eq or "." not in key:
            raise UsageError(f"--set {item!r}: write STEP.OPTION=VALUE, e.g. io.size=8MiB")
        sid, _, opt = key.partition(".")
        if sid not in by_id:
            raise UsageError(f"--set {item!r}: no step {sid!r} in this suite"
                             f"{did_you_mean(sid, list(by_id))}")
        step = by_id[sid]
        if opt == "args":
            step.args = [a for a in raw.split(",") if a]
            continue
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, dict | list) or value is None:
            value = raw  # '1,8' or '[x]' stay text: the option parses it
        try:
            _render_option(step, opt, value)
        except SpecError as e:
            raise UsageError(f"--set {item!r}: {e.format_message()}") from None
        # an override replaces the suite's value however the suite spelled the key
        target_opt = _option(step, opt)
        for k in [k for k in step.params if _option(step, k) is target_opt]:
            del step.params[k]
        step.params[opt] = value


def validate(steps: list[Step], target: Path) -> None:
    """Parse every step's command line with Click (types, choices) without running it."""
    for st in steps:
        argv = st.argv(target, Path("results"))[len(st.path):]
        try:
            st.command.make_context(st.command_name, argv)
        except click.exceptions.Exit:
            pass
        except (click.ClickException, IobenchError) as e:
            raise SpecError(f"step '{st.id}' ({st.display()}): {e.format_message()}") from None


def spec_dict(suite: SuiteSpec, steps: list[Step]) -> dict[str, Any]:
    d = dataclasses.asdict(suite)
    d["resolved_steps"] = [{"id": s.id, "command": s.command_name, "args": s.args,
                            "params": s.params, "command_line": s.display()} for s in steps]
    return d
