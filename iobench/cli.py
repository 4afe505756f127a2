"""The command line: a Click group; each command parses -> builds a spec -> runs -> renders.

Command bodies live with their kinds (iobench/kinds/<kind>/cli.py); this module holds the
group, the options every run command shares, and the small commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from iobench import __version__
from iobench.errors import EXIT_USAGE, IobenchError, UsageError
from iobench.limits import MAX_COUNT as MAX_COUNT  # re-exported for the commands
from iobench.limits import MAX_SEED
from iobench.limits import MAX_THREADS as MAX_THREADS
from iobench.limits import check_open_files as check_open_files
from iobench.units import parse_duration, parse_positive_size, parse_size

F = Callable[..., Any]


# --- parameter types: bad values give one line naming the value and the fix -----------
class SizeType(click.ParamType):
    name = "SIZE"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        what = f"--{param.name.replace('_', '-')}" if param and param.name else "size"
        try:
            if self.allow_zero:
                return parse_size(value, what)
            return parse_positive_size(value, what)
        except UsageError as e:
            self.fail(e.format_message(), param, ctx)


class DurationType(click.ParamType):
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        what = f"--{param.name.replace('_', '-')}" if param and param.name else "duration"
        try:
            return parse_duration(value, what)
        except UsageError as e:
            self.fail(e.format_message(), param, ctx)


class ListType(click.ParamType):
    """Comma-separated list of sizes or ints: '4k,16k' or '1,4,16'."""

    name = "LIST"

    def __init__(self, item: Callable[[str, str], Any]) -> None:
        self.item = item

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> list:
        if isinstance(value, list):
            return value
        what = f"--{param.name.replace('_', '-')}" if param and param.name else "list"
        from iobench.units import parse_list

        try:
            return parse_list(value, self.item, what)
        except UsageError as e:
            self.fail(e.format_message(), param, ctx)


def positive_int(text: str, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not an integer; give e.g. 1,4,16") from None
    if v <= 0:
        raise UsageError(f"{what}: {v} must be >= 1")
    return v


SEED = click.IntRange(min=0, max=MAX_SEED)


SIZE = SizeType()
SIZE0 = SizeType(allow_zero=True)
DURATION = DurationType()
SIZE_LIST = ListType(parse_positive_size)
INT_LIST = ListType(positive_int)


def _set_wait(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.find_root().meta["iobench.wait"] = value
    return value


def common_run_options(f: F) -> F:
    """Options every run command takes: --target, --json, --results-dir, --force, --wait."""
    f = click.option("--wait", is_flag=True, expose_value=False, callback=_set_wait,
                     help="If another iobench run holds the target, wait for it instead of "
                          "refusing.")(f)
    f = click.option("--force", is_flag=True,
                     help="Use a non-empty target without the .iobench marker.")(f)
    f = click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"),
                     show_default=True, help="Where result directories are written.")(f)
    f = click.option("--json", "json_out", is_flag=True,
                     help="Print the Result as JSON to stdout instead of tables.")(f)
    f = click.option("--target", type=click.Path(path_type=Path), required=True,
                     help="Directory on the storage under test (created and marked).")(f)
    return f


def _check_cache(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "drop-global" and os.geteuid() != 0:
        raise click.BadParameter("drop-global writes /proc/sys/vm/drop_caches, which needs "
                                 "root; use --cache drop (evicts the data set's own files)")
    return value


def cache_option(default: str = "drop") -> Callable[[F], F]:
    return click.option(
        "--cache", type=click.Choice(["drop", "drop-global", "direct", "allow"]),
        default=default, show_default=True, callback=_check_cache,
        help="Page cache: drop = evict the data set's files before reading (fadvise, "
             "verified by measurement); drop-global = empty the whole host's page cache "
             "(drop_caches, root); direct = O_DIRECT; allow = nothing (may measure RAM).",
    )


def engine_option(f: F) -> F:
    return click.option("--engine", type=click.Choice(["native", "fio"]), default="native",
                        show_default=True, help="Native Python readers or fio.")(f)


class Group(click.Group):
    """Bad input is one line and exit 2, whoever finds it: Click's own usage errors
    (a bad choice, a missing argument) are shown as `error: ...` without the usage block,
    and a permission error at the top is a line, not a traceback."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        for arg in sys.argv[1:] if args is None else args:
            try:
                str(arg).encode("utf-8")
            except UnicodeEncodeError:  # bytes the locale could not decode
                shown = str(arg).encode("utf-8", "backslashreplace").decode("ascii", "replace")
                click.echo(f"error: argument {shown[:120]!r} is not valid UTF-8; iobench "
                           "takes UTF-8 paths and values only: rename it", err=True)
                sys.exit(EXIT_USAGE)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)
            if no_args is not None and isinstance(e, no_args):  # bare `iobench`: the help
                click.echo(e.format_message())
                sys.exit(EXIT_USAGE)
            hint = ""
            if e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            message = " ".join(e.format_message().split())  # Click may wrap a choice list
            click.echo(f"error: {message}{hint}", err=True)
            sys.exit(EXIT_USAGE)
        except (click.ClickException, IobenchError) as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort as e:
            from iobench.interrupt import PeerFault

            why = (f"{e.__cause__}, " if isinstance(e.__cause__, PeerFault) else "")
            click.echo(f"interrupted before the run started ({why}nothing was measured)",
                       err=True)
            from iobench import dist

            dist.leave_after_interrupt(130)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        """Every command, registered on first use (see _register)."""
        _register()
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IobenchError:
            raise
        except PermissionError as e:
            raise UsageError(f"{e.filename}: permission denied; check permissions") from None
        except ValueError as e:
            if "null" not in str(e):  # a path with a NUL byte: no file can have that name
                raise
            raise UsageError("a path contains a NUL byte; no file can have that name") from None
        except OSError as e:  # a path the user gave that the kernel refuses
            import errno

            if e.errno not in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR,
                               errno.EROFS, errno.EINVAL):
                raise
            name = str(e.filename) if e.filename is not None else "a path"
            if len(name) > 120:
                name = name[:60] + "..." + name[-40:]
            raise UsageError(f"{name}: {e.strerror or e}; check the path") from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iobench")
