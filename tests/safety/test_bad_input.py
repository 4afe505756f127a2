"""The bad inputs the issue lists, each: exit 2, one `error:` line naming the value, no
traceback, no result written, nothing outside the target."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.safety.conftest import Arena, refused

IO = ["io", "seqwrite", "--size", "64k", "-b", "64k", "--cache", "allow"]
NOT_UTF8 = b"name: caf\xe9\nformat: raw\n"


def _no_result(arena: Arena) -> None:
    assert not arena.results.exists() or not any(arena.results.iterdir())


@pytest.mark.parametrize(("args", "needle"), [
    (["--size", "1e400"], "--size"),
    (["--size", "9EiB"], "--size"),
    (["--runtime", "1e300"], "--runtime"),
    (["--runtime", "nan"], "--runtime"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**64)], "--seed"),
    (["--jobs", "100000"], "--jobs"),
    (["--queue-depth", "100000"], "--queue-depth"),
])
def test_io_numbers(arena: Arena, args: list[str], needle: str) -> None:
    refused(arena.run(*IO, "--target", arena.target, *args), needle)
    _no_result(arena)
    arena.check()


def test_record_size_out_of_range(arena: Arena) -> None:
    p = arena.inputs / "w.yaml"
    p.write_text("name: big\nformat: raw\nrecord_size: 1e99\nsamples_per_file: 1\nfiles: 1\n"
                 "batch_size: 1\n")
    refused(arena.run("datagen", p, "--target", arena.target), "record_size")
    _no_result(arena)
    arena.check()


@pytest.mark.parametrize("argv", [
    ["datagen", "{y}"], ["run", "{y}"], ["datagen", "--dlio-config", "{y}"],
    ["train", "--dlio-config", "{y}"], ["checkpoint", "{y}", "--what-if"],
    ["infer", "load", "{y}", "--what-if"],
])
def test_non_utf8_yaml(arena: Arena, argv: list[str]) -> None:
    p = arena.inputs / "w.yaml"
    p.write_bytes(NOT_UTF8)
    refused(arena.run(*[str(p) if a == "{y}" else a for a in argv], "--target",
                      arena.target), "UTF-8")
    _no_result(arena)
    arena.check()


def test_vector_hops_capped(arena: Arena) -> None:
    """Found by the fuzz with a random seed: a huge --hops made one query endless (a stop
    waits for the queries in flight), so the run never ended, even on SIGTERM."""
    refused(arena.run("infer", "vector", "--index-size", "1MiB", "--runtime", "0.2s",
                      "--target", arena.target, "--hops", str(232976236748075008)), "--hops")
    _no_result(arena)
    arena.check()


@pytest.mark.parametrize(("flag", "value"), [("--concurrency", "50000000"),
                                            ("--search-procs", "50000000"),
                                            ("--search-threads", "2")])
def test_vector_counts_capped(arena: Arena, flag: str, value: str) -> None:
    """--concurrency 50000000 ended in a traceback (exit 1): reads in flight are bounded by
    one ring's depth, the AIO limit and memory; searcher processes by MAX_SEARCH_PROCS;
    the old --search-threads names its replacement."""
    extra = ["--engine", "diskann"] if flag.startswith("--search") else []
    refused(arena.run("infer", "vector", *extra, "--index-size", "1MiB", "--runtime",
                      "0.2s", "--target", arena.target, flag, value), flag)
    _no_result(arena)
    arena.check()


@pytest.mark.parametrize("flag", ["--users", "--search-users", "--queue-depth"])
def test_kvcache_threads_capped(arena: Arena, flag: str) -> None:
    """One thread per user: --users 100000 took over 2 GiB before it was refused (the
    fuzz's memory growth at a random seed)."""
    refused(arena.run("infer", "kvcache", "tiny", "--capacity", "8MiB", "--duration", "1s",
                      "--target", arena.target, flag, "100000"), flag)
    _no_result(arena)
    arena.check()


def test_read_threads_capped(arena: Arena) -> None:
    refused(arena.run("train", "tiny", "--target", arena.target, "--read-threads", "100000"),
            "--read-threads")
    _no_result(arena)


@pytest.mark.parametrize("which", ["target", "results-dir", "jobfile"])
def test_name_too_long(arena: Arena, which: str) -> None:
    long = arena.inputs / ("x" * 300) / "y"
    if which == "target":
        res = arena.run(*IO, "--target", long)
    elif which == "results-dir":  # (arena.run would add its own --results-dir)
        from click.testing import CliRunner

        from iobench.cli import cli

        res = CliRunner().invoke(cli, [*IO, "--target", str(arena.target), "--results-dir",
                                       str(long)])
    else:
        res = arena.run("fio", long, "--target", arena.target)
    refused(res)
    assert "name too long" in res.stderr.lower()
    arena.check()


def test_corrupt_marker_for_a_run(arena: Arena) -> None:
    assert arena.run(*IO, "--target", arena.target).exit_code == 0
    (arena.target / ".iobench").write_bytes(b"\x00\xff{")
    before = sorted(p.name for p in arena.results.iterdir())
    refused(arena.run(*IO, "--target", arena.target), "marker is corrupt")
    assert sorted(p.name for p in arena.results.iterdir()) == before
    arena.check()


def test_jobs_past_open_files_limit(tmp_path: Path) -> None:
    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    p = subprocess.run([sys.executable, "-m", "iobench", *IO, "--jobs", "100", "--target",
                        str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")],
                       capture_output=True, text=True, preexec_fn=low, check=False)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "open-files limit (128" in lines[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("damage", ["no-kind", "bytes-str", "cache-str", "metrics-list",
                                    "not-object"])
def test_report_damaged_result(arena: Arena, damage: str) -> None:
    assert arena.run(*IO, "--target", arena.target).exit_code == 0
    d = json.loads(next(arena.results.glob("*/result.json")).read_text())
    if damage == "no-kind":
        del d["kind"]
    elif damage == "bytes-str":
        d["phases"][0]["bytes"] = "many"
    elif damage == "cache-str":
        d["cache"] = "cold"
    elif damage == "metrics-list":
        d["metrics"] = [1, 2]
    else:
        d = [d]
    bad = arena.inputs / "bad.json"
    bad.write_text(json.dumps(d))
    out = arena.inputs / "out.csv"
    refused(arena.run("report", bad, "--csv", out, "--html", arena.inputs / "o.html"))
    assert not out.exists()
    assert not (arena.inputs / "o.html").exists()
    refused(arena.run("compare", bad, bad))
