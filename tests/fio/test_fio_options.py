"""The job-file policy against the installed fio's own option list: every option whose
name or help mentions files, logs, directories, devices, commands or the host is
classified, and every classified option exists (no typo hides a dangerous one)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from iobench.kinds.fio.policy import ALLOWED_ENGINES, OPTION_CLASSES

WORDS = re.compile(r"file|log|exec|command|dir|script|device|program|path|trace|cgroup|"
                   r"sched|user id|group id|mount|profile|redirect", re.I)


def _options(args: list[str]) -> dict[str, str]:
    out = subprocess.run(["fio", *args], capture_output=True, text=True, check=False).stdout
    opts: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, help_ = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            opts[name.strip()] = help_.strip()
    return opts


@pytest.fixture(scope="module")
def cmdhelp() -> dict[str, str]:
    if shutil.which("fio") is None:
        pytest.skip("fio is not installed")
    opts = _options(["--cmdhelp=all"])
    assert len(opts) > 150  # the parse found fio's list
    return opts


def test_every_file_or_command_option_is_classified(cmdhelp: dict[str, str]) -> None:
    flagged = sorted(n for n, h in cmdhelp.items() if WORDS.search(n) or WORDS.search(h))
    assert len(flagged) > 60
    missing = [n for n in flagged if n not in OPTION_CLASSES]
    assert not missing, f"fio options naming files/commands not classified: {missing}"


def test_every_classified_option_exists(cmdhelp: dict[str, str]) -> None:
    engine_opts: set[str] = set()
    for e in ALLOWED_ENGINES:
        engine_opts |= set(_options([f"--enghelp={e}"]))
    aliases = {"iomem"}  # fio's alias of mem (options.c), not listed by --cmdhelp
    unknown = [n for n in OPTION_CLASSES if n not in cmdhelp and n not in engine_opts
               and n not in aliases]
    assert not unknown, unknown


def test_allowed_engines_options_are_classified(cmdhelp: dict[str, str]) -> None:
    for e in ALLOWED_ENGINES:
        for n, h in _options([f"--enghelp={e}"]).items():
            if WORDS.search(n) or WORDS.search(h):
                assert n in OPTION_CLASSES, (e, n, h)


def test_dangerous_classes() -> None:
    assert OPTION_CLASSES["exec_prerun"] == OPTION_CLASSES["exec_postrun"] == "never"
    assert OPTION_CLASSES["ioscheduler"] == "force"
    for k in ("write_bw_log", "write_lat_log", "write_iops_log", "write_hist_log"):
        assert OPTION_CLASSES[k] == "logpath"
    for k in ("write_iolog", "read_iolog", "filename", "directory", "opendir"):
        assert OPTION_CLASSES[k] in ("path", "paths")
    assert "exec" not in ALLOWED_ENGINES
