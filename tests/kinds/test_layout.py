"""Every kind follows one layout: spec, run (no click, no rich), metrics, render, cli."""

import importlib
import subprocess
import sys

import pytest

from iobench import cli, kinds
from iobench.kinds.base import Metrics

PRESENT = [k for k in kinds.KINDS if importlib.util.find_spec(kinds.package(k)) is not None]


def test_every_kind_of_the_table_is_a_package():
    missing = sorted(set(kinds.KINDS) - set(PRESENT))
    assert missing == [], f"kinds without a package: {missing}"


@pytest.mark.parametrize("kind", PRESENT)
def test_run_imports_neither_click_nor_rich(kind):
    code = (f"import sys, {kinds.package(kind)}.run\n"
            "bad = [m for m in ('click', 'rich') if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("kind", PRESENT)
def test_declarations_commands_and_renderers(kind):
    decl = kinds.metrics(kind)
    assert isinstance(decl, Metrics)
    assert decl.kind == kind
    assert callable(getattr(kinds.module(kind, "render"), "tables", None))
    if kind == "suite":
        return
    mod = kinds.module(kind, "cli")
    assert mod is not None
    assert callable(mod.spec_from_params)
    assert f"{kinds.package(kind)}.cli" in cli.KIND_COMMANDS
    run = kinds.module(kind, "run")
    assert callable(run.run)
    assert callable(run.execute)