def cli() -> None:
    """iobench: storage I/O benchmark for AI workloads (training, checkpoints, inference).

    Sizes: KiB/MiB/GiB are binary (1024), kB/MB/GB decimal (1000), bare k/m/g binary as in
    fio. Throughput is reported in GB/s (10^9 B/s) and GiB/s.
    """



# --- the command line's side of a run: a context that shows progress, then the result --
def reporter(render: Callable[[Any], None] | None = None) -> Callable[..., None]:
    """ctx.on_result for a command: the error line, the tables (or --json), the path."""
    def show(result: Any, path: Path | None, json_out: bool, message: str | None) -> None:
        if message:
            click.echo(f"error: {message}", err=True)
        if json_out:
            click.echo(result.to_json())
        else:
            from iobench.report import terminal

            (render or terminal.render)(result)
        if path is not None:
            click.echo(f"result: {path}", err=True)
    return show


def progress_factory(json_out: bool) -> Callable[[str, int | None], Any]:
    """ctx.progress for a command: a Rich bar on a terminal, nothing under --json."""
    def make(label: str, total: int | None) -> Any:
        from iobench.report.progress import ByteProgress

        return ByteProgress(label, total, enabled=False if json_out else None)
    return make


def run_context(json_out: bool, render: Callable[[Any], None] | None = None,
                command_line: tuple[str, ...] | None = None) -> Any:
    """The Ctx a command passes to its kind's run()."""
    from iobench import dist
    from iobench.kinds.base import Ctx

    return Ctx(world=dist.world(), progress=progress_factory(json_out),
               on_result=reporter(render), json_out=json_out,
               command_line=tuple(sys.argv) if command_line is None else command_line)


def run_options(target: Path, results_dir: Path, force: bool) -> Any:
    """The RunOptions of the options every run command shares (common_run_options)."""
    from iobench.kinds.base import RunOptions

    ctx = click.get_current_context(silent=True)
    wait = bool(ctx.find_root().meta.get("iobench.wait")) if ctx is not None else False
    return RunOptions(target=target, results_dir=results_dir, force=force,
                      wait=float("inf") if wait else 0.0)


def finish(outcome: Any) -> Any:
    """Leave as the run ended: exit non-zero on failure; a suite's step hands a signal
    that arrived while it finished to the suite. Returns the Result otherwise."""
    from iobench import runner

    if outcome.code:
        sys.exit(outcome.code)
    if outcome.late is not None and runner.nested():  # a suite's step: the suite stops
        raise outcome.late
    return outcome.result


def main() -> None:
    from iobench import interrupt

    try:
        cli.main(prog_name="iobench", standalone_mode=True)
    except SystemExit as e:
        if interrupt.pending() is not None and e.code in (0, None):  # never acted on
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None
        raise
    except KeyboardInterrupt:  # before a run started: nothing measured, nothing to keep
        click.echo("interrupted before the run started: nothing was measured", err=True)
        from iobench import dist

        dist.leave_after_interrupt(130)
        raise SystemExit(130) from None


# The kinds' commands (iobench/kinds/<kind>/cli.py: a Click command named `command`),
# added to `cli` here, in one table.
KIND_COMMANDS: tuple[str, ...] = (
    "iobench.kinds.io.cli",
    "iobench.kinds.fio.cli",
    "iobench.kinds.checkpoint.cli",
    "iobench.kinds.train.cli",
    "iobench.kinds.datagen.cli",
    "iobench.kinds.infer_randread.cli",
    "iobench.kinds.infer_load.cli",
    "iobench.kinds.kvcache.cli",
    "iobench.kinds.vector.cli",
    "iobench.kinds.suite.cli",
)

# Kinds whose command sits in a command group (`iobench infer randread`): the kind's cli
# module -> the group's module (a Click group named `group`, added to `cli`).
KIND_GROUP_OF: dict[str, str] = {
    "iobench.kinds.infer_randread.cli": "iobench.kinds.infer_group",
    "iobench.kinds.infer_load.cli": "iobench.kinds.infer_group",
    "iobench.kinds.kvcache.cli": "iobench.kinds.infer_group",
    "iobench.kinds.vector.cli": "iobench.kinds.infer_group",
}

# Modules that add commands to `cli` themselves (not yet moved to iobench/kinds/).
COMMAND_MODULES: tuple[str, ...] = (
    "iobench.commands",
)


_registered = [False]


def _register() -> None:
    """Add every command to `cli`, once, on first use of the group (not at import: a
    kind's cli module imports this one, so importing it first must work too)."""
    if _registered[0]:
        return
    _registered[0] = True
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name)
    for name in KIND_COMMANDS:
        command = importlib.import_module(name).command
        if name in KIND_GROUP_OF:
            importlib.import_module(KIND_GROUP_OF[name]).group.add_command(command)
        else:
            cli.add_command(command)
    for group_name in dict.fromkeys(KIND_GROUP_OF.values()):
        cli.add_command(importlib.import_module(group_name).group)


__all__ = ["cli", "main", "EXIT_USAGE"]
