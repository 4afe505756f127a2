"""`iobench infer kvcache` for real on the tiny model: bytes per token, both layouts, the
tiers (on/off, promote on/off, admission), a hand-computed trace, the chunk files on
disk, the TTFT search on a throttled reader, fio side by side, bad input and faults."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iobench import model
from iobench.cli import cli
from iobench.engines.native import aligned_buffer
from iobench.kinds.kvcache import geometry, profiles, store, trace
from iobench.kinds.kvcache.engine import THROTTLE_ENV, Engine, Options
from iobench.kinds.kvcache.tiers import Tiers

TINY_BPT = 2 * 2 * 2 * 64 * 2  # layers x kv heads x head_dim x bf16, K and V: 1 KiB
CB512 = 512 * TINY_BPT  # one 512-token chunk of tiny: 512 KiB


def run(runner, tmp_path, *args, code=0):
    res = runner.invoke(cli, ["infer", "kvcache", "tiny", "--target", str(tmp_path / "t"),
                              "--results-dir", str(tmp_path / "r"), "--json", *args])
    assert res.exit_code == code, res.output
    if code:
        return res
    return json.loads(res.stdout[res.stdout.index("{"):])


# --- what is stored ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "bpt"), [("llama3-8b", 131_072), ("llama3-70b", 327_680),
                                      ("tiny", TINY_BPT)])
def test_bytes_per_token_from_the_presets(name, bpt):
    m = model.load(name)
    assert geometry.bytes_per_token(m) == bpt
    assert geometry.bytes_per_token(m, "fp8") == bpt // 2
    assert geometry.bytes_per_token(m, tp=2) == bpt // 2


def test_chunk_geometry_8b():
    g = geometry.geometry(model.load("llama3-8b"), 256)
    assert g.payload_bytes == g.chunk_bytes == 32 << 20  # 8B bf16 at 256 tokens = 32 MiB
    assert g.chunks(1000) == 3
    odd = geometry.Geometry(1000, 3)  # a payload that is not a 4 KiB multiple is padded
    assert (odd.payload_bytes, odd.chunk_bytes) == (3000, 4096)


def test_head_dim_may_differ_from_hidden_over_heads(tmp_path):
    y = tmp_path / "m.yaml"
    y.write_text("name: m\nvocab_size: 1024\nhidden_size: 512\nintermediate_size: 768\n"
                 "num_hidden_layers: 4\nnum_attention_heads: 8\nnum_key_value_heads: 2\n"
                 "head_dim: 128\n")
    assert geometry.bytes_per_token(model.load(str(y))) == 2 * 4 * 2 * 128 * 2


def test_shipped_profiles():
    got = {n: profiles.load(n).context_tokens for n in profiles.names()}
    assert got == {"chatbot": [512, 4096], "coding": [4096, 25000], "document": [4096, 16384]}


# --- trace format -------------------------------------------------------------------------
def test_shipped_trace_parses_and_shares_prefixes():
    path = Path(profiles.__file__).parents[3] / "workloads/inference/kvcache/traces"
    reqs = trace.load(path / "synthetic-mooncake.jsonl")
    assert len(reqs) == 200
    firsts = [r.hash_ids[0] for r in reqs]
    assert len(set(firsts)) < len(firsts) / 10  # shared system prompts
    assert all(len(r.hash_ids) == -(-r.input_length // 512) for r in reqs)


def test_chunk_keys_for_other_chunk_sizes():
    r = trace.Request(0, 1100, 1, (7, 8, 9))
    assert r.chunk_keys(512) == [(7, 0), (8, 1)]
    assert r.chunk_keys(256) == [(7, 0), (7, 1), (8, 2), (8, 3)]
    assert r.chunk_keys(1024) == [(8, 0)]


@pytest.mark.parametrize(("line", "what"), [
    ('{"timestamp": 0, "input_length": 5}', "hash_ids is not a list"),
    ('{"timestamp": -1, "input_length": 5, "output_length": 1, "hash_ids": [1]}', "timestamp"),
    ('not json', "not valid JSON"),
    ('{"timestamp": 0, "input_length": "x", "output_length": 1, "hash_ids": [1]}',
     "input_length"),
])
def test_malformed_trace_line_is_named(runner, tmp_path, line, what):
    t = tmp_path / "tr.jsonl"
    t.write_text('{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1, 2]}'
                 f"\n\n{line}\n")
    res = run(runner, tmp_path, "--trace", str(t), code=2)
    assert f"line 3: {what}" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()  # nothing written


# --- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--users", "0"], "--users 0: must be 1 to"),
    (["--capacity", "100KiB"], "smaller than one chunk"),
    (["--capacity", "64PiB"], "free"),
    (["--profile", "chat"], "unknown inference/kvcache preset 'chat'"),
    (["--cpu-cache", "4KiB"], "--cpu-cache"),
    (["--ttft", "0"], "--ttft must be > 0"),
])
def test_bad_input_one_line_exit_2_nothing_written(runner, tmp_path, args, message):
    res = run(runner, tmp_path, *args, code=2)
    assert message in res.output
    assert res.output.startswith("error: ")
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()
    assert not (tmp_path / "r").exists()


def test_unknown_model(runner, tmp_path):
    res = runner.invoke(cli, ["infer", "kvcache", "tiney", "--target", str(tmp_path / "t")])
    assert res.exit_code == 2
    assert "unknown models preset 'tiney'" in res.output


# --- the replay, for real -----------------------------------------------------------------
HAND_TRACE = [  # input_length, hash_ids (512-token blocks)
    (1536, [1, 2, 3]),
    (2048, [1, 2, 4, 5]),
    (1600, [1, 2, 3]),
    (100, [6]),
    (2560, [1, 2, 4, 5, 7]),
]


@pytest.fixture
def hand_trace(tmp_path):
    p = tmp_path / "hand.jsonl"
    p.write_text("".join(json.dumps({"timestamp": i * 10, "input_length": n,
                                     "output_length": 4, "hash_ids": h}) + "\n"
                         for i, (n, h) in enumerate(HAND_TRACE)))
    return p


# expected (ram hits, storage hits, chunks written, storage evictions, ram evictions) for the
# hand trace (15 chunks looked up), one user, queue depth 1 (see the comments)
@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
@pytest.mark.parametrize(("args", "expect"), [
    # no RAM tier, room for all: r2 hits 1,2; r3 hits 1,2,3; r5 hits 1,2,4,5
    ([], (0, 9, 6, 0, 0)),
    # storage holds 4 chunks: LRU evicts 3 (r2), 4 (r3), 5 and 3 (r5); r5's 7 finds
    # every slot pinned and is skipped
    (["--capacity", str(4 * CB512)], (0, 6, 8, 4, 0)),
    # RAM tier of 4 chunks with promotion: r2 RAM 1,2; r3 RAM 1,2 + storage 3 (promoted,
    # evicting 4); r5 RAM 1,2 + storage 4,5 (promoted, evicting 5 and 3)
    (["--cpu-cache", str(4 * CB512)], (6, 3, 6, 0, 4)),
    # the same without promotion: r5 finds 1,2,4,5 in RAM
    (["--cpu-cache", str(4 * CB512), "--no-promote"], (8, 1, 6, 0, 1)),
    # admission after 2 sightings: r1 writes nothing, r2 writes 1,2, r3 hits 1,2 and
    # writes 3, r5 hits 1,2 and writes 4,5
    (["--admit-after", "2"], (0, 4, 5, 0, 0)),
])
def test_hand_computed_trace(runner, tmp_path, hand_trace, layout, args, expect):
    d = run(runner, tmp_path, "--trace", str(hand_trace), "--chunk-tokens", "512",
            "--users", "1", "--queue-depth", "1", "--layout", layout, "--no-search",
            "--capacity", "8MiB", *args)
    m = d["metrics"]
    ram, sto, written, ev_s, ev_r = expect
    assert d["status"]["state"] == "ok"
    assert (m["ram_hits"], m["storage_hits"], m["chunk_writes"], m["evictions_storage"],
            m["evictions_ram"]) == expect
    assert m["chunks_looked_up"] == 15
    assert m["storage_hit_ratio"] == pytest.approx(sto / 15)
    assert m["ram_hit_ratio"] == pytest.approx(ram / 15)
    assert m["misses"] == 15 - ram - sto
    assert m["read_bytes"] == sto * CB512
    assert m["write_bytes"] == written * CB512
    assert m["cached_tokens_storage"] == sto * 512
    assert m["verify_errors"] == 0
    ph = {p["name"]: p for p in d["phases"]}
    assert ph["kv chunk reads (storage)"]["latency_ns"].get("count", 0) == sto
    # requests that restored anything: r2, r3 and r5 (with admission after 2: r3, r5)
    assert ph["kv restore requests"]["ops"] == (2 if "--admit-after" in args else 3)
    if "--capacity" in args:
        assert m["skipped_full"] == 1
    # the run leaves no chunk files behind (slab files are kept for reuse)
    kv = list((tmp_path / "t" / "kvcache").rglob("*.kv"))
    assert all(p.name.startswith("slab-") for p in kv)


def test_trace_at_its_own_pace(runner, tmp_path, hand_trace):
    """--trace-speed 0.5: the last request (40 ms in the trace) starts >= 80 ms in."""
    d = run(runner, tmp_path, "--trace", str(hand_trace), "--chunk-tokens", "512",
            "--users", "2", "--trace-speed", "0.5", "--no-search", "--capacity", "8MiB")
    m = d["metrics"]
    assert m["requests"] == 5
    assert m["replay_s"] >= 0.08
    lag = next(p for p in d["phases"] if p["name"] == "kv trace lateness")
    assert lag["ops"] == 5
    assert m["trace_lag_p99_us"] >= 0


def _engine(tmp_path, layout, slots=16, ram_slots=0, **opts):
    g = geometry.geometry(model.load("tiny"), 256)
    st = store.make(layout, tmp_path / "kv", g, slots)
    if isinstance(st, store.Slab):
        st.open()
    tiers = Tiers(ram_slots, slots, opts.pop("admit_after", 1), opts.pop("promote", True))
    # --requests decides, not the default 30 s duration (a busy machine may need longer)
    opts.setdefault("duration_s", 3600.0)
    o = Options(users=2, queue_depth=4, requests=40, **opts)
    return Engine(st, g, tiers, o, ram_slots * g.chunk_bytes), st, g


@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
@pytest.mark.parametrize("ram", [0, 4])
def test_chunk_files_hold_what_was_written(tmp_path, layout, ram):
    """Sessions with evictions: every chunk the storage tier holds is on disk, whole, with
    the right header and CRC; bytes written = chunk writes x chunk bytes."""
    eng, st, g = _engine(tmp_path, layout, slots=12, ram_slots=ram)
    try:
        users, s, e = eng.replay(profiles.load("chatbot"), None)
        assert not [u.error for u in users if u.error]
        phases, n = eng.replay_phases(users, s, e)
        held = eng.tiers.stored_slots()
        assert eng.tiers.sto.evictions > 0
        assert len(held) == 12
        wr = phases[2]
        assert wr["bytes"] == wr["ops"] * g.chunk_bytes == n["chunks_written"] * g.chunk_bytes
        assert phases[1]["bytes"] == n["storage_hits"] * g.chunk_bytes
        import numpy as np

        buf = np.zeros(g.chunk_bytes, dtype=np.uint8)
        codec = store.ChunkCodec(g, 0, 0)
        for uid, slot in held:
            gen = eng.tiers.gens[uid]
            if layout == "file-per-chunk":
                data = st.path(uid, gen).read_bytes()
            else:
                f, i = divmod(slot, st.per_file)  # buffered: a second opinion on the bytes
                with open(st.root / st.file_name(f), "rb") as fh:
                    fh.seek(i * g.chunk_bytes)
                    data = fh.read(g.chunk_bytes)
            assert len(data) == g.chunk_bytes
            buf[:] = np.frombuffer(data, dtype=np.uint8)
            assert codec.check(buf, uid, gen, full=True) is None
        if layout == "file-per-chunk":  # evicted chunks' files are gone
            assert len(list(st.root.rglob("*.kv"))) == 12
    finally:
        eng.close()
        st.close(keep=False)


def test_chunks_are_incompressible_and_not_dedupable(tmp_path):
    import zlib

    import numpy as np

    g = geometry.geometry(model.load("tiny"), 256)
    codec = store.ChunkCodec(g, 0, 0)
    a, b = np.zeros(g.chunk_bytes, np.uint8), np.zeros(g.chunk_bytes, np.uint8)
    codec.fill(a, 1, 1)
    codec.fill(b, 1, 2)  # the same chunk rewritten: different bytes
    blocks = {bytes(x[i:i + 4096]) for x in (a, b) for i in range(0, g.chunk_bytes, 4096)}
    assert len(blocks) == 2 * g.chunk_bytes // 4096
    assert len(zlib.compress(a.tobytes())) > 0.99 * g.chunk_bytes
    a[1000] ^= 1
    assert codec.check(a, 1, 1, full=True) == "CRC-32C mismatch"
    assert codec.check(b, 1, 1, full=False).startswith("holds chunk 1 gen 2")


def test_symlink_in_the_chunk_tree_is_refused(tmp_path):
    g = geometry.geometry(model.load("tiny"), 256)
    st = store.FilePerChunk(tmp_path / "kv", g, 4)
    a, _b, _n = st.name(5, 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (st.root / a).symlink_to(elsewhere)
    buf = memoryview(aligned_buffer(g.chunk_bytes))
    with pytest.raises(OSError) as e:
        st.write(5, 1, 0, buf, False)
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert list(elsewhere.iterdir()) == []
    st.close(keep=True)


def test_disk_full_removes_the_partial_chunk(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENOSPC_ENV, "2")
    g = geometry.geometry(model.load("tiny"), 256)
    st = store.FilePerChunk(tmp_path / "kv", g, 4)
    buf = memoryview(aligned_buffer(g.chunk_bytes))
    st.write(1, 1, 0, buf, False)
    st.write(2, 1, 0, buf, False)
    from iobench.errors import RunFailed

    with pytest.raises(RunFailed, match="disk full"):
        st.write(3, 1, 0, buf, False)
    assert sorted(p.name.split("-")[1] for p in st.root.rglob("*.kv")) == ["1", "2"]
    st.close(keep=False)


def test_disk_full_mid_run_keeps_a_failed_result(runner, tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENOSPC_ENV, "10")
    res = runner.invoke(cli, ["infer", "kvcache", "tiny", "--target", str(tmp_path / "t"),
                              "--results-dir", str(tmp_path / "r"), "--capacity", "8MiB",
                              "--requests", "50", "--no-search"])
    assert res.exit_code == 1, res.output
    d = json.loads(next((tmp_path / "r").glob("*/result.json")).read_text())
    assert d["status"]["state"] == "failed"
    assert "disk full" in d["status"]["reason"]
    assert d["phases"]
    assert d["metrics"]["chunk_writes"] == 10
    assert not list((tmp_path / "t").rglob("*.kv"))  # partial and whole chunks removed


@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
def test_sessions_both_layouts_with_tiers(runner, tmp_path, layout):
    d = run(runner, tmp_path, "--layout", layout, "--requests", "30", "--users", "1",
            "--capacity", "6MiB", "--cpu-cache", "2MiB", "--decode-time", "10us",
            "--search-requests", "2", "--drive-size", "1GB", "--verify")
    m = d["metrics"]
    assert d["status"]["state"] == "ok"
    assert m["requests"] == 30
    assert m["kv_token_bytes"] == TINY_BPT
    assert m["storage_hits"] > 0
    assert m["ram_hits"] > 0
    assert m["evictions_storage"] > 0
    assert m["ram_hit_ratio"] + m["storage_hit_ratio"] + m["miss_ratio"] == pytest.approx(1)
    assert m["storage_tokens_per_s"] == pytest.approx(
        m["cached_tokens_storage"] / m["replay_s"])
    assert m["dwpd"] == pytest.approx(m["write_bytes"] / m["replay_s"] * 86400 / 1e9)
    assert m["restore_p50_us"] <= m["restore_p99_us"] <= m["restore_p99_9_us"]
    assert m["max_context_tokens"] >= 256
    assert m["speedup_vs_recompute"] > 0
    assert m["read_per_cached_token_bytes"] == pytest.approx(
        m["read_bytes"] / m["cached_tokens"])
    from iobench.engines import aio

    reads = next(p for p in d["phases"] if p["name"] == "kv chunk reads (storage)")
    assert reads["metrics"]["queue"] == ("linux-aio" if aio.available() else "threads")
    assert reads["latency_ns"]["count"] == reads["ops"] == m["storage_hits"]


def test_ttft_search_on_a_throttled_reader(runner, tmp_path, monkeypatch):
    """Each 256 KiB chunk read takes >= 200 ms: with queue depth 1 a restore of n chunks
    takes >= 200 n ms, so within 1150 ms the answer is 5 chunks = 1280 tokens (6 take
    >= 1200 ms; 5 have 150 ms to spare for a loaded machine's scheduling)."""
    monkeypatch.setenv(THROTTLE_ENV, str(200e6 / (256 * TINY_BPT)))
    d = run(runner, tmp_path, "--users", "1", "--queue-depth", "1", "--requests", "2",
            "--ttft", "1150ms", "--capacity", "4MiB", "--search-requests", "1")
    m = d["metrics"]
    assert m["max_context_tokens"] == 1280
    probes = {p["context_tokens"]: p["passed"] for p in m["ttft_probes"]}
    assert probes == {256: True, 512: True, 1024: True, 2048: False, 1536: False,
                      1280: True}
    assert m["restore_p99_at_max_us"] >= 1_000_000
    assert m["recompute_at_max_us"] == pytest.approx(128_000.0)  # 1280 / 10000 tokens/s
    assert any(THROTTLE_ENV in w for w in d["warnings"])
    reads = next(p for p in d["phases"] if p["name"] == "kv chunk reads (storage)")
    assert reads["metrics"]["queue"] == "threads"  # the hook sleeps in the reading thread


@pytest.mark.skipif(not Path("/sys/kernel/mm/transparent_hugepage").is_dir(),
                    reason="no transparent huge pages in this kernel")
def test_fio_side_by_side_on_huge_page_buffers_for_2mib_chunks(runner, tmp_path, have_fio):
    """Chunks of 2 MiB or more: the native buffers are on huge pages, and so are fio's
    (iomem_align=2m, run with glibc's hugetlb tunable; the command shown says so)."""
    d = run(runner, tmp_path, "--engine", "fio", "--layout", "slab", "--chunk-tokens",
            "2048", "--requests", "4", "--users", "1", "--no-search", "--capacity", "16MiB",
            "--fio-runtime", "1s", "-q", "2")
    ph = {p["name"]: p for p in d["phases"]}
    for name in ("kv chunk reads fio", "kv chunk pattern fio-read"):
        p = ph[name]
        assert p["metrics"]["huge_buffers"] is True
        assert "iomem_align=2097152" in p["fio"]["jobfile"].splitlines()
        head = p["fio"]["command"][0]
        assert head.startswith("GLIBC_TUNABLES=")
        assert "glibc.malloc.hugetlb=1" in head
        assert p["ops"] > 0
    assert ph["kv chunk reads fio"]["bytes"] == ph["kv chunk reads fio"]["ops"] * (2 << 20)


@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
def test_fio_side_by_side(runner, tmp_path, have_fio, layout):
    d = run(runner, tmp_path, "--engine", "fio", "--layout", layout, "--requests", "30",
            "--users", "1", "--no-search", "--capacity", "8MiB", "--fio-runtime", "1s", "-q", "4")
    ph = {p["name"]: p for p in d["phases"]}
    nat, fio = ph["kv chunk reads native (vs fio)"], ph["kv chunk reads fio"]
    assert nat["ops"] > 0
    assert fio["ops"] > 0
    assert fio["bytes"] == fio["ops"] * 256 * TINY_BPT  # fio read whole chunks
    job = fio["fio"]["jobfile"]
    assert f"bs={256 * TINY_BPT}" in job
    assert "iodepth=4" in job
    assert "direct=1" in job
    assert "iomem_align" not in job  # 256 KiB chunks: base pages on both sides
    assert not fio["metrics"]["huge_buffers"]
    m = d["metrics"]
    assert m["native_to_fio"] > 0
    assert m["chunk_reads"] > 0  # one user, 30 turns: its later turns restore (seed 0)
    assert nat["metrics"]["queue"] in ("io_uring", "libaio", "linux-aio", "threads")
    # the replay's chunk pattern as one fio job: its read/write mix, chunk size, depth
    rd, wr = ph["kv chunk pattern fio-read"], ph["kv chunk pattern fio-write"]
    mix = round(100 * m["chunk_reads"] / (m["chunk_reads"] + m["chunk_writes"]))
    pjob = rd["fio"]["jobfile"]
    assert "rw=randrw" in pjob
    assert f"rwmixread={mix}" in pjob
    assert f"bs={256 * TINY_BPT}" in pjob
    assert "iodepth=4" in pjob
    assert "fsync=" in pjob  # the replay fsyncs chunks (file-per-chunk) or turns (slab)
    assert rd["ops"] > 0
    assert wr["ops"] > 0
    assert rd["bytes"] == rd["ops"] * 256 * TINY_BPT
    assert wr["bytes"] == wr["ops"] * 256 * TINY_BPT
    assert m["fio_pattern_read_gb_per_s"] == rd["gb_per_s"]
    assert m["fio_pattern_write_gb_per_s"] == wr["gb_per_s"]
    assert m["fio_pattern_read_share_pct"] == mix
    assert m["fio_pattern_read_p99_us"] == rd["latency_ns"]["p99"] / 1e3
    from iobench.kinds.kvcache import METRICS
    from iobench.results import Result

    assert METRICS.check(Result.from_dict(d)) == []


def test_ctrl_c_keeps_a_partial_result(tmp_path):
    """SIGINT once chunks are on storage: exit 130, status partial, the replay's phases."""
    t, r = tmp_path / "t", tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "iobench", "infer", "kvcache", "tiny",
                          "--target", str(t), "--results-dir", str(r), "--duration", "120s",
                          "--capacity", "8MiB"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(t.rglob("*.kv")):  # readiness: the replay has written chunks
            assert p.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    d = json.loads(next(r.glob("*/result.json")).read_text())
    assert d["status"]["state"] == "partial"
    assert d["phases"][0]["name"] == "kv restore requests"
    assert d["metrics"]["requests"] > 0
    assert not list(t.rglob("*.kv"))


@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
def test_a_corrupted_chunk_is_caught_on_restore(tmp_path, layout):
    from iobench.kinds.kvcache.engine import UserStats

    eng, st, g = _engine(tmp_path, layout, slots=8, verify=True)
    try:
        u = UserStats()
        keys = [("doc", j) for j in range(3)]
        eng.request(keys, 3 * 256, u)  # computed and stored
        uid = eng.tiers.uids[("doc", 1)]
        slot, gen = eng.tiers.sto.map[uid], eng.tiers.gens[uid]
        if layout == "file-per-chunk":
            path, off = st.path(uid, gen), 0
        else:
            f, i = divmod(slot, st.per_file)
            path, off = st.root / st.file_name(f), i * g.chunk_bytes
        with open(path, "r+b") as fh:  # one flipped byte in the payload, on storage
            fh.seek(off + 5000)
            b = fh.read(1)
            fh.seek(off + 5000)
            fh.write(bytes([b[0] ^ 0xFF]))
        eng.request(keys, 3 * 256, u)  # restored: all three from storage
        assert u.n["storage_hits"] == 3
        assert eng.verify_errors() == 1
        assert "CRC-32C mismatch" in eng.first_error()
    finally:
        eng.close()
        st.close(keep=False)


def test_aio_lanes_shorten_the_gil_switch_while_open_and_put_it_back(tmp_path):
    """While an AIO lane is open the GIL changes hands every 0.2 ms (the reaper's next
    read waited up to the default 5 ms behind another thread: the restores' p99); two
    engines at once keep it short until the last closes; a second close changes nothing."""
    import sys

    from iobench.engines import aio as aio_mod
    from iobench.engines import chunks as chunk_io

    if not aio_mod.available():
        pytest.skip("no Linux AIO here: no lane")
    g = geometry.geometry(model.load("tiny"), 16)
    before = sys.getswitchinterval()
    engines, stores = [], []
    try:
        for i in range(2):
            st = store.make("slab", tmp_path / f"kv{i}", g, 4)
            st.open()
            stores.append(st)
            engines.append(Engine(st, g, Tiers(0, 4, 1, False),
                                  Options(users=1, queue_depth=2, requests=1), 0))
            assert engines[-1].aio is not None
            assert sys.getswitchinterval() == pytest.approx(chunk_io.GIL_SWITCH_S)
        engines[0].close()
        engines[0].close()
        assert sys.getswitchinterval() == pytest.approx(chunk_io.GIL_SWITCH_S)
        engines[1].close()
        assert sys.getswitchinterval() == pytest.approx(before)
    finally:
        for e in engines:
            e.close()
        for st in stores:
            st.close(keep=False)
    assert sys.getswitchinterval() == pytest.approx(before)


@pytest.mark.skipif(not Path("/sys/kernel/mm/transparent_hugepage").is_dir(),
                    reason="no transparent huge pages in this kernel")
@pytest.mark.parametrize("layout", ["file-per-chunk", "slab"])
@pytest.mark.parametrize("shift", [0, 12288])
def test_chunk_buffers_on_huge_pages_restore_what_was_written(tmp_path, monkeypatch,
                                                              layout, shift, vm_flags):
    """Chunks of 2 MiB or more sit on 2 MiB-aligned buffers advised MADV_HUGEPAGE (one
    physically contiguous run per 2 MiB: 1 segment, not up to 512, per 2 MiB read), and the
    AIO reads land in exactly those views: 2.5 MiB chunks (not a whole number of huge
    pages) restored into zeroed buffers all pass their CRC, also where the view starts
    `shift` bytes into its mapping (a kernel that does not align large mappings); smaller
    chunks and huge=False stay on base pages (no 2 MiB per buffer for small chunks)."""
    from iobench.engines import chunks as chunk_io

    if shift:
        real = chunk_io.chunk_buffer

        def shifted(nbytes, huge=True):
            m, off = real(nbytes + chunk_io.HUGE, huge)
            return m, off + shift

        monkeypatch.setattr(chunk_io, "chunk_buffer", shifted)
    g = geometry.geometry(model.load("tiny"), 2560)
    assert g.chunk_bytes >= 5 * 2**19
    st = store.make(layout, tmp_path / "kv", g, 8)
    if isinstance(st, store.Slab):
        st.open()
    eng = Engine(st, g, Tiers(0, 8, 1, False),
                 Options(users=1, queue_depth=4, requests=1, verify=True), 0)
    try:
        bufs = eng.pool.buffers
        assert [a % chunk_io.HUGE for a in bufs.addrs] == [shift] * 4
        assert all("hg" in vm_flags(a) for a in bufs.addrs)
        assert [len(mv) for mv in bufs.mvs] == [g.chunk_bytes] * 4
        chunks = [(700 + j, 1, j) for j in range(8)]
        eng.write_set(chunks)
        for a in bufs.arrs:
            a[:] = 0  # a read aimed anywhere but these views leaves zeros: a CRC error
        eng.restore_once(chunks[::-1])
        assert eng.verify_errors() == 0
        assert eng.aio is None or eng.aio.w.ops["compare"] == 8
    finally:
        eng.close()
        st.close(keep=False)
    monkeypatch.undo()
    small = chunk_io.Buffers(2, 512 * 1024)
    base = chunk_io.Buffers(2, 2 << 20, huge=False)
    assert not any("hg" in vm_flags(a) for a in [*small.addrs, *base.addrs])
    # the RAM check counts what a buffer holds: whole huge pages for chunks >= 2 MiB
    assert chunk_io.buffer_bytes(g.chunk_bytes) == 4 << 20
    assert chunk_io.buffer_bytes(512 * 1024) == 512 * 1024
