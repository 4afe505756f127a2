"""`iobench infer randread` and `iobench infer load` through the CLI, for real, small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iobench.cli import cli
from iobench.kinds.infer_load import files, preset

try:
    import ml_dtypes  # noqa: F401
    HAVE_ML_DTYPES = True
except ImportError:
    HAVE_ML_DTYPES = False
# the safetensors library method reads BF16/F8 into numpy through ml-dtypes
needs_ml_dtypes = pytest.mark.skipif(not HAVE_ML_DTYPES, reason="ml-dtypes is not installed "
                                     "(pip install 'iobench[formats]')")


def _run(runner, args: list[str]):
    return runner.invoke(cli, args, catch_exceptions=False)


@needs_ml_dtypes
def test_load_tiny_all_methods_json(runner, tmp_path: Path) -> None:
    res = _run(runner, ["infer", "load", "tiny", "--target", str(tmp_path / "t"),
                        "--results-dir", str(tmp_path / "r"), "--json", "-p", "bf16,int4",
                        "--chunk", "256k", "--threads", "2", "--replicas", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    names = [p["name"] for p in doc["phases"]]
    assert "load bf16 pread cold" in names
    assert "load int4 safetensors warm" in names
    assert "load int4 mmap x2 replicas cold" in names
    assert len([n for n in names if "replicas" not in n]) == 2 * 5 * 2
    m = doc["metrics"]
    assert m["load_s"] > 0
    assert m["load_gb_per_s"] > 0
    assert m["load.int4.pread.cold.gb_per_s"] > 0
    assert m["load.bf16.direct.warm.first_tensor_s"] > 0
    ph = next(p for p in doc["phases"] if p["name"] == "load int4 read cold")
    assert ph["metrics"]["tensors"] == 63  # 49 + a GPTQ g_idx per linear (2 x 7)
    assert ph["metrics"]["size_ratio"] < 0.5
    assert ph["latency_ns"]["p99"] is not None
    assert doc["cache"]["policy"] == "drop"
    assert (tmp_path / "r").is_dir()
    written = tmp_path / "t" / "infer" / "models" / "tiny" / "safetensors-bf16"
    assert (written / files.INDEX).is_file()


def test_load_gguf_tables(runner, tmp_path: Path) -> None:
    res = _run(runner, ["infer", "load", "tiny", "--format", "gguf", "--target",
                        str(tmp_path / "t"), "--results-dir", str(tmp_path / "r"), "--cold",
                        "--discard", "-m", "pread,gguf"])
    assert res.exit_code == 0, res.output
    assert "precisions side by side" in res.stdout
    assert "Q4_K" not in res.stdout  # table shows precisions by their names
    assert "load int8 gguf cold" in res.stdout
    assert "warm" not in res.stdout.split("Model load")[1]


def test_what_if_writes_nothing(runner, tmp_path: Path) -> None:
    res = _run(runner, ["infer", "load", "llama3-8b", "--target", str(tmp_path / "t"),
                        "--what-if", "-p", "bf16,int4", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [p["tensors"] for p in doc["plans"]] == [291, 963]  # int4: + g_idx x 224
    assert doc["plans"][0]["files"][0]["name"] == "model-00001-of-00004.safetensors"
    assert not (tmp_path / "t").exists()
    table = _run(runner, ["infer", "load", "llama3-8b", "--target", str(tmp_path / "t"),
                          "--what-if"])
    assert "16.1" in table.stdout
    assert "nothing written" in table.stdout.replace("\n", " ")


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "gguf", "-p", "fp8"], "GGUF has no fp8 tensor type"),
    (["-p", "bf61"], "--precision 'bf61': unknown value (did you mean 'bf16'?)"),
    (["-m", "mmapp"], "did you mean 'mmap'"),
    (["--format", "gguf", "-m", "safetensors"], "loads safetensors files, not gguf"),
    (["--chunk", "0"], "--chunk"),
])
def test_bad_load_inputs_exit_2(runner, tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(cli, ["infer", "load", "tiny", "--target", str(tmp_path / "t"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_unknown_model_exit_2(runner, tmp_path: Path) -> None:
    res = runner.invoke(cli, ["infer", "load", "llama3-9b", "--target", str(tmp_path)])
    assert res.exit_code == 2
    assert "did you mean 'llama3-8b'" in res.output


def test_corrupt_safetensors_header_names_the_file(runner, tmp_path: Path) -> None:
    args = ["infer", "load", "tiny", "--target", str(tmp_path / "t"), "--results-dir",
            str(tmp_path / "r"), "-p", "int4", "-m", "pread", "--cold"]
    assert _run(runner, args).exit_code == 0
    p = files.plan(preset.load("tiny"), "int4", "safetensors")
    victim = files.paths(p, tmp_path / "t" / "infer" / "models" / "tiny")[0]
    with open(victim, "r+b") as f:  # same size, so the set is not regenerated
        f.seek(8)
        f.write(b"#garbage#")
    res = runner.invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert str(victim) in res.output
    assert "not valid JSON" in res.output
    saved = list((tmp_path / "r").glob("*/result.json"))
    assert any(json.loads(s.read_text())["status"]["state"] == "failed" for s in saved)


def _randread(runner, tmp_path: Path, *extra: str):
    return runner.invoke(cli, ["infer", "randread", "--target", str(tmp_path / "t"),
                               "--results-dir", str(tmp_path / "r"), "--file-size", "1MiB",
                               "--files", "2", "--runtime", "0.15s", *extra])


def test_randread_native_sweep(runner, tmp_path: Path) -> None:
    res = _randread(runner, tmp_path, "-b", "4k,16k", "-q", "1,4", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [p["name"] for p in doc["phases"]] == [
        "randread bs=4KiB qd=1", "randread bs=4KiB qd=4", "randread bs=16KiB qd=1",
        "randread bs=16KiB qd=4"]
    for p in doc["phases"]:
        assert p["ops_per_s"] > 0
        assert p["bytes"] == p["ops"] * p["metrics"]["block_bytes"]
        assert all(p["latency_ns"][k] for k in ("p50", "p90", "p99", "p99_9", "p99_99", "max"))
    assert doc["metrics"]["randread.bs4096.qd4.ops_per_s"] > 0
    assert doc["metrics"]["randread.bs16384.qd1.p99_us"] > 0
    worst = max(p["latency_ns"]["p99"] for p in doc["phases"]) / 1e3
    assert doc["metrics"]["p99_us"] == worst  # the grid's worst tail, for suite criteria
    assert doc["cache"]["method"] == "o_direct"
    data = sorted((tmp_path / "t" / "infer" / "randread").glob("file-*.dat"))
    assert [f.stat().st_size for f in data] == [1 << 20] * 2
    mtimes = [f.stat().st_mtime_ns for f in data]
    table = _randread(runner, tmp_path, "-b", "4k", "-q", "2")
    assert table.exit_code == 0
    assert "QD 2" in table.stdout
    assert "Random reads" in table.stdout
    assert [f.stat().st_mtime_ns for f in data] == mtimes  # reused, not rewritten


@pytest.mark.parametrize(("args", "message"), [
    (["-b", "6k"], "O_DIRECT (--cache direct) needs a multiple of 4096"),
    (["-b", "2MiB"], "is larger than --file-size"),
    (["-q", "0"], "must be >= 1"),
    (["-b", "4x"], "unknown unit"),
])
def test_bad_randread_inputs_exit_2(runner, tmp_path: Path, args: list[str],
                                    message: str) -> None:
    res = _randread(runner, tmp_path, *args)
    assert res.exit_code == 2, res.output
    assert message in res.output


@pytest.mark.fio
def test_randread_fio_same_files(runner, tmp_path: Path, have_fio: None) -> None:
    res = _randread(runner, tmp_path, "-b", "4k", "-q", "1,4", "--engine", "fio", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["engine"] == "fio"
    for p in doc["phases"]:
        assert p["engine"] == "fio"
        assert p["ops_per_s"] > 0
        assert p["latency_ns"]["p99"]
        job = p["fio"]["jobfile"]
        assert "direct=1" in job
        assert "randrepeat=0" in job
        assert "ioengine=libaio" in job
        assert str(tmp_path / "t" / "infer" / "randread" / "file-000.dat") in job
    assert "iodepth=4" in doc["phases"][1]["fio"]["jobfile"]
