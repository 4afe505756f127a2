"""Property-based fuzz (hypothesis) of every command's flags and every YAML kind: random
keys, types, huge/negative/NaN numbers, random bytes, deep nesting, odd paths.

Whatever the input: no traceback; exit 0 (a valid run), 1 (a run that failed, with one
`error:` line) or 2 with exactly one `error:` line and no result written; and nothing
outside the target changes. Examples run in-process (Click's CliRunner) against real
files; the counts are printed by test_fuzz_counts (run with -s to see them)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iobench.cli import cli
from tests.safety.conftest import Arena
from tests.safety.test_containment import CKPT, INFER, TRAIN

COUNTS: dict[str, int] = {}
SLOWEST: list[Any] = [0.0, None]
# modest in the default suite; IOBENCH_FUZZ_SCALE=10 (and a random seed) for a long hunt
SCALE = float(os.environ.get("IOBENCH_FUZZ_SCALE", "1"))
FLAG_EXAMPLES = int(400 * SCALE)
YAML_EXAMPLES = int(60 * SCALE)  # per YAML kind (5 kinds)
SETTINGS = dict(deadline=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def _commands() -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for n, c in cmd.commands.items():
                walk(c, [*path, n])
        else:
            out[" ".join(path)] = cmd

    walk(cli, [])
    return out


COMMANDS = _commands()

# A fast, valid base for each command: a fuzzed flag is added after it (the last wins).
BASE: dict[str, list[str]] = {
    "io": ["io", "seqwrite", "--size", "64k", "-b", "64k", "--cache", "allow"],
    "fio": ["fio", "{job}"],
    "datagen": ["datagen", "tiny", "--jobs", "1", "--files", "1"],
    "train": ["train", "tiny", "--epochs", "1", "--max-steps", "2", "--probe-steps", "2"],
    "checkpoint": ["checkpoint", "tiny", "--what-if"],
    "infer randread": ["infer", "randread", "--file-size", "256k", "--files", "1",
                       "--block-size", "4k", "--queue-depth", "1", "--runtime", "0.1s",
                       "--cache", "allow"],
    "infer load": ["infer", "load", "tiny", "--what-if"],
    "infer kvcache": ["infer", "kvcache", "tiny", "--requests", "2", "--capacity", "8MiB",
                      "--no-search", "--duration", "1s", "--users", "1"],
    "infer vector": ["infer", "vector", "--index-size", "1MiB", "--hops", "2",
                     "--beam-width", "2", "--concurrency", "1", "--runtime", "0.2s"],
    "run": ["run", "quick", "--dry-run"],
    "report": ["report", "{result}"],
    "compare": ["compare", "{result}", "{result}"],
    "sysinfo": ["sysinfo"],
    "clean": ["clean"],
}

NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=0),
    st.integers(min_value=2**40, max_value=2**90),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "1e300", "-1", "-0.5", "1e99",
                     "0x10", "1_000", "٣", "9" * 400, "1e-400", ""]),
)
NOT_A_NUMBER = st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs"),
                                              blacklist_characters="\x00"), max_size=30)
SIZES = st.one_of(NUMBERS, st.sampled_from(["1e400", "8EiB", "9EiB", "-4k", "4kk", "1.5b",
                                            "1e30TiB", "nanKiB", "inf", "0x1k"]),
                  NOT_A_NUMBER.map(lambda s: s + "q"))
DURATIONS = st.one_of(NUMBERS.filter(lambda v: not (isinstance(v, int) and v == 0)),
                      st.sampled_from(["1e300", "-1s", "nan", "infs", "1e12h", "5x", "0x5"]),
                      NOT_A_NUMBER.map(lambda s: s + "q"))
# Never a real file or directory outside the tmp arena, because this suite is also run
# against old iobench to show it fails there: with --force any writable directory gets
# iobench's entries, and old `report --csv /dev/null` replaced the device with a file.
# (tests/safety/test_containment.py checks /, /etc, ... and devices without writing.)
ODD_PATHS = st.sampled_from([
    "", "x\x00y", "a" * 300, "/" + "b" * 300 + "/c", "/proc/self/x", "/sys/kernel",
    "\udcff\udcfe", "~nobody_xyz/x", "-", "sub/../../in/x", ".",
])


def _value(param: click.Parameter) -> st.SearchStrategy[Any]:
    t = param.type
    if isinstance(t, click.types.BoolParamType):
        return st.just(None)  # a flag: present
    name = type(t).__name__
    if name in ("SizeType",):
        return SIZES
    if name in ("DurationType",):
        return DURATIONS
    if name == "ListType":
        return st.one_of(SIZES, st.lists(SIZES, min_size=1, max_size=3).map(
            lambda v: ",".join(map(str, v))), st.just(","), st.just(",,,"))
    if isinstance(t, click.IntRange | click.FloatRange) or t is click.INT:
        return NUMBERS
    if isinstance(t, click.Choice):
        return st.one_of(NOT_A_NUMBER, st.sampled_from(["", "../x", "nan"]))
    if isinstance(t, click.Path):
        return ODD_PATHS
    return st.one_of(NOT_A_NUMBER, ODD_PATHS, NUMBERS)


def _bool_flag(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and (param.is_flag or param.count)


def _flags(cmd: click.Command) -> list[click.Option]:
    skip = {"--target", "--results-dir", "--json", "--wait", "help"}
    return [p for p in cmd.params if isinstance(p, click.Option) and p.opts[0] not in skip
            and p.name != "help"]


@st.composite
def command_line(draw: st.DrawFn) -> tuple[str, list[str]]:
    key = draw(st.sampled_from(sorted(COMMANDS)))
    cmd = COMMANDS[key]
    argv = list(BASE[key])
    flags = _flags(cmd)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        what = draw(st.sampled_from(["flag", "flag", "flag", "argument", "target"])
                    if flags else st.just("argument"))
        if what == "flag":
            p = draw(st.sampled_from(flags))
            opt = draw(st.sampled_from(p.opts + p.secondary_opts))
            if _bool_flag(p):
                argv.append(opt)
            else:
                argv += [opt, str(draw(_value(p)))]
        elif what == "argument":
            i = len(key.split())  # the first positional, replaced by an odd value
            if (any(isinstance(p, click.Argument) for p in cmd.params) and i < len(argv)
                    and not argv[i].startswith("-")):
                argv[i] = draw(st.one_of(ODD_PATHS, NOT_A_NUMBER, st.sampled_from(
                    ["tiny", "../tiny", "llama3-9b", "nope.yaml", "/etc/passwd"])))
        else:
            argv += ["--target", draw(ODD_PATHS)]
    return key, argv


def _run_checked(arena: Arena, key: str, argv: list[str], kind: str) -> None:
    from click.testing import CliRunner

    job = arena.inputs / "ok.fio"
    if not job.exists():
        job.write_text("[j]\nrw=write\nsize=64k\nbs=64k\nfilename=d.bin\n")
    result = _a_result(arena)
    argv = [a.replace("{job}", str(job)).replace("{result}", str(result)) for a in argv]
    if key not in ("report", "compare", "sysinfo") and "--target" not in argv:
        argv += ["--target", str(arena.target)]
    if key not in ("report", "compare", "sysinfo", "clean"):
        argv += ["--results-dir", str(arena.results)]
    before = sorted(arena.results.glob("*")) if arena.results.exists() else []
    cwd = os.getcwd()
    os.chdir(arena.inputs)  # relative paths the fuzz draws land in the arena
    t0 = time.monotonic()
    try:
        res = CliRunner().invoke(cli, argv, catch_exceptions=True)
    finally:
        os.chdir(cwd)
    took = time.monotonic() - t0
    if took > SLOWEST[0]:
        SLOWEST[:] = [took, argv]
    COUNTS[kind] = COUNTS.get(kind, 0) + 1
    COUNTS[f"exit {res.exit_code}"] = COUNTS.get(f"exit {res.exit_code}", 0) + 1
    shown = f"{argv!r}\n{res.output[-2000:]}"
    exc = res.exception
    assert exc is None or isinstance(exc, SystemExit), (shown, repr(exc))
    assert "Traceback" not in res.output, shown
    assert res.exit_code in (0, 1, 2), shown
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    if res.exit_code == 2:
        assert len(errors) == 1, shown
        after = sorted(arena.results.glob("*")) if arena.results.exists() else []
        assert after == before, ("a result was written for bad input", shown)
    elif res.exit_code == 1:
        assert len(errors) == 1, shown
    arena.check()


def _a_result(arena: Arena) -> Path:
    p = arena.inputs / "result.json"
    if not p.exists():
        from click.testing import CliRunner

        res = CliRunner().invoke(cli, ["io", "seqwrite", "--size", "64k", "-b", "64k",
                                       "--cache", "allow", "--target",
                                       str(arena.inputs / "t0"), "--results-dir",
                                       str(arena.inputs / "r0")])
        assert res.exit_code == 0, res.output
        p.write_text(next((arena.inputs / "r0").glob("*/result.json")).read_text())
    return p


@settings(max_examples=FLAG_EXAMPLES, **SETTINGS)  # type: ignore[arg-type]
@given(case=command_line())
def test_fuzz_command_flags(arena: Arena, case: tuple[str, list[str]]) -> None:
    key, argv = case
    _run_checked(arena, key, argv, "flags")


# --- YAML kinds ---------------------------------------------------------------------------
LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["1e400", "-1", "../../x", "/abs/path", "1e99", "nan", "9EiB", ""]),
)
JSONISH = st.recursive(LEAF, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)),
    max_leaves=8)

DLIO = """\
model: {name: fuzz-mini, type: cnn, model_size: 4096}
framework: pytorch
workflow: {generate_data: False, train: True, checkpoint: False}
dataset: {format: npz, num_files_train: 2, num_samples_per_file: 1,
          record_length_bytes: 4096}
