"""`train`, `infer randread` and `infer load` under real mpirun: totals equal the
single-process run's, histograms merged, a failing rank named; plus the cross-rank step
barrier's stop protocol, in one process."""

import subprocess
import sys
import threading

import numpy as np
import pytest

from iobench.train.emulate import Dataset, PeerStopped, ReplayConfig, run_epoch
from iobench.train.plan import SampleTable
from iobench.train.ranks import merge_epochs

from .conftest import only_result, single

mpi = pytest.mark.mpi


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory):
    """The tiny training data set, generated once (single process)."""
    root = tmp_path_factory.mktemp("mpitrain")
    p = subprocess.run([sys.executable, "-m", "iobench", "datagen", "tiny", "--target",
                        str(root / "t"), "--results-dir", str(root / "dg"), "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return root / "t"


def _train(mpirun, np_, target, res, *args, check=True):
    return mpirun(np_, ["train", "tiny", "--target", str(target), "--results-dir", str(res),
                        "--cache", "allow", *args], check=check)


def _phases(d):
    return [(p["name"], p["bytes"], p["ops"], p["metrics"].get("samples")) for p in d["phases"]]


# --- train -------------------------------------------------------------------------------
@mpi
@pytest.mark.parametrize("np_", [2, 3])
def test_train_accelerators_split_over_ranks(mpirun, tmp_path, tiny_target, np_):
    args = ["--accelerators", "4", "--compute-time", "0.01"]
    _train(mpirun, np_, tiny_target, tmp_path / "r", *args)
    d = only_result(tmp_path / "r")  # only rank 0 writes
    ref = single(["train", "tiny", "--target", str(tiny_target), "--results-dir",
                  str(tmp_path / "r1"), "--cache", "allow", *args])
    assert d["status"]["state"] == "ok"
    assert d["sysinfo"]["mpi"]["ranks"] == np_
    assert _phases(d) == _phases(ref)  # samples, bytes and reads of every epoch
    m, m1 = d["metrics"], ref["metrics"]
    for key in ("samples", "bytes", "payload_bytes", "accelerators"):
        assert m[key] == m1[key], key
    assert m["samples"] == 64
    assert m["accelerators"] == 4
    for p in d["phases"]:
        assert p["latency_ns"]["count"] == p["ops"]  # every rank's reads merged
    ep = d["phases"][1]["metrics"]
    # data wait: one value per accelerator per step after the first, from every rank
    assert ep["data_wait_ns"]["count"] == 4 * (ep["steps"] - 1)
    assert ep["accelerators"] == 4
    # AU is measured across the ranks (the per-step barrier spans them); how it compares
    # with one process is a performance question (3 ranks on 2 busy cores made it 52% vs
    # 99%), not asserted here
    assert m["au_pct"] is not None
    assert m1["au_pct"] is not None
    assert 0 < m["au_pct"] <= 100


@mpi
@pytest.mark.fio
def test_train_runs_fio_and_idle_rank(mpirun, have_fio, tmp_path, tiny_target):
    """--runs and --engine fio under mpirun; 1 accelerator over 2 ranks: rank 1 idles."""
    args = ["--accelerators", "1", "--runs", "2", "--compute-time", "0", "--engine", "fio"]
    _train(mpirun, 2, tiny_target, tmp_path / "r", *args)
    d = only_result(tmp_path / "r")
    ref = single(["train", "tiny", "--target", str(tiny_target), "--results-dir",
                  str(tmp_path / "r1"), "--cache", "allow", *args])
    assert d["status"]["state"] == "ok"
    assert _phases(d) == _phases(ref)
    names = [p["name"] for p in d["phases"]]
    assert "warm-up" in names
    assert "run 2 epoch 1" in names
    assert "raw (fio)" in names
    raw = next(p for p in d["phases"] if p["name"] == "raw (fio)")
    assert raw["metrics"]["ranks"] == 2
    assert raw["latency_ns"]["count"] == raw["ops"] > 0
    assert d["metrics"]["runs_mean_samples_per_s"] > 0
    assert d["metrics"]["accelerators"] == 1


@mpi
def test_train_checkpoint_shares_add_up(mpirun, tmp_path, tiny_target):
    args = ["--accelerators", "2", "--compute-time", "0.002", "--checkpoint-every", "2",
            "--checkpoint-size", "256KiB"]
    _train(mpirun, 2, tiny_target, tmp_path / "r", *args)
    d = only_result(tmp_path / "r")
    ref = single(["train", "tiny", "--target", str(tiny_target), "--results-dir",
                  str(tmp_path / "r1"), "--cache", "allow", *args])
    ck = next(p for p in d["phases"] if p["name"] == "checkpoint")
    ck1 = next(p for p in ref["phases"] if p["name"] == "checkpoint")
    assert (ck["bytes"], ck["ops"]) == (ck1["bytes"], ck1["ops"]) == (4 * 256 * 1024, 4)
    assert sorted(f.name for f in (tiny_target / "train").glob("train-ckpt-*-rank*.bin")) == [
        f"train-ckpt-{n}-rank{r}.bin" for n in (0, 1) for r in (0, 1)]


@mpi
def test_train_rank_error_is_named_and_bounded(mpirun, tmp_path):
    """A corrupt sample fails the rank that decodes it; the other stops at the next step."""
    spec = tmp_path / "tr-bad.yaml"
    spec.write_text("name: tr-bad\nformat: tfrecord\nrecord_size: 24KiB\n"
                    "samples_per_file: 4\nfiles: 8\nbatch_size: 2\nread_threads: 1\n")
    tgt = tmp_path / "t"
    single(["datagen", str(spec), "--target", str(tgt), "--results-dir", str(tmp_path / "dg")])
    for shard in sorted((tgt / "datagen" / "tr-bad").glob("*.tfrecord")):
        data = bytearray(shard.read_bytes())
        data[100] ^= 0xFF  # every shard's first record: whoever reads one fails
        shard.write_bytes(bytes(data))
    p = mpirun(2, ["train", str(spec), "--target", str(tgt), "--results-dir",
                   str(tmp_path / "r"), "--accelerators", "2", "--compute-time", "0.001",
                   "--decode", "--cache", "allow"], check=False, timeout=60)  # bounded
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.count("error: rank ") == 1
    assert "corrupt" in p.stderr
    d = only_result(tmp_path / "r")
    assert d["status"]["state"] == "failed"
    assert "rank" in d["status"]["reason"]


@mpi
def test_train_bad_target_reported_once(mpirun, tmp_path):
    p = mpirun(2, ["train", "tiny", "--target", str(tmp_path / "none"), "--results-dir",
                   str(tmp_path / "r")], check=False)
    assert p.returncode == 2
    assert p.stderr.count("does not exist") == 1


# --- infer randread ------------------------------------------------------------------------
def _randread(extra):
    return ["infer", "randread", "--file-size", "256KiB", "-b", "4k,16k", "-q", "1,3",
            "--runtime", "0.2s", "--cache", "allow", *extra]


@mpi
@pytest.mark.parametrize("np_", [2, 3])
def test_randread_threads_and_files_split(mpirun, tmp_path, np_):
    args = _randread(["--files", "3"])
    mpirun(np_, [*args, "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    d = only_result(tmp_path / "r")
    ref = single([*args, "--target", str(tmp_path / "t1"), "--results-dir",
                  str(tmp_path / "r1")])
    assert d["status"]["state"] == "ok"
    assert [p["name"] for p in d["phases"]] == [p["name"] for p in ref["phases"]]
    for p in d["phases"]:
        mt = p["metrics"]
        assert p["ops"] > 0
        assert p["latency_ns"]["count"] == p["ops"]  # merged, not averaged
        assert p["bytes"] == p["ops"] * mt["block_size"]
        assert mt["threads"] == mt["queue_depth"]  # the cell's threads over all ranks
        assert mt["files"] == 3
        assert mt["ranks"] == np_
        assert d["metrics"][f"randread.bs{mt['block_size']}.qd{mt['queue_depth']}.iops"] == \
            p["ops_per_s"]
    names = sorted(f.name for f in (tmp_path / "t" / "infer" / "randread").iterdir())
    assert names == sorted(f.name for f in (tmp_path / "t1" / "infer" / "randread").iterdir())


@mpi
def test_randread_fewer_files_than_ranks(mpirun, tmp_path):
    p = mpirun(2, [*_randread(["--files", "1"]), "--target", str(tmp_path / "t"),
                   "--results-dir", str(tmp_path / "r")], check=False)
    assert p.returncode == 2
    assert p.stderr.count("give --files 2 or more") == 1  # reported once, by rank 0


# --- infer load ----------------------------------------------------------------------------
@mpi
@pytest.mark.parametrize("np_", [2, 3])
def test_load_replicas_split_over_ranks(mpirun, tmp_path, np_):
    args = ["infer", "load", "tiny", "-p", "int4", "-m", "pread,mmap", "--chunk", "256k",
            "--threads", "2", "--replicas", "4"]
    mpirun(np_, [*args, "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    d = only_result(tmp_path / "r")
    ref = single([*args, "--target", str(tmp_path / "t1"), "--results-dir",
                  str(tmp_path / "r1")])
    assert d["status"]["state"] == "ok"
    assert _phases(d) == _phases(ref)  # every load's and every fleet's bytes and reads
    reps = [p for p in d["phases"] if "replicas" in p["metrics"]]
    assert len(reps) == 2
    for p in d["phases"]:
        assert p["latency_ns"]["count"] == p["ops"]
    for p in reps:
        mt = p["metrics"]
        assert sum(mt["replicas_per_rank"]) == 4
        assert len(mt["replicas_per_rank"]) == np_
        assert 0 < mt["ready_p50_s"] <= mt["ready_p99_s"] <= mt["ready_max_s"] + 1e-3
        assert mt["aggregate_gb_per_s"] == pytest.approx(p["bytes"] / p["seconds"] / 1e9)


# --- the step barrier's protocol, in one process -------------------------------------------
class ThreadSync:
    """The MPI step barrier's semantics with threads standing in for ranks."""

    def __init__(self, shared):
        self.shared = shared
        self.steps = None
        self.calls = 0
        self.agreed_stop = False

    def reset(self):
        self.steps, self.calls, self.agreed_stop = None, 0, False

    def abandon(self):
        pass

    def __call__(self, ok):
        barrier, votes = self.shared
        votes.append(ok)
        i = barrier.wait(10)
        result = all(votes[-2:]) if len(votes) >= 2 else ok
        barrier.wait(10)
        if i == 0:
            votes.clear()
        barrier.wait(10)
        self.calls += 1
        self.agreed_stop = self.agreed_stop or not result
        return not self.agreed_stop


def _dataset(tmp_path, nfiles=4, per_file=8, size=4096):
    files, per = [], []
    for f in range(nfiles):
        p = tmp_path / f"s{f}.bin"
        p.write_bytes(np.random.default_rng(f).bytes(per_file * size))
        files.append(p)
        per.append((np.arange(per_file) * size, np.full(per_file, size)))
    return Dataset(files=files, table=SampleTable.from_files(per), name="t")


def _two_ranks(ds, cfg, decode=None):
    shared = (threading.Barrier(2), [])
    out = [None, None]

    def rank(r):
        d = ds if r == 0 or decode is None else Dataset(ds.files, ds.table, decode, "bad")
        try:
            out[r] = ("ok", ("host", run_epoch(d, cfg, 0, accels=range(r * 2, r * 2 + 2),
                                               sync=ThreadSync(shared))))
        except PeerStopped as e:
            out[r] = ("stopped", e)
        except Exception as e:  # noqa: BLE001
            out[r] = ("error", e)

    ts = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not any(t.is_alive() for t in ts)
    return out


def test_split_epochs_merge_to_the_single_process_totals(tmp_path):
    ds = _dataset(tmp_path)
    cfg = ReplayConfig(accelerators=4, batch_size=2, compute_s=0.001, read_threads=1)
    whole = run_epoch(ds, cfg, 0)
    out = _two_ranks(ds, cfg)
    assert [o[0] for o in out] == ["ok", "ok"]
    merged = merge_epochs([o[1] for o in out])
    assert (merged.samples, merged.nbytes, merged.reads, merged.accelerators) == \
        (whole.samples, whole.nbytes, whole.reads, 4)
    assert merged.latency.count == merged.reads
    assert merged.compute_ns.shape == whole.compute_ns.shape
    assert merged.step_end_ns.size == whole.steps


def test_failing_rank_stops_the_other_at_the_next_step(tmp_path):
    ds = _dataset(tmp_path)
    cfg = ReplayConfig(accelerators=4, batch_size=2, compute_s=0.001, read_threads=1)

    def bad(file_index, data):
        raise ValueError(f"sample of file {file_index} does not parse")

    out = _two_ranks(ds, cfg, decode=bad)  # returns at all: no rank waits forever
    assert out[0][0] == "stopped"  # fine itself: stopped because rank 1 failed
    assert out[1][0] == "error"
    assert "does not parse" in str(out[1][1])



@mpi
@pytest.mark.fio
def test_randread_fio_cells_merged(mpirun, have_fio, tmp_path):
    args = ["infer", "randread", "--engine", "fio", "--file-size", "256KiB", "--files", "2",
            "-b", "4k", "-q", "1,3", "--runtime", "0.2s", "--cache", "allow"]
    mpirun(2, [*args, "--target", str(tmp_path / "t"), "--results-dir", str(tmp_path / "r")])
    d = only_result(tmp_path / "r")
    assert d["status"]["state"] == "ok"
    assert [p["name"] for p in d["phases"]] == ["randread bs=4KiB qd=1", "randread bs=4KiB qd=3"]
    for p in d["phases"]:
        assert p["engine"] == "fio"
        assert p["ops"] > 0
        assert p["latency_ns"]["count"] == p["ops"]
        assert p["metrics"]["iodepth"] == p["metrics"]["queue_depth"]
