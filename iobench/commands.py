"""Small commands: report, compare, sysinfo, clean."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import click

from iobench import results as results_mod
from iobench import sysinfo as sysinfo_mod
from iobench import target as target_mod
from iobench.cli import cli
from iobench.errors import UsageError


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--csv", "csv_file", type=click.Path(path_type=Path), default=None,
              help="Also write every metric of every phase to this CSV file.")
@click.option("--html", "html_file", type=click.Path(path_type=Path), default=None,
              help="Also write one self-contained HTML report (charts inline) to this file.")
@click.option("--json", "json_out", is_flag=True, help="Print the results as JSON.")
def report(results: tuple[Path, ...], csv_file: Path | None, html_file: Path | None,
           json_out: bool) -> None:
    """Re-render saved results (result directories or result.json files)."""
    from iobench.report import csv_out, terminal

    for opt, out in (("--csv", csv_file), ("--html", html_file)):
        if out is not None:
            check_output_file(out, opt)
    loaded = [(str(p), load_checked(p)) for p in results]
    # everything is rendered in memory first: a damaged result is one line, nothing written
    con = terminal.console()
    with _damaged("the results"):
        csv_text = csv_out.to_csv(loaded) if csv_file is not None else None
        if html_file is not None:
            from iobench.report import html

            html_text = html.render(loaded)
        shown = json.dumps([r.to_dict() for _, r in loaded], indent=1) if json_out else None
    if shown is None:
        with con.capture() as cap:
            for label, r in loaded:
                with _damaged(label):
                    terminal.render(r, con)
        shown = cap.get()
    if csv_text is not None and csv_file is not None:
        write_output(csv_file, csv_text, "--csv")
        click.echo(f"csv: {csv_file}", err=True)
    if html_file is not None:
        write_output(html_file, html_text, "--html")
        click.echo(f"html: {html_file}", err=True)
    if json_out:
        click.echo(shown)
    else:
        con.file.write(shown)
        con.file.flush()


_DAMAGE = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
           ZeroDivisionError, RecursionError)


@contextlib.contextmanager
def _damaged(label: str) -> Iterator[None]:
    """A result file with a missing or mistyped field: one line naming it, not a traceback."""
    try:
        yield
    except _DAMAGE as e:
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise UsageError(f"{label}: a field is missing or has the wrong type ({what[:120]}); "
                         "the result file is damaged or not from iobench") from None


def load_checked(path: Path) -> results_mod.Result:
    """results.load (which checks the shape every renderer relies on), any damage one
    line."""
    with _damaged(str(path)):
        return results_mod.load(path)


def check_output_file(path: Path, opt: str) -> None:
    """A file to write: not a directory, in an existing directory this user can write."""
    if path.is_dir():
        raise UsageError(f"{opt} {path}: is a directory; give a file name, e.g. "
                         f"{path / ('report' + ('.csv' if opt == '--csv' else '.html'))}")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{opt} {path}: the directory {parent} does not exist; create it "
                         "or give another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{opt} {path}: {parent} is not writable by this user; give "
                         "another path")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{opt} {path}: exists and is not a regular file; give another path")


def write_output(path: Path, text: str, opt: str) -> None:
    """Atomically, through a temp file beside `path` that never outlives a failure."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(0o644)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UsageError(f"{opt} {path}: cannot write it ({e.strerror or e})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Compare results of different workloads.")
def compare(results: tuple[Path, ...], force: bool) -> None:
    """Compare results side by side: deltas against the first, and noise verdicts."""
    from iobench.report import compare as cmp
    from iobench.report.terminal import console

    if len(results) < 2:
        raise UsageError("compare needs at least two results, e.g. iobench compare A B")
    loaded = [(p.name if p.is_dir() else p.parent.name, load_checked(p)) for p in results]
    with _damaged("the results"):
        cmp.check_comparable(loaded, force)
        table = cmp.table(loaded)
    console().print(table)


@cli.command()
@click.option("--target", type=click.Path(path_type=Path), default=None,
              help="Also describe the filesystem and device holding this directory.")
@click.option("--json", "json_out", is_flag=True)
def sysinfo(target: Path | None, json_out: bool) -> None:
    """Host, kernel, CPU, RAM, filesystem, device and tool versions."""
    if target is not None and not target.exists():
        raise UsageError(f"--target {target}: does not exist")
    info = sysinfo_mod.collect(target)
    if json_out:
        click.echo(json.dumps(info, indent=1))
        return
    from rich.table import Table

    from iobench.report.terminal import console

    t = Table(title="sysinfo", title_justify="left", show_header=False)
    t.add_column("key")
    t.add_column("value")

    def add(prefix: str, d: dict) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                add(f"{prefix}{k}.", v)
            else:
                t.add_row(f"{prefix}{k}", str(v))

    add("", info)
    console().print(t)


@cli.command()
@click.option("--target", type=click.Path(path_type=Path), required=True)
def clean(target: Path) -> None:
    """Remove only what iobench created in the target (refuses unmarked directories)."""
    removed, foreign = target_mod.clean(target)
    click.echo(f"removed {len(removed)} entries iobench created: {', '.join(removed) or '-'}")
    if foreign:
        click.echo(f"kept {len(foreign)} entries iobench did not create: {', '.join(foreign)}")
