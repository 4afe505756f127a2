"""Steps plug in by command: any Click command that takes --target/--results-dir and saves
a Result is a step, with no change to the runner (a stand-in command proves it here)."""

from pathlib import Path

import click

from iobench.kinds.suite import criteria as crit
from iobench.kinds.suite import runner as suite_runner
from iobench.kinds.suite.steps import StepSpec, resolve
from iobench.results import Recorder, make_phase
from iobench.runner import execute


def make_group() -> click.Group:
    @click.group()
    def g() -> None:
        pass

    @g.group("later")
    def later() -> None:
        pass

    @later.command("widget")
    @click.argument("model")
    @click.option("--target", type=click.Path(path_type=Path), required=True)
    @click.option("--results-dir", type=click.Path(path_type=Path), required=True)
    @click.option("--config", default=None)
    @click.option("--fast/--slow", default=False)
    def widget(model, target, results_dir, config, fast):
        r = Recorder(kind="widget", name=model, spec={"config": config, "fast": fast})

        def body(res):
            res.add_phase(make_phase("spin", nbytes=10, seconds=0.5, ops=1))
            res.metrics["widgets_per_s"] = 40.0 if fast else 4.0

        execute(r, body, results_dir=results_dir, target=None, render=lambda _: None)

    return g


def test_a_new_command_is_a_step(tmp_path):
    g = make_group()
    step = resolve(g, StepSpec(command="later widget big", params={
        "config": "${suite_dir}/w.yaml", "slow": False}), 0, suite_dir=Path("/suites"))
    assert step.id == "widget"
    assert step.display() == "iobench later widget big --config /suites/w.yaml --fast"
    # a command outside iobench/kinds declares no result metrics: its phases are judged
    criteria = [crit.parse("widget.spin.seconds <= 1"),
                crit.parse("widget.*.bytes == 10")]
    crit.check(criteria, {"widget": step.command_name})
    result = Recorder(kind="suite", name="t", spec={})
    outcomes: list[suite_runner.StepOutcome] = []
    suite_runner.run_steps(g, [step], result, tmp_path / "suite", tmp_path / "t", False,
                           False, lambda i, s: None, outcomes)
    assert [o.state for o in outcomes] == ["ok"]
    assert result.children[0]["spec"] == {"config": "/suites/w.yaml", "fast": True}
    verdicts = suite_runner.judge(result, criteria, outcomes, [step])
    assert [v.state for v in verdicts] == ["PASS", "PASS"]
    assert result.metrics["verdict"] == "PASS"
