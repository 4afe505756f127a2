"""`iobench datagen` end to end: bad input (exit 2), sizing, --what-if, resume, corrupt-file
detection (exit 1), kill -9 mid-run + resume + --verify, results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iobench import results
from iobench.kinds.datagen.writer import load_manifest


def _files(target: Path, name: str) -> list[Path]:
    return sorted(p for p in (target / "datagen" / name).iterdir() if p.name != "manifest.json")


@pytest.mark.parametrize(("args", "message"), [
    (["unet3", "--files", "1"], "did you mean 'unet3d'"),
    (["tiny", "--files", "0"], "--files: 0 must be >= 1"),
    (["tiny", "--jobs", "0"], "--jobs: 0 must be >= 1"),
    (["tiny", "--accelerators", "0"], "--accelerators: 0 must be >= 1"),
    (["tiny", "--files", "2", "--dataset-size", "1MiB"], "give only one way"),
    (["tiny", "--dataset-size", "0"], "must be greater than zero"),
    (["tiny", "--dataset-size", "-5MB"], "cannot parse '-5MB'"),
    (["tiny", "--accelerator", "h10", "--what-if"], "did you mean 'h100'"),
    (["tiny", "--content", "ones"], "'ones' is not one of"),
])
def test_bad_flags_exit_2(tmp_path: Path, run, args: list[str], message: str) -> None:
    r = run(*args, "--target", str(tmp_path / "t"))
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(("extra", "message"), [
    ({"format": "parquet"}, "unknown format 'parquet'"),
    ({"record_size": 0, "record_size_stdev": 0}, "record_size: must be > 0"),
    ({"record_size": 0, "record_size_stdev": "1MiB"}, "given without a mean"),
    ({"record_size": "-4k"}, "cannot parse '-4k'"),
    ({"samples_per_file": 0}, "samples_per_file: 0 must be >= 1"),
    ({"recordsize": "4k"}, "did you mean 'record_size'"),
    ({"record_size_min": "1MiB", "record_size_max": "4k"}, "clip"),
])
def test_bad_yaml_exit_2(tmp_path: Path, run, spec_file, extra: dict, message: str) -> None:
    fmt = extra.pop("format", "raw")
    p = spec_file(tmp_path, "bad", fmt, **extra)
    r = run(str(p), "--target", str(tmp_path / "t"))
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_indexed_needs_seq_len(tmp_path: Path, run) -> None:
    p = tmp_path / "tok.yaml"
    p.write_text("format: indexed\nseq_len: 0\n")
    r = run(str(p), "--target", str(tmp_path / "t"))
    assert r.exit_code == 2
    assert "seq_len > 0" in r.output


def test_free_space_short_refused_before_writing(tmp_path: Path, run, monkeypatch) -> None:
    from iobench.target import Target

    monkeypatch.setattr(Target, "free_bytes", lambda self: 1000)
    r = run("tiny", "--target", str(tmp_path / "t"))
    assert r.exit_code == 2
    assert "only 1000 B (1000 bytes) are free" in r.output
    assert not list((tmp_path / "t" / "datagen" / "tiny").glob("*.raw"))


def test_generate_resume_grow_shrink(tmp_path: Path, run) -> None:
    t = tmp_path / "t"
    r = run("tiny", "--target", str(t), "--files", "3", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["kind"] == "datagen"
    ph = res["phases"][0]
    assert ph["name"] == "datagen"
    assert ph["direction"] == "write"
    assert res["metrics"]["files"] == 3
    on_disk = sum(p.stat().st_size for p in _files(t, "tiny"))
    assert res["metrics"]["bytes"] == ph["bytes"] == on_disk
    assert res["metrics"]["gb_per_s"] > 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in _files(t, "tiny")}
    # re-run with more files: the 3 complete shards are skipped, 2 written
    r = run("tiny", "--target", str(t), "--files", "5", "--json")
    m = json.loads(r.stdout)["metrics"]
    assert (m["files"], m["files_skipped"], m["files_total"]) == (2, 3, 5)
    for p in _files(t, "tiny"):
        if p.name in mtimes:
            assert p.stat().st_mtime_ns == mtimes[p.name]
    # fewer files: the extra shards are removed
    r = run("tiny", "--target", str(t), "--files", "2", "--json")
    assert json.loads(r.stdout)["metrics"]["files"] == 0
    assert [p.name for p in _files(t, "tiny")] == [
        "tiny-000000.idx", "tiny-000000.raw", "tiny-000001.idx", "tiny-000001.raw"]


def test_refuses_other_workload_and_changed_spec(tmp_path: Path, run, spec_file) -> None:
    t = tmp_path / "t"
    assert run("tiny", "--target", str(t), "--files", "1").exit_code == 0
    other = spec_file(tmp_path, "other", "npz", files=1)
    r = run(str(other), "--target", str(t))
    assert r.exit_code == 2
    assert "already holds the tiny data set" in r.output
    assert "--force" in r.output
    assert run(str(other), "--target", str(t), "--force").exit_code == 0
    r = run("tiny", "--target", str(t), "--files", "1", "--seed", "7")
    assert r.exit_code == 2
    assert "other parameters" in r.output
    r = run("tiny", "--target", str(t), "--files", "1", "--seed", "7", "--force", "--json")
    assert r.exit_code == 0
    assert load_manifest(t / "datagen" / "tiny")["identity"]["seed"] == 7


def test_verify_names_corrupt_and_missing_files(tmp_path: Path, run) -> None:
    t = tmp_path / "t"
    assert run("tiny", "--target", str(t), "--files", "4").exit_code == 0
    assert run("tiny", "--target", str(t), "--verify").exit_code == 0
    bad = t / "datagen" / "tiny" / "tiny-000002.raw"
    with open(bad, "r+b") as f:  # flip one byte in the middle
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0x40]))
    (t / "datagen" / "tiny" / "tiny-000003.idx").unlink()
    r = run("tiny", "--target", str(t), "--verify")
    assert r.exit_code == 1
    assert "tiny-000002.raw (checksum mismatch" in r.output
    assert "tiny-000003.idx (missing)" in r.output
    assert "2 of 8 files bad" in r.output
    saved = [results.load(p) for p in (tmp_path / "results").iterdir()]
    failed = [s for s in saved if s.status == "failed"]
    assert len(failed) == 1
    assert failed[0].phases[0]["name"] == "verify"
    assert failed[0].metrics["files_bad"] == 2
    # the next datagen run rewrites exactly the bad shards, then verify passes
    r = run("tiny", "--target", str(t), "--files", "4", "--json")
    m = json.loads(r.stdout)["metrics"]
    assert (m["files"], m["files_skipped"]) == (2, 2)
    assert run("tiny", "--target", str(t), "--verify").exit_code == 0


def test_kill_9_mid_run_then_resume_and_verify(tmp_path: Path, spec_file) -> None:
    spec = spec_file(tmp_path, "kill", "npz", record_size="2MiB", record_size_stdev=0,
                     samples_per_file=1, files=64)
    t = tmp_path / "t"
    d = t / "datagen" / "kill"
    cmd = [sys.executable, "-m", "iobench", "datagen", str(spec), "--target", str(t),
           "--jobs", "1", "--results-dir", str(tmp_path / "res")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if d.is_dir() and len(list(d.glob("kill-*.npz"))) >= 4:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "datagen finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # parent and its worker processes, mid-run
    assert proc.wait() == -signal.SIGKILL
    m = load_manifest(d)
    assert m is not None  # written atomically: never a torn file
    done = sum(e["complete"] for e in m["entries"].values())
    assert done < 64
    r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)["metrics"]
    assert metrics["files"] + metrics["files_skipped"] == 64
    assert metrics["files"] >= 1
    assert not list(d.glob(".*tmp*"))
    r = subprocess.run(cmd + ["--verify"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_what_if_auto_size_writes_nothing(tmp_path: Path, run) -> None:
    t = tmp_path / "t"
    r = run("unet3d", "--target", str(t), "--auto-size", "--host-ram", "16GiB",
            "--accelerators", "8", "--what-if", "--json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    # 5 x 16 GiB / 146.6 MB = 586 files; 500 steps x 7 x 8 = 28000 samples decides
    assert plan["files"] == 28000
    assert "steps rule decides" in plan["sizing"][-1]
    assert plan["steps_per_epoch"] == 500
    assert "probe" in plan["write_speed_source"]
    assert plan["seconds_estimate"] > 0
    assert not list((t / "datagen" / "unet3d").iterdir())
    r = run("unet3d", "--target", str(t), "--auto-size", "--host-ram", "1TiB",
            "--what-if", "--json")
    plan = json.loads(r.stdout)
    assert plan["files"] == 37424  # the fewest whose real sizes hold 5 TiB
    assert "RAM rule decides" in plan["sizing"][-1]


def test_what_if_uses_last_datagen_speed(tmp_path: Path, run, monkeypatch) -> None:
    import importlib

    dg = importlib.import_module("iobench.kinds.datagen.run")  # the module, not run()

    t = tmp_path / "t"
    assert run("tiny", "--target", str(t)).exit_code == 0
    r = run("tiny", "--target", str(t), "--dataset-size", "10MiB", "--what-if", "--json")
    plan = json.loads(r.stdout)
    assert plan["files"] == 21  # 20 x ~8 x 64 KiB falls short of 10 MiB by the real sizes
    assert "probe" in plan["write_speed_source"]  # a 4 MiB run is too small to trust
    monkeypatch.setattr(dg, "MIN_SPEED_BYTES", 1 << 20)
    r = run("tiny", "--target", str(t), "--dataset-size", "10MiB", "--what-if", "--json")
    plan = json.loads(r.stdout)
    assert plan["write_speed_source"].startswith("last datagen on this target (tiny")
    r = run("tiny", "--target", str(t), "--what-if")
    assert "datagen plan: tiny (nothing written)" in r.output


def test_bf16_and_zeros_content(tmp_path: Path, run) -> None:
    import zlib

    t = tmp_path / "t"
    assert run("tiny", "--target", str(t), "--files", "1", "--content", "zeros").exit_code == 0
    data = (t / "datagen" / "tiny" / "tiny-000000.raw").read_bytes()
    assert data == bytes(len(data))
    r = run("tiny", "--target", str(t), "--files", "1", "--content", "bf16")
    assert r.exit_code == 2
    assert "other parameters" in r.output
    assert run("tiny", "--target", str(t), "--files", "1", "--content", "bf16",
               "--force").exit_code == 0
    data = (t / "datagen" / "tiny" / "tiny-000000.raw").read_bytes()
    ratio = len(zlib.compress(data, 6)) / len(data)
    assert 0.5 < ratio < 0.95  # compressible like real bf16 weights, not like zeros
