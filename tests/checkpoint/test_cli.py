"""The checkpoint command on real files (KiB-MiB): layouts on disk, restore verification,
rank shift, keep, async, disk full, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from iobench.cli import cli


def run(tmp_path: Path, *args: str) -> tuple[int, str, dict | None]:
    r = CliRunner().invoke(cli, ["checkpoint", *args, "--results-dir", str(tmp_path / "res"),
                                 "--json"])
    doc = None
    out = r.stdout
    start = out.find("{")
    if start >= 0:
        try:
            doc = json.loads(out[start:])
        except ValueError:
            doc = None
    return r.exit_code, r.output + (r.stderr if r.stderr_bytes else ""), doc


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "t"


def test_what_if_writes_nothing(tmp_path: Path, target: Path) -> None:
    code, out, doc = run(tmp_path, "llama3-70b", "--target", str(target), "--what-if")
    assert code == 0, out
    assert doc is not None
    plan = doc["plan"]
    assert plan["ranks"] == 64
    assert plan["world"] == 64
    assert plan["files_per_checkpoint"] == 128
    assert plan["model_gib"] == pytest.approx(919.9, abs=0.1)
    assert plan["checkpoint_gb"] == pytest.approx(987.75, abs=0.01)
    assert not target.exists()
    r = CliRunner().invoke(cli, ["checkpoint", "llama3-8b", "--target", str(target),
                                 "--what-if", "--mode", "subset", "--ranks", "4"])
    assert r.exit_code == 0
    assert "GiB" in r.output
    assert "GB" in r.output
    assert "nothing was written" in r.output


def test_deepspeed_run_layout_keep_and_metrics(tmp_path: Path, target: Path) -> None:
    code, out, doc = run(tmp_path, "tiny", "--target", str(target), "--count", "3",
                         "--keep", "2", "--scale", "0.2")
    assert code == 0, out
    root = target / "checkpoint" / "tiny"
    assert sorted(p.name for p in root.iterdir()) == ["global_step2", "global_step3", "latest"]
    assert (root / "latest").read_text() == "global_step3"
    names = sorted(p.name for p in (root / "global_step3").iterdir())
    # PP 2 x DP 2, ZeRO-1, bf16: per-layer weights (dp 0), engine state, optimizer shards
    assert names == sorted(
        ["iobench_checksums.json", "mp_rank_00_model_states.pt", "mp_rank_01_model_states.pt"]
        + [f"layer_{i:02d}-model_00-model_states.pt" for i in range(7)]
        + [f"bf16_zero_pp_rank_{dp}_mp_rank_{mp:02d}_optim_states.pt"
           for dp in (0, 1) for mp in (0, 1)])
    assert doc is not None
    assert doc["status"]["state"] == "ok"
    m = doc["metrics"]
    for key in ("write_gb_per_s", "read_gb_per_s", "write_s", "read_s",
                "write_fsync_s", "young_interval_s", "daly_interval_s", "waste_pct"):
        assert m[key] > 0, key
    assert m["verify_errors"] == 0
    writes = [p for p in doc["phases"] if p["direction"] == "write"]
    reads = [p for p in doc["phases"] if p["direction"] == "read"]
    assert [p["name"] for p in writes] == ["write-1", "write-2", "write-3"]
    assert len(reads) == 2  # the kept checkpoints
    w = writes[0]
    ranks = w["metrics"]["ranks"]
    assert len(ranks) == 4
    # reported duration = slowest rank, throughput = slowest rank's (MLPerf)
    assert w["seconds"] == pytest.approx(max(r["seconds"] for r in ranks))
    assert w["metrics"]["rank_min_bytes_per_s"] == pytest.approx(
        min(r["bytes_per_s"] for r in ranks))
    assert w["bytes"] == sum(r["bytes"] for r in ranks) == m["checkpoint_bytes"]
    assert all(r["fsync_s"] > 0 for r in ranks)
    # latency histogram merged across ranks: ops add up
    assert w["histogram"]["count"] == w["ops"]
    assert all(r["buffer_bytes"] <= 256 << 20 for r in ranks)
    assert doc["cache"]["policy"] == "drop"


def test_dcp_layout_and_rank_shift(tmp_path: Path, target: Path) -> None:
    code, out, doc = run(tmp_path, "tiny", "--target", str(target), "--layout", "dcp",
                         "--rank-shift", "1", "--scale", "0.1")
    assert code == 0, out
    step = target / "checkpoint" / "tiny" / "step_1"
    assert sorted(p.name for p in step.iterdir()) == [".metadata"] + [
        f"__{r}_0.distcp" for r in range(4)]
    meta = json.loads((step / ".metadata").read_text())
    assert len(meta["files"]) == 4
    assert all(f["crc32c"] for f in meta["files"])
    assert doc is not None
    read = next(p for p in doc["phases"] if p["direction"] == "read")
    assert [(r["rank"], r["source_rank"]) for r in read["metrics"]["ranks"]] == [
        (0, 1), (1, 2), (2, 3), (3, 0)]
    assert read["metrics"]["verified_files"] == 4
    assert read["metrics"]["verify_errors"] == 0


def test_flipped_byte_is_named_with_file_and_offset(tmp_path: Path, target: Path) -> None:
    code, out, _ = run(tmp_path, "tiny", "--target", str(target), "--no-read", "--scale", "0.3")
    assert code == 0, out
    victim = target / "checkpoint" / "tiny" / "global_step1" / \
        "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt"
    offset = victim.stat().st_size - 5000
    with open(victim, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))
    code, out, doc = run(tmp_path, "tiny", "--target", str(target), "--no-write",
                         "--rank-shift", "2", "--cache", "allow")
    assert code == 1, out
    assert "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt" in out
    assert f"offset {offset}" in out
    assert doc is not None
    assert doc["status"]["state"] == "failed"
    read = doc["phases"][0]
    assert read["metrics"]["verify_errors"] == 1
    assert read["metrics"]["mismatches"][0]["offset"] == offset


def test_async_reports_stall_apart_from_persist(tmp_path: Path, target: Path) -> None:
    code, out, doc = run(tmp_path, "tiny", "--target", str(target), "--async", "--no-read")
    assert code == 0, out
    assert doc is not None
    m = doc["metrics"]
    assert 0 < m["stall_s"] <= m["persist_s"]
    assert m["async_young_interval_s"] <= m["young_interval_s"]


def test_direct_io_round_trip(tmp_path: Path, target: Path) -> None:
    code, out, doc = run(tmp_path, "tiny", "--target", str(target), "--cache", "direct",
                         "--zero", "1", "--scale", "0.05")
    if code == 2 and "O_DIRECT" in out:
        pytest.skip("the test directory's filesystem refuses O_DIRECT")
    assert code == 0, out
    assert doc is not None
    assert doc["cache"]["method"] == "o_direct"
    root = target / "checkpoint" / "tiny" / "global_step1"
    assert (root / "mp_rank_00_model_states.pt").exists()
    assert doc["metrics"]["verify_errors"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["nosuchmodel"], "unknown checkpoint preset 'nosuchmodel'"),
    (["llama3-8bb"], "did you mean 'llama3-8b'"),
    (["tiny", "--ranks", "3"], "--ranks 3: full mode runs every rank"),
    (["tiny", "--mode", "subset", "--ranks", "9"], "--ranks 9: tiny has only 4 ranks"),
    (["tiny", "--rank-shift", "4"], "--rank-shift 4"),
    (["tiny", "--no-write", "--no-read"], "leaves nothing to do"),
    (["tiny", "--staging", "1GiB"], "--staging"),
    (["tiny", "--mtbf", "3", "--mtbf-per-gpu", "5"], "give one"),
    (["tiny", "--pp", "9"], "--pp 9"),
    (["tiny", "--scale", "0"], "--scale"),
    (["tiny", "--no-write"], "no deepspeed checkpoint of tiny"),
])
def test_bad_input_exits_2(tmp_path: Path, target: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(cli, ["checkpoint", *args, "--target", str(target),
                                 "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


@pytest.mark.fio
def test_fio_engine_same_bytes_per_rank(tmp_path: Path, target: Path) -> None:
    if shutil.which("fio") is None:
        pytest.skip("fio is not installed")
    code, out, doc = run(tmp_path, "tiny", "--target", str(target), "--engine", "fio",
                         "--scale", "0.2", "--rank-shift", "1")
    assert code == 0, out
    assert doc is not None
    w = next(p for p in doc["phases"] if p["direction"] == "write")
    assert w["engine"] == "fio"
    assert len(w["metrics"]["ranks"]) == 4
    assert "end_fsync=1" in w["metrics"]["jobfile"]
    assert w["bytes"] >= doc["metrics"]["checkpoint_bytes"]
    assert w["bytes"] - doc["metrics"]["checkpoint_bytes"] < 4 * 4096
    r = next(p for p in doc["phases"] if p["direction"] == "read")
    assert r["bytes"] == w["bytes"]
    assert [x["source_rank"] for x in r["metrics"]["ranks"]] == [1, 2, 3, 0]


def _tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "small"
    _tmpfs(mnt, "8m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_mid_write(tmp_path: Path, small_fs: Path) -> None:
    code, out, doc = run(tmp_path, "tiny", "--target", str(small_fs / "t"), "--no-space-check",
                         "--no-read")
    assert code == 1, out
    line = next(ln for ln in out.splitlines() if ln.startswith("error: disk full"))
    assert "_states.pt: no space left after" in line
    assert "partial checkpoint global_step1 was removed" in line
    assert not (small_fs / "t" / "checkpoint" / "tiny" / "global_step1").exists()
    assert doc is not None
    assert doc["status"]["state"] == "failed"
    saved = list((tmp_path / "res").glob("*/result.json"))
    assert len(saved) == 1
    assert json.loads(saved[0].read_text())["status"]["state"] == "failed"


def test_space_precheck_refuses_before_writing(tmp_path: Path, small_fs: Path) -> None:
    r = CliRunner().invoke(cli, ["checkpoint", "tiny", "--target", str(small_fs / "t"),
                                 "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 2
    assert "needs" in r.output
    assert "only" in r.output
    assert "free" in r.output
    assert not list((small_fs / "t" / "checkpoint" / "tiny").glob("global_step*"))
