"""Containment traps: each plants one way out of the target (a name from YAML, a forged
marker or manifest, a symlink or hard link, an fio option) beside canary files, runs the
real command and checks that nothing outside the target changed or appeared."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.safety.conftest import Arena, refused

TRAIN = """\
name: {name}
format: raw
record_size: 4KiB
samples_per_file: 2
files: 2
batch_size: 2
read_threads: 1
"""
CKPT = """\
name: {name}
architecture: {{layers: 2, hidden: 64, ffn: 128, heads: 2, kv_heads: 2, vocab: 128}}
parallelism: {{tp: 1, pp: 1, dp: 1, zero: 0}}
layout: deepspeed
"""
INFER = """\
name: {name}
model: tiny
context_length: 128
shard_size: 1MiB
"""


def bad_names(arena: Arena) -> list[str]:
    return ["../outside/dir", "../../x", str(arena.outside / "dir"), "a/b", "..", ".",
            ".hidden", "x\\0y", ""]


NAME_CASES = ["dotdot-dir", "dotdot2", "absolute", "slash", "dotdot", "dot", "hidden",
              "nul", "empty"]


def _yaml(arena: Arena, template: str, name: str) -> Path:
    p = arena.inputs / "w.yaml"
    p.write_text(template.format(name=json.dumps(name)))
    return p


# --- names from YAML -----------------------------------------------------------------------
@pytest.mark.parametrize("case", NAME_CASES)
def test_training_name_datagen(arena: Arena, case: str) -> None:
    name = bad_names(arena)[NAME_CASES.index(case)]
    res = arena.run("datagen", _yaml(arena, TRAIN, name), "--target", arena.target,
                    "--jobs", 1)
    refused(res, "name")
    arena.check()


@pytest.mark.parametrize("case", NAME_CASES)
def test_training_name_train(arena: Arena, case: str) -> None:
    name = bad_names(arena)[NAME_CASES.index(case)]
    res = arena.run("train", _yaml(arena, TRAIN, name), "--target", arena.target,
                    "--epochs", 1)
    refused(res, "name")
    arena.check()


@pytest.mark.parametrize("case", NAME_CASES)
def test_checkpoint_model_name(arena: Arena, case: str) -> None:
    name = bad_names(arena)[NAME_CASES.index(case)]
    res = arena.run("checkpoint", _yaml(arena, CKPT, name), "--target", arena.target,
                    "--count", 1, "--no-space-check")
    refused(res, "name")
    assert (arena.outside / "dir" / "inner.txt").exists()
    arena.check()


@pytest.mark.parametrize("case", NAME_CASES)
def test_inference_model_name(arena: Arena, case: str) -> None:
    name = bad_names(arena)[NAME_CASES.index(case)]
    res = arena.run("infer", "load", _yaml(arena, INFER, name), "--target", arena.target)
    refused(res, "name")
    arena.check()


# --- forged markers --------------------------------------------------------------------------
def _marked(arena: Arena) -> Path:
    res = arena.run("io", "seqwrite", "--target", arena.target, "--size", "64k",
                    "--block-size", "64k", "--cache", "allow")
    assert res.exit_code == 0, res.output
    return arena.target / ".iobench"


# Every forged value stays inside the tmp arena even when read letter by letter, as
# iobench before the marker check did: a '/' here made old code remove the root directory.
# Never put '/' (or a path outside tmp_path) in a trap: the suite is run against old code.
FORGED = {
    "string": lambda a: {"iobench": 2, "created": "io.."},
    "dotdot": lambda a: {"iobench": 2, "created": ["../outside"]},
    "absolute": lambda a: {"iobench": 2, "created": [str(a.outside)]},
    "dot": lambda a: {"iobench": 2, "created": ["."]},
    "dotdot-record": lambda a: {"iobench": 2, "created": [
        {"name": "..", "type": "dir", "dev": 1, "ino": 1}]},
    "nested": lambda a: {"iobench": 2, "created": [{"name": {"x": 1}}]},
    "not-object": lambda a: ["io"],
    "bad-ino": lambda a: {"iobench": 2, "created": [
        {"name": "io", "type": "dir", "dev": 1, "ino": "x"}]},
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_clean_refuses_forged_marker(arena: Arena, case: str) -> None:
    marker = _marked(arena)
    marker.write_text(json.dumps(FORGED[case](arena)))
    before = sorted(p.name for p in arena.target.iterdir())
    refused(arena.run("clean", "--target", arena.target), "marker is corrupt")
    assert sorted(p.name for p in arena.target.iterdir()) == before  # nothing deleted
    arena.check()


@pytest.mark.parametrize("text", [b"\xff\xfe garbage", b"{not json", b"[1, 2"])
def test_clean_refuses_unreadable_marker(arena: Arena, text: bytes) -> None:
    marker = _marked(arena)
    marker.write_bytes(text)
    refused(arena.run("clean", "--target", arena.target), "marker is corrupt")
    assert (arena.target / "io").is_dir()
    arena.check()


def test_clean_keeps_entry_whose_identity_differs(arena: Arena) -> None:
    _marked(arena)
    shutil.rmtree(arena.target / "io")
    (arena.target / "io").mkdir()  # a user's directory of the same name
    (arena.target / "io" / "mine.txt").write_text("user data")
    res = arena.run("clean", "--target", arena.target)
    assert res.exit_code == 0, res.output
    assert (arena.target / "io" / "mine.txt").read_text() == "user data"
    assert "not provably iobench's" in res.output
    arena.check()


def test_clean_keeps_legacy_entries(arena: Arena) -> None:
    arena.target.mkdir()
    (arena.target / "data").mkdir()
    (arena.target / "data" / "f").write_text("x")
    (arena.target / ".iobench").write_text(json.dumps({"iobench": 1, "created": ["data"]}))
    res = arena.run("clean", "--target", arena.target)
    assert res.exit_code == 0, res.output
    assert (arena.target / "data" / "f").exists()
    arena.check()


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_marker_link_refused(arena: Arena, kind: str) -> None:
    arena.target.mkdir()
    m = arena.target / ".iobench"
    if kind == "symlink":
        m.symlink_to(arena.canary)
    else:
        os.link(arena.canary, m)
        arena.snapshot = arena._state()  # the canary's link count is ours to raise
    for args in (["io", "seqwrite", "--target", arena.target, "--size", "64k", "-b", "64k",
                  "--cache", "allow"], ["clean", "--target", arena.target]):
        res = arena.run(*args)
        refused(res)
    arena.check()


# --- symlinks and hard links inside the target ----------------------------------------------
IO_ARGS = ["--size", "64k", "--block-size", "64k", "--cache", "allow"]


@pytest.mark.parametrize("engine", ["native", "fio"])
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_io_file_link(arena: Arena, engine: str, kind: str) -> None:
    if engine == "fio" and shutil.which("fio") is None:
        pytest.skip("fio is not installed")
    _marked(arena)
    job = arena.target / "io" / "job0.dat"
    job.unlink()
    victim = arena.outside / "dir" / "job0.dat"
    if kind == "symlink":
        job.symlink_to(victim)
    else:
        os.link(victim, job)
        arena.snapshot = arena._state()
    for pattern in ("seqwrite", "randwrite", "seqread"):
        res = arena.run("io", pattern, "--target", arena.target, "--engine", engine, *IO_ARGS)
        refused(res, "job0.dat")
    arena.check()


@pytest.mark.parametrize("sub", ["io", "fio", "datagen", "checkpoint", "train", "infer"])
def test_top_level_dir_symlink(arena: Arena, sub: str) -> None:
    _marked(arena)
    if sub == "train":  # a data set to train on, so the run reaches its checkpoint writer
        res = arena.run("datagen", "tiny", "--target", arena.target, "--jobs", 1, "--force")
        assert res.exit_code == 0, res.output
    p = arena.target / sub
    if p.exists():
        shutil.rmtree(p)
    p.symlink_to(arena.outside / "dir")
    cmds = {
        "io": ["io", "seqwrite", "--target", arena.target, *IO_ARGS],
        "fio": None,
        "datagen": ["datagen", "tiny", "--target", arena.target, "--jobs", 1, "--force"],
        "checkpoint": ["checkpoint", "tiny", "--target", arena.target, "--count", 1,
                       "--no-space-check"],
        "train": ["train", "tiny", "--target", arena.target, "--epochs", 1,
                  "--checkpoint-every", 1, "--checkpoint-size", "64k"],
        "infer": ["infer", "randread", "--target", arena.target, "--file-size", "1m",
                  "--files", 1, "--runtime", "0.2s", "--block-size", "4k",
                  "--queue-depth", "1", "--cache", "allow"],
    }
    args = cmds[sub]
    if args is None:
        job = arena.inputs / "j.fio"
        job.write_text("[j]\nrw=write\nsize=64k\nfilename=x.dat\n")
        args = ["fio", job, "--target", arena.target]
    refused(arena.run(*args), "link")
    res = arena.run("clean", "--target", arena.target)
    assert res.exit_code == 0, res.output
    arena.check()


def test_checkpoint_model_dir_symlink_is_replaced_not_followed(arena: Arena) -> None:
    res = arena.run("checkpoint", "tiny", "--target", arena.target, "--count", 1,
                    "--no-space-check")
    assert res.exit_code == 0, res.output
    d = arena.target / "checkpoint" / "tiny"
    shutil.rmtree(d)
    d.symlink_to(arena.outside / "dir")
    res = arena.run("checkpoint", "tiny", "--target", arena.target, "--count", 1,
                    "--no-space-check")
    assert res.exit_code == 0, res.output  # the link (ours to replace) went, not its files
    assert d.is_dir()
    assert not d.is_symlink()
    arena.check()


def test_datagen_subdir_symlink(arena: Arena) -> None:
    res = arena.run("datagen", "tiny", "--target", arena.target, "--jobs", 1)
    assert res.exit_code == 0, res.output
    d = arena.target / "datagen" / "tiny"
    shutil.rmtree(d)
    d.symlink_to(arena.outside / "dir")
    refused(arena.run("datagen", "tiny", "--target", arena.target, "--jobs", 1),
            "symbolic link")
    arena.check()


# --- forged data-set manifests ---------------------------------------------------------------
@pytest.mark.parametrize("forged", ["../../../outside/canary.txt", "ABS", "a/b", ".x"])
def test_datagen_forged_manifest(arena: Arena, forged: str) -> None:
    res = arena.run("datagen", "tiny", "--target", arena.target, "--jobs", 1)
    assert res.exit_code == 0, res.output
    d = arena.target / "datagen" / "tiny"
    mpath = next(d.glob("*manifest*.json"))
    m = json.loads(mpath.read_text())
    name = str(arena.canary) if forged == "ABS" else forged
    m["entries"][name] = {"name": name, "shard": 999, "size": 1, "crc32c": 0,
                          "complete": True}
    mpath.write_text(json.dumps(m))
    # --files 1: shards beyond it (the forged one) would be removed
    refused(arena.run("datagen", "tiny", "--target", arena.target, "--jobs", 1,
                      "--files", 1), "manifest")
    arena.check()


def test_datagen_forged_rank_manifest(arena: Arena) -> None:
    res = arena.run("datagen", "tiny", "--target", arena.target, "--jobs", 1)
    assert res.exit_code == 0, res.output
    d = arena.target / "datagen" / "tiny"
    (d / ".manifest-rank1.json").write_text(json.dumps(
        {"../../../outside/canary.txt": {"shard": 999, "complete": True}}))
    refused(arena.run("datagen", "tiny", "--target", arena.target, "--jobs", 1,
                      "--files", 1), "manifest")
    arena.check()


# --- fio job files ------------------------------------------------------------------------------
def fio_traps(a: Arena) -> dict[str, str]:
    out = a.outside
    return {
        "exec_prerun": f"exec_prerun=touch {out}/pwned\n",
        "exec_postrun": f"exec_postrun=touch {out}/pwned\n",
        "write_bw_log": "write_bw_log=../../outside/bw\n",
        "write_lat_log": "write_lat_log=../..\n",
        "write_iops_log": f"write_iops_log={out}/iops\n",
        "write_hist_log": f"write_hist_log={out}/h\n",
        "write_iolog": f"write_iolog={out}/iolog\n",
        "read_iolog": f"read_iolog={a.canary}\n",
        "filename": f"filename={a.canary}\n",
        "filename-list": f"filename=ok.dat:{a.canary}\n",
        "directory": "directory=../../outside\n",
        "opendir": f"opendir={out}\n",
        "filename_format": "filename_format=../../outside/$jobname.$jobnum\n",
        "ioengine-exec": "ioengine=exec\n",
        "ioengine-external": f"ioengine=external:{out}/x.so\n",
        "ioengine-sg": "ioengine=sg\n",
        "mem": f"mem=mmap:{out}/buf\n",
        "env": "filename=${HOME}/x\n",
        "ioscheduler": "ioscheduler=none\n",
        "cgroup": "cgroup=iobench-test\n",
        "profile": "profile=tiobench\n",
        "replay_redirect": "replay_redirect=/dev/sda\n",
        "merge_blktrace": f"merge_blktrace_file={out}/m\n",
        "upper-case": f"EXEC_PRERUN=touch {out}/pwned\n",
    }


FIO_CASES = [
    "exec_prerun", "exec_postrun", "write_bw_log", "write_lat_log", "write_iops_log",
    "write_hist_log", "write_iolog", "read_iolog", "filename", "filename-list", "directory",
    "opendir", "filename_format", "ioengine-exec", "ioengine-external", "ioengine-sg", "mem",
    "env", "ioscheduler", "cgroup", "profile", "replay_redirect", "merge_blktrace",
    "upper-case"]


@pytest.mark.parametrize("case", FIO_CASES)
def test_fio_option_trap(arena: Arena, case: str, have_fio: None) -> None:
    job = arena.inputs / "trap.fio"
    job.write_text("[global]\nsize=64k\nbs=4k\n[j]\nrw=write\n" + fio_traps(arena)[case])
    refused(arena.run("fio", job, "--target", arena.target), "trap.fio:")
    arena.check()


def test_fio_trap_in_included_file(arena: Arena, have_fio: None) -> None:
    inc = arena.inputs / "inc.fio"
    inc.write_text(f"exec_prerun=touch {arena.outside}/pwned\n")
    job = arena.inputs / "main.fio"
    job.write_text("[j]\nrw=write\nsize=64k\ninclude inc.fio\n")
    arena.snapshot = arena._state()
    refused(arena.run("fio", job, "--target", arena.target), "inc.fio:1")
    arena.check()


def test_fio_job_name_path(arena: Arena, have_fio: None) -> None:
    job = arena.inputs / "trap.fio"
    job.write_text("[../../outside/job]\nrw=write\nsize=64k\n")
    arena.snapshot = arena._state()
    refused(arena.run("fio", job, "--target", arena.target), "job name")
    arena.check()


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_fio_file_link_in_target(arena: Arena, kind: str, have_fio: None) -> None:
    job = arena.inputs / "ok.fio"
    job.write_text("[j]\nrw=write\nsize=64k\nfilename=data.bin\n")
    arena.snapshot = arena._state()
    res = arena.run("fio", job, "--target", arena.target)
    assert res.exit_code == 0, res.output
    data = arena.target / "fio" / "data.bin"
    data.unlink()
    if kind == "symlink":
        data.symlink_to(arena.canary)
    else:
        os.link(arena.canary, data)
        arena.snapshot = arena._state()
    refused(arena.run("fio", job, "--target", arena.target), "data.bin")
    arena.check()


def test_fio_ioscheduler_allowed_with_force_only(arena: Arena, have_fio: None) -> None:
    from iobench.kinds.fio.policy import check_paths

    wd = arena.target / "fio"
    check_paths("[j]\nioscheduler=none\n", Path("j.fio"), wd, force=True)
    with pytest.raises(Exception, match="pass --force"):
        check_paths("[j]\nioscheduler=none\n", Path("j.fio"), wd, force=False)
    with pytest.raises(Exception, match="even with --force"):
        check_paths("[j]\nexec_prerun=true\n", Path("j.fio"), wd, force=True)


# --- report --csv -----------------------------------------------------------------------------
def test_report_csv_to_directory_or_unwritable(arena: Arena, tmp_path: Path) -> None:
    res = arena.run("io", "seqwrite", "--target", arena.target, *IO_ARGS)
    assert res.exit_code == 0, res.output
    result = next(arena.results.glob("*/result.json"))
    arena.snapshot = arena._state()
    refused(arena.run("report", result, "--csv", arena.outside / "dir"), "--csv")
    refused(arena.run("report", result, "--csv", arena.outside / "nodir" / "x.csv"), "--csv")
    refused(arena.run("report", result, "--html", arena.outside / "dir"), "--html")
    dev = arena.outside / "null"  # a character device (1, 3) of our own, in tmp
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    arena.snapshot = arena._state()
    refused(arena.run("report", result, "--csv", dev), "--csv")
    assert stat.S_ISCHR(dev.lstat().st_mode)
    arena.check()
    assert not [p for p in arena.base.rglob(".*tmp*")]


# --- system directories ---------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/etc", "/usr/lib", "/boot", "/proc/1", "/dev/shm",
                                  "/sys/kernel"])
def test_system_directories_refused_even_with_force(path: str) -> None:
    from iobench import target
    from iobench.errors import TargetError

    with pytest.raises(TargetError, match="--target"):
        target._refuse_special(Path(path))  # the check prepare() runs first: writes nothing


# --- DLIO configs: model.name becomes a directory ------------------------------------------------
DLIO = """\
model: {{name: {name}, type: cnn, model_size: 4096}}
framework: pytorch
workflow: {{generate_data: False, train: True, checkpoint: False}}
dataset: {{format: npz, num_files_train: 2, num_samples_per_file: 1,
          record_length_bytes: 4096}}
reader: {{batch_size: 1, read_threads: 1}}
train: {{epochs: 1, computation_time: 0.001}}
"""


@pytest.mark.parametrize("command", ["datagen", "train", "checkpoint"])
@pytest.mark.parametrize("case", ["dotdot-dir", "absolute", "slash", "hidden"])
def test_dlio_model_name(arena: Arena, command: str, case: str) -> None:
    name = bad_names(arena)[NAME_CASES.index(case)]
    p = arena.inputs / "dlio.yaml"
    p.write_text(DLIO.format(name=json.dumps(name)))
    extra = ["--what-if"] if command == "checkpoint" else []
    res = arena.run(command, "--dlio-config", p, "--target", arena.target, *extra)
    refused(res, "name")
    arena.check()
