"""`iobench run`: io-only suites written here, so these tests need no other workload."""

import json
from pathlib import Path

import pytest

from iobench.cli import cli
from iobench.results import load

IO_SUITE = """
name: io-mini
description: two tiny io steps
steps:
  - command: io seqwrite
    id: w
    params: {size: 256k, block-size: 64k}
    criteria: [gb_per_s > 0, "*.p99_us >= 0"]
  - command: io seqread
    id: r
    params: {size: 256k, block-size: 64k, cache: allow}
criteria: ["r.bytes == 262144", "r.seqread.ops == 4"]
"""


def write_suite(tmp_path: Path, text: str = IO_SUITE) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def run(runner, tmp_path, *extra, suite=None):
    suite = suite or write_suite(tmp_path)
    return runner.invoke(cli, ["run", str(suite), "--target", str(tmp_path / "t"),
                               "--results-dir", str(tmp_path / "res"), *extra])


def suite_result(tmp_path):
    [d] = [p for p in (tmp_path / "res").iterdir() if "-suite-" in p.name]
    return d, load(d)


def test_all_pass_exit_0_children_and_report(runner, tmp_path):
    res = run(runner, tmp_path, "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    assert "verdict: PASS" in res.output
    assert "step 2/2: r" in res.output
    d, r = suite_result(tmp_path)
    assert r.kind == "suite"
    assert r.status == "ok"
    assert [c["step_id"] for c in r.children] == ["w", "r"]
    assert [c["kind"] for c in r.children] == ["io", "io"]
    assert r.children[0]["spec"]["size"] == 256 * 1024
    assert r.metrics["criteria_passed"] == r.metrics["criteria_total"] == 4
    # every step's own result sits inside the suite's directory
    assert len(list((d / "steps").glob("*/*/result.json"))) == 2
    assert (d / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "r.html").read_text() == (d / "report.html").read_text()


def test_failing_criterion_exit_1_and_table(runner, tmp_path):
    res = run(runner, tmp_path, "--set", "r.block-size=32k")  # r.seqread.ops == 4 fails
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output
    assert "verdict: FAIL" in res.output
    _, r = suite_result(tmp_path)
    failed = [c for c in r.metrics["criteria"] if c["state"] == "FAIL"]
    assert [(c["criterion"], c["measured"]) for c in failed] == [("r.seqread.ops == 4", 8)]


def test_json_output_is_one_document(runner, tmp_path):
    res = run(runner, tmp_path, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)  # step tables went to stderr
    assert d["kind"] == "suite"
    assert d["metrics"]["verdict"] == "PASS"


def test_set_overrides_reach_the_step(runner, tmp_path):
    res = run(runner, tmp_path, "--set", "w.size=128k", "--set", "w.block_size=32k",
              "--set", "r.args=randread", "--set", "r.queue-depth=2")
    assert res.exit_code == 1, res.output  # r.seqread.* criteria now miss their phase
    _, r = suite_result(tmp_path)
    w, rr = r.children
    assert (w["spec"]["size"], w["spec"]["block_size"]) == (128 * 1024, 32 * 1024)
    assert (rr["name"], rr["spec"]["queue_depth"]) == ("randread", 2)
    assert "io seqwrite --size 128k --block-size 32k" in r.metrics["steps"][0]["command_line"]


BAD = [
    (["--set", "w.sise=1m"], "--set 'w.sise=1m': step 'w': 'io' has no option 'sise' "
                             "(did you mean 'size'?)"),
    (["--set", "x.size=1m"], "no step 'x' in this suite"),
    (["--set", "size=1m"], "write STEP.OPTION=VALUE"),
    (["--set", "w.target=/tmp"], "is set by `iobench run`"),
    (["--set", "w.size=lots"], "step 'w'"),  # Click's own type check, before running
    (["--set", "w.cache=maybe"], "'maybe' is not one of"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_overrides_exit_2_before_running(runner, tmp_path, extra, message):
    res = run(runner, tmp_path, *extra)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "res").exists()  # nothing ran


SUITE_ERRORS = [
    (IO_SUITE.replace("gb_per_s > 0", "gb_per_sec > 0"), "'io' has no metric 'gb_per_sec'"),
    (IO_SUITE.replace("r.bytes == 262144", "r.bytes = 262144"), "cannot parse 'r.bytes = 262144'"),
    (IO_SUITE.replace("command: io seqread", "command: train2 tiny"),
     "step 'r': command 'train2' is not available in this iobench"),
    (IO_SUITE.replace("command: io seqread", "command: report"),
     "'report' is not a run command"),
    (IO_SUITE.replace("id: r\n", "id: w\n"), "steps 1 and 2 are both 'w'"),
    (IO_SUITE.replace("block-size: 64k, cache", "blocksize: 64k, cache"),
     "has no option 'blocksize' (did you mean 'block-size'?)"),
    (IO_SUITE.replace("steps:", "stepz:"), "unknown key"),
    ("name: x\nsteps: []\n", "the suite has no steps"),
]


@pytest.mark.parametrize(("text", "message"), SUITE_ERRORS)
def test_bad_suite_files_exit_2(runner, tmp_path, text, message):
    res = run(runner, tmp_path, suite=write_suite(tmp_path, text))
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (tmp_path / "res").exists()


def test_unknown_suite_name(runner, tmp_path):
    res = runner.invoke(cli, ["run", "quik", "--target", str(tmp_path / "t")])
    assert res.exit_code == 2
    assert "did you mean 'quick'" in res.output


def test_failing_step_is_recorded_and_the_suite_goes_on(runner, tmp_path):
    # block size > size is refused by the io command at run time, not by Click's types
    res = run(runner, tmp_path, "--set", "w.block-size=1m")
    assert res.exit_code == 1, res.output
    _, r = suite_result(tmp_path)
    assert r.status == "failed"
    steps = r.metrics["steps"]
    assert [s["state"] for s in steps] == ["error", "ok"]
    assert "larger than --size" in steps[0]["reason"]
    w_criteria = [c for c in r.metrics["criteria"] if c["step"] == "w"]
    assert {c["state"] for c in w_criteria} == {"FAIL"}
    assert all(c["note"].startswith("step error") for c in w_criteria)


def test_ctrl_c_keeps_finished_steps(runner, tmp_path, monkeypatch):
    from iobench.engines import native

    real = native.run
    calls = []

    def interrupt_second(spec, **kw):
        calls.append(spec.pattern)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec, **kw)

    monkeypatch.setattr(native, "run", interrupt_second)
    rr_step = """  - command: io randread
    id: rr
    params: {size: 256k, block-size: 4k}
    criteria: [ops_per_s > 0]
criteria:"""
    text = IO_SUITE.replace("criteria: [\"r.bytes", "criteria: [\"rr.ops_per_s > 0\", \"r.bytes")
    text = text.replace("\ncriteria:", "\n" + rr_step)
    res = run(runner, tmp_path, suite=write_suite(tmp_path, text))
    assert res.exit_code == 130, res.output
    _, r = suite_result(tmp_path)
    assert r.status == "partial"
    assert r.metrics["verdict"] == "INCOMPLETE"
    assert [s["state"] for s in r.metrics["steps"]] == ["ok", "interrupted"]
    assert [c["status"]["state"] for c in r.children] == ["ok", "partial"]
    states = {c["criterion"]: c["state"] for c in r.metrics["criteria"]}
    assert states["gb_per_s > 0"] == "PASS"
    assert states["ops_per_s > 0"] == "SKIP"  # step rr never ran
    assert states["rr.ops_per_s > 0"] == "SKIP"
    # step r was cut before it measured anything: unknown, not failed
    r_bytes = next(c for c in r.metrics["criteria"] if c["criterion"] == "r.bytes == 262144")
    assert (r_bytes["state"], r_bytes["note"][:31]) == ("SKIP", "step interrupted before it meas")


def test_shipped_suites_check_out(runner, tmp_path):
    """Every shipped suite resolves: commands exist, options and criteria are known."""
    from iobench import presets

    names = presets.names("suites")
    assert {"quick", "training-node", "inference-node", "prepurchase"} <= set(names)
    for name in names:
        res = runner.invoke(cli, ["run", name, "--dry-run", "--target", str(tmp_path / "t")])
        assert res.exit_code == 0, (name, res.output)
        assert "Criteria" in res.output


def test_a_step_records_its_own_command_line(runner, tmp_path):
    res = run(runner, tmp_path)
    assert res.exit_code == 0, res.output
    _, r = suite_result(tmp_path)
    lines = [c["command_line"] for c in r.children]
    assert [cl[1:3] for cl in lines] == [["io", "seqwrite"], ["io", "seqread"]]
    assert all("run" not in cl[:2] for cl in lines)
