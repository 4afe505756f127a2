"""client_stats of a real two-server run (data/, made by make_golden.py) parsed without
fio: per-client phases, the aggregate, merged percentiles against numpy on the union of
the clients' json+ bins. Expected numbers were read off the JSON file by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iobench.engines import fio, fio_hosts
from iobench.errors import RunFailed
from iobench.stats import Histogram

GOLDEN = Path(__file__).parent / "data" / "clients-2x2-randread.jsonplus.json"
SERVERS = [fio_hosts.parse_address("127.0.0.1,18801"),
           fio_hosts.parse_address("ip:127.0.0.1,18802")]


def golden() -> dict:
    return fio.load_output(GOLDEN.read_text())


def parsed(doc: dict | None = None, servers=SERVERS):
    return fio_hosts.parse_clients(doc or golden(), servers, "randread")


def union_of_bins(doc: dict) -> np.ndarray:
    vals, counts = [], []
    for job in doc["client_stats"]:
        bins = job["read"]["lat_ns"].get("bins") or {}  # "All clients" has none
        vals += [int(v) for v in bins]
        counts += [int(c) for c in bins.values()]
    return np.repeat(np.array(vals), np.array(counts))


def test_aggregate_sums_the_clients_and_uses_the_longest_runtime():
    phases, missing = parsed()
    assert missing == []
    agg, c0, c1 = phases
    assert [p["name"] for p in phases] == ["randread", "randread@127.0.0.1:18801",
                                           "randread@127.0.0.1:18802"]
    # 4 jobs x (1048576 bytes, 256 ios); runtimes 65, 64 ms (h0) and 43, 42 ms (h1)
    assert (agg["bytes"], agg["ops"], agg["seconds"]) == (4194304, 1024, 0.065)
    assert (c0["bytes"], c0["ops"], c0["seconds"]) == (2097152, 512, 0.065)
    assert (c1["bytes"], c1["ops"], c1["seconds"]) == (2097152, 512, 0.043)
    assert agg["bytes"] == c0["bytes"] + c1["bytes"]
    assert agg["bytes_per_s"] == pytest.approx(4194304 / 0.065)
    m = agg["metrics"]
    assert m["clients"] == 2
    assert m["client_names"] == ["127.0.0.1:18801", "127.0.0.1:18802"]
    assert m["client_gb_per_s_min"] == pytest.approx(2097152 / 0.065 / 1e9)
    assert m["client_gb_per_s_max"] == pytest.approx(2097152 / 0.043 / 1e9)
    assert m["client_gb_per_s_median"] == pytest.approx(
        (2097152 / 0.065 + 2097152 / 0.043) / 2e9)
    assert (m["slowest_client"], m["fastest_client"]) == ("127.0.0.1:18801", "127.0.0.1:18802")
    assert (m["first_done_s"], m["last_done_s"]) == (0.043, 0.065)
    assert m["fio_all_clients_bytes"] == 4194304  # fio's own sum agrees
    assert c0["metrics"]["client"] == "127.0.0.1:18801"
    assert c1["metrics"]["client_address"] == "ip:127.0.0.1,18802"
    assert c0["metrics"]["server_hostname"] == "vm"  # from fio's "<vm> h0.randread.0: ..."


def test_merged_percentiles_match_numpy_on_the_union_of_bins():
    doc = golden()
    agg, c0, c1 = parsed(doc)[0]
    values = union_of_bins(doc)
    assert agg["latency_ns"]["count"] == values.size == 1024
    for key, pct in (("p50", 50), ("p90", 90), ("p99", 99)):
        want = float(np.percentile(values, pct, method="inverted_cdf"))
        assert agg["latency_ns"][key] == pytest.approx(want, rel=0.01), key
    # fio's exact min/max/mean across the 4 jobs (All clients: 31719, 4758043, 206589.4)
    lat = agg["latency_ns"]
    assert (lat["min"], lat["max"]) == (31719, 4758043)
    assert lat["mean"] == pytest.approx(206589.4, abs=0.1)
    # the aggregate histogram is exactly the clients' histograms added
    merged = Histogram.merged(Histogram.from_dict(p["histogram"]) for p in (c0, c1))
    assert np.array_equal(Histogram.from_dict(agg["histogram"]).counts, merged.counts)
    assert lat["p99"] == merged.percentile(99)
    # not the average of the clients' p99s: the two differ from it here
    assert lat["p99"] != pytest.approx((c0["latency_ns"]["p99"] + c1["latency_ns"]["p99"]) / 2,
                                       rel=0.01)


def test_without_fios_all_clients_entry_the_aggregate_is_the_same():
    # fio issue 1881: "All clients" is missing when job files have several sections
    doc = golden()
    doc["client_stats"] = [j for j in doc["client_stats"] if j["jobname"] != "All clients"]
    full = parsed()[0]
    phases = parsed(doc)[0]
    assert phases[0]["bytes"] == full[0]["bytes"]
    assert phases[0]["latency_ns"] == full[0]["latency_ns"]
    assert "fio_all_clients_bytes" not in phases[0]["metrics"]


def test_a_server_that_reported_nothing_is_named():
    third = fio_hosts.parse_address("127.0.0.1,18803")
    phases, missing = parsed(servers=[*SERVERS, third])
    assert missing == [third]
    assert phases[0]["bytes"] == 4194304  # the two that reported are kept


def test_foreign_output_and_job_errors_fail():
    with pytest.raises(RunFailed, match="only 1 server"):
        parsed(servers=SERVERS[:1])
    doc = golden()
    doc["client_stats"][2]["error"] = 5
    with pytest.raises(RunFailed, match=r"127.0.0.1:18802 h1.randread.0: error 5"):
        parsed(doc)


def test_jobfiles_give_each_client_its_own_files_and_drop_via_invalidate(tmp_path):
    from iobench.engines import IOSpec

    spec = IOSpec(pattern="seqread", size=1 << 20, block_size=65536, jobs=2)
    t0, t1 = fio_hosts.jobfiles(spec, 2, tmp_path, "drop")
    assert f"filename={tmp_path}/h0.job0.dat" in t0
    assert f"filename={tmp_path}/h0.job1.dat" in t0
    assert f"filename={tmp_path}/h1.job0.dat" in t1
    assert "h1." not in t0
    assert "h0." not in t1
    assert "[h1.seqread.0]" in t1
    assert "invalidate=1" in t0
    assert "invalidate=0" not in t0
    (a,) = fio_hosts.jobfiles(spec, 1, tmp_path, "allow")
    assert "invalidate=0" in a
    w = fio_hosts.jobfiles(IOSpec(pattern="seqwrite", size=1 << 20, block_size=65536,
                                  jobs=1), 1, tmp_path, "drop")[0]
    assert "invalidate=0" in w  # writes: nothing to drop
