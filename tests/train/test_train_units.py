"""Pure parts of the training replay: epoch order, AU, run agreement, windows, find-max."""

import os

import numpy as np
import pytest

from iobench.errors import UsageError
from iobench.kinds.train import figures as m
from iobench.kinds.train import findmax
from iobench.kinds.train.plan import SampleTable, epoch_order, plan_epoch


def table(nfiles=4, per=3, size=100):
    return SampleTable.from_files(
        [(np.arange(per) * size, np.full(per, size)) for _ in range(nfiles)])


def test_epoch_order_is_seeded_permutation_per_epoch():
    t = table()
    a = epoch_order(t, seed=1, epoch=0, shuffle="sample")
    assert sorted(a.tolist()) == list(range(12))
    assert np.array_equal(a, epoch_order(t, seed=1, epoch=0, shuffle="sample"))
    assert not np.array_equal(a, epoch_order(t, seed=1, epoch=1, shuffle="sample"))
    assert not np.array_equal(a, epoch_order(t, seed=2, epoch=0, shuffle="sample"))
    assert epoch_order(t, 1, 0, "none").tolist() == list(range(12))


def test_file_shuffle_keeps_samples_of_a_file_together_and_in_order():
    t = table()
    o = epoch_order(t, seed=3, epoch=0, shuffle="file")
    files = t.file_index[o].reshape(4, 3)
    assert all(len(set(row)) == 1 for row in files.tolist())  # one file per run of 3
    assert (np.diff(o.reshape(4, 3), axis=1) == 1).all()  # in file order
    firsts = {tuple(t.file_index[epoch_order(t, seed, 0, "file")][::3]) for seed in range(5)}
    assert len(firsts) > 1  # the file order does change with the seed


def test_plan_epoch_batches_and_drop_last():
    t = table(nfiles=5, per=3)  # 15 samples
    p = plan_epoch(t, accelerators=2, batch_size=3, seed=0, epoch=0, shuffle="sample")
    assert p.steps == 2  # 15 // 6, the last 3 samples dropped
    assert p.order.size == 12
    got = np.concatenate([p.batch(s, a) for s in range(2) for a in range(2)])
    assert np.array_equal(got, p.order)
    assert plan_epoch(t, accelerators=1, batch_size=1, seed=0, epoch=0, shuffle="none",
                      max_steps=4).steps == 4
    with pytest.raises(UsageError, match="15 samples but 4 accelerator"):
        plan_epoch(t, accelerators=4, batch_size=4, seed=0, epoch=0, shuffle="none")


def test_au_excludes_first_step_hand_computed():
    # steps end at 10, 20, 40 (ns); accelerators computed 8 and 6 in steps 1 and 2
    ends = [10, 20, 40]
    comp = np.array([[10, 8, 15], [10, 6, 15]])
    # busy after step 0 = mean(8+15, 6+15) = 22; wall = 40 - 10 = 30
    assert m.au_pct(ends, comp) == pytest.approx(100 * 22 / 30)
    assert m.au_pct([5], np.array([[5]])) is None  # nothing after the first step
    assert m.au_pct(ends, np.zeros((2, 3))) is None  # no compute: AU undefined
    busy, wall = m.au_parts(ends, comp)
    assert (busy, wall) == (22.0, 30.0)
    # overall = total busy / total wall, not the mean of the percentages
    assert m.au_overall([(22.0, 30.0), (10.0, 10.0)]) == pytest.approx(100 * 32 / 40)


def test_runs_summary_agreement():
    s = m.runs_summary([100.0, 102.0, 98.0])
    assert s.mean == pytest.approx(100.0)
    assert s.stdev == pytest.approx(2.0)
    assert s.cv_pct == pytest.approx(2.0)
    assert s.agree
    bad = m.runs_summary([100.0, 100.0, 120.0])
    assert not bad.agree
    assert bad.spread_pct == pytest.approx(100 * 20 / (320 / 3))


def test_window_bins_cpu_and_client_limited():
    assert m.window_bins([(1.5, 2.2), (4.0, 4.1)], 1.0, 6) == [
        False, True, True, False, True, False]
    assert m.cpu_util_pct(3.0, 2.0, 2) == pytest.approx(75.0)
    assert m.client_limited(95.0, 50.0, 90.0, 0.1)  # busy client, starving accelerators
    assert not m.client_limited(95.0, 95.0, 90.0, 0.1)  # AU met: nothing limits
    assert not m.client_limited(40.0, 50.0, 90.0, 0.1)  # idle client: storage limits
    assert m.client_limited(90.0, None, 90.0, 0.0)  # no compute, client flat out


@pytest.mark.parametrize("answer", [0, 1, 2, 5, 13, 64])
def test_findmax_search_finds_the_largest_passing_count(answer):
    calls = []

    def probe(n):
        calls.append(n)
        return findmax.Probe(n, 100.0 if n <= answer else 50.0, n <= answer)

    s = findmax.search(probe, limit=64)
    assert s.best == answer
    assert len(calls) == len(set(calls))  # no count probed twice
    assert len(calls) <= 2 * 7 + 1


def test_findmax_search_starts_high_and_confirm_steps_down():
    s = findmax.search(lambda n: findmax.Probe(n, None, n <= 3), limit=100, start=10)
    assert s.best == 3
    out = findmax.Search()
    fed = findmax.confirm(lambda n: findmax.Probe(n, None, n <= 4, kind="confirm"), 6, out)
    assert fed == 4
    assert [p.accelerators for p in out.probes] == [6, 5, 4]


def test_client_limited_when_other_processes_take_the_cpu():
    # this run used 48% of the cores, but the host was saturated with load 6 on 2 cores
    crowded = {"host_busy_pct": 99.0, "steal_pct": 0.0, "others_pct": 51.0, "load1": 6.0,
               "runnable": 7.0, "ncpu": 2.0}
    limited, why = m.client_limited_why(48.0, 50.0, 90.0, 0.1, crowded)
    assert limited
    assert "host's cores were 99% busy" in why
    assert "other processes 51%" in why
    quiet = {"host_busy_pct": 50.0, "steal_pct": 0.0, "others_pct": 2.0, "load1": 0.5,
             "runnable": 1.0, "ncpu": 2.0}
    assert m.client_limited_why(48.0, 50.0, 90.0, 0.1, quiet) == (
        False, "CPU not saturated: this run 48%, host 50% busy, load 0.5 on 2 cores")
    assert not m.client_limited(48.0, 95.0, 90.0, 0.1, crowded)  # AU met: nothing limits


def test_host_window_from_proc_stat_deltas():
    tick = os.sysconf("SC_CLK_TCK")
    before = {"user": 0, "nice": 0, "system": 0, "idle": 0, "iowait": 0, "irq": 0,
              "softirq": 0, "steal": 0}
    after = dict(before, user=150, system=30, idle=10, steal=10)  # 200 ticks in all
    h = m.host_window(before, after, own_cpu_s=60 / tick, wall_s=1.0, ncpu=2, load1=3.0,
                      runnable=4)
    assert h["host_busy_pct"] == 95.0
    assert h["steal_pct"] == 5.0
    assert h["others_pct"] == 60.0  # 95 busy - 5 steal - 30 own