reader: {batch_size: 1, read_threads: 1}
train: {epochs: 1, computation_time: 0.001}
"""
SUITE = """\
name: fuzz
description: fuzz base
steps:
  - command: io seqwrite
    params: {size: 64k, block-size: 64k}
    criteria: [gb_per_s > 0]
"""

KINDS: dict[str, tuple[str, list[str]]] = {
    "training": (TRAIN.format(name='"fuzz"'), ["train", "{yaml}", "--epochs", "1"]),
    "checkpoint": (CKPT.format(name='"fuzz"'), ["checkpoint", "{yaml}", "--what-if"]),
    "inference": (INFER.format(name='"fuzz"'), ["infer", "load", "{yaml}", "--what-if"]),
    "suite": (SUITE, ["run", "{yaml}", "--dry-run"]),
    "dlio": (DLIO, ["train", "--dlio-config", "{yaml}", "--epochs", "1"]),
}


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def yaml_document(draw: st.DrawFn, base: str) -> bytes:
    how = draw(st.sampled_from(["mutate", "mutate", "mutate", "add", "delete", "bytes",
                                "deep", "random"]))
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "deep":
        n = draw(st.integers(min_value=50, max_value=3000))
        return ("name: x\nrecord_size: " + "[" * n + "]" * n + "\n").encode()
    if how == "random":
        return yaml.safe_dump(draw(JSONISH)).encode("utf-8", "surrogatepass")
    doc = yaml.safe_load(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(_paths(doc)))
        if not where:
            continue
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        if how == "delete":
            del parent[where[-1]]
            break
        if how == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(JSONISH)
        else:
            parent[where[-1]] = draw(JSONISH)
    try:
        return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, ValueError):
        return b"name: [unterminated\n"


def _yaml_case(kind: str) -> Any:
    base, argv = KINDS[kind]

    @settings(max_examples=YAML_EXAMPLES, **SETTINGS)  # type: ignore[arg-type]
    @given(text=yaml_document(base))
    def case(arena: Arena, text: bytes) -> None:
        p = arena.inputs / "fuzz.yaml"
        p.write_bytes(text)
        _run_checked(arena, argv[0], [a.replace("{yaml}", str(p)) for a in argv],
                     f"yaml:{kind}")
    return case


test_fuzz_training_yaml = _yaml_case("training")
test_fuzz_checkpoint_yaml = _yaml_case("checkpoint")
test_fuzz_inference_yaml = _yaml_case("inference")
test_fuzz_suite_yaml = _yaml_case("suite")
test_fuzz_dlio_yaml = _yaml_case("dlio")


def test_fuzz_counts() -> None:
    """Runs last (file order): how many examples ran, all of which passed."""
    total = sum(v for k, v in COUNTS.items() if not k.startswith("exit"))
    print(f"\nfuzz examples run: {total} ({json.dumps(COUNTS, sort_keys=True)}); slowest "
          f"{SLOWEST[0]:.1f} s: {SLOWEST[1]}")
    if COUNTS:  # the fuzz tests ran in this session (not deselected)
        assert COUNTS.get("flags", 0) >= FLAG_EXAMPLES // 2
        assert math.isfinite(total)


pytestmark = pytest.mark.timeout(900)
