import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iobench.stats import (
    NBUCKETS,
    Histogram,
    LatencyRecorder,
    Timeline,
    bucket_bounds,
    bucket_index,
    mean_stdev,
)


def test_hand_computed_small_set():
    # 10 values 100..1000 ns: nearest-rank p50 = 5th value = 500, p90 = 9th = 900
    h = Histogram()
    h.record_many([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    s = h.summary()
    assert s["count"] == 10
    assert s["mean"] == 550.0
    assert s["stddev"] == pytest.approx(math.sqrt(82500.0))  # population stddev
    assert s["min"] == 100
    assert s["max"] == 1000
    assert abs(s["p50"] - 500) / 500 <= 0.004
    assert abs(s["p90"] - 900) / 900 <= 0.004
    assert s["p99"] == 1000  # rank 10 = the max, exact


def test_exact_below_128():
    h = Histogram()
    h.record_many([1, 2, 3, 4, 5])
    assert h.percentile(50) == 3
    assert h.percentile(0) == 1
    assert h.percentile(100) == 5


def test_bucket_roundtrip_every_bucket():
    idx = np.arange(NBUCKETS)
    low, high = bucket_bounds(idx)
    assert (bucket_index(low) == idx).all()
    assert (bucket_index(high - 1) == idx).all()
    # relative width <= 1/128 above the exact range
    big = low >= 128
    assert ((high[big] - low[big]) / low[big] <= 1 / 128 + 1e-12).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=3000))
def test_percentiles_match_numpy_within_1pct(seed, n):
    rng = np.random.default_rng(seed)
    v = rng.lognormal(11, 1.5, n).astype(np.int64) + 1
    h = Histogram()
    h.record_many(v)
    for p in (50, 90, 99, 99.9, 99.99):
        ref = float(np.percentile(v, p, method="inverted_cdf"))
        got = h.percentile(p)
        assert abs(got - ref) / ref <= 0.01, (p, ref, got)


def test_merge_equals_recording_all():
    rng = np.random.default_rng(7)
    a = rng.integers(1000, 10**7, 5000)
    b = rng.integers(10**5, 10**9, 7000)
    ha, hb, hall = Histogram(), Histogram(), Histogram()
    ha.record_many(a)
    hb.record_many(b)
    hall.record_many(np.concatenate([a, b]))
    merged = Histogram.merged([ha, hb])
    assert (merged.counts == hall.counts).all()
    ms, hs = merged.summary(), hall.summary()
    assert ms == pytest.approx(hs, rel=1e-12)  # sum of squares differs in float rounding only
    # and averaging per-worker p99 would be wrong: the merge is not the mean of the two
    assert merged.percentile(99) != pytest.approx((ha.percentile(99) + hb.percentile(99)) / 2)


def test_dict_roundtrip_and_from_buckets():
    h = Histogram()
    h.record_many([5, 500, 5000, 5000, 50000])
    h2 = Histogram.from_dict(h.to_dict())
    assert h2.summary() == h.summary()
    h3 = Histogram.from_buckets([(5, 1), (500, 1), (5000, 2), (50000, 1)])
    assert h3.summary() == h.summary()


def test_empty_histogram():
    h = Histogram()
    assert h.percentile(99) is None
    assert h.summary()["p50"] is None
    assert h.mean is None


def test_recorder_batches():
    r = LatencyRecorder(batch=4)
    for v in range(1, 11):
        r.add(v * 1000)
    h = r.flush()
    assert h.count == 10
    assert h.max == 10000


def test_timeline_merge_aligns_on_time():
    s = 1_000_000_000
    a = Timeline(start_ns=10 * s)
    a.add(10 * s + 1, 100)
    a.add(12 * s, 50)
    b = Timeline(start_ns=9 * s)
    b.add(9 * s, 7)
    b.add(11 * s, 3)
    a.merge(b)
    assert a.start_ns == 9 * s
    assert a.bins == [7, 100, 3, 50]


def test_mean_stdev():
    m, sd = mean_stdev([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert m == 5.0
    assert sd == pytest.approx(2.138089935)  # sample stddev (n-1)
