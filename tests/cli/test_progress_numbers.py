"""The progress bar's rate and the summary title measure the same thing: training steps, validation excluded."""

from __future__ import annotations

import math

import pytest

from mtbench.train.progress import TrainingProgress
from mtbench.cli.train import summary_title


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_rate_excludes_validation() -> None:
    clock = FakeClock()
    bar = TrainingProgress(10, ["a", "b"], enabled=False, clock=clock)
    assert math.isnan(bar.rate) and bar.rate_text() == ""
    clock.t = 3.0            # step-0 validation (graph building) ...
    bar.set_val("a", 1.0)
    bar.set_val("b", 1.0)
    clock.t = 4.0            # ... then the first step: 1 s
    bar.advance("a", 0.5)
    clock.t = 4.5            # second step: 0.5 s
    bar.advance("b", 0.5)
    clock.t = 9.5            # 5 s of validation
    bar.set_val("a", 0.4)
    clock.t = 10.0           # third step: 0.5 s
    bar.advance("a", 0.3)
    assert bar.train_steps == 3
    assert bar.train_s == pytest.approx(2.0)
    assert bar.rate == pytest.approx(1.5)
    assert bar.rate_text() == "1.5 training steps/s, 0:04 left"  # 7 steps left at 1.5/s


def test_plain_lines_on_a_pipe() -> None:
    """Not a terminal: no live display, one flushed line per display with losses, rate and time left."""
    import io

    clock, out = FakeClock(), io.StringIO()
    with TrainingProgress(10, ["a", "b"], clock=clock, stream=out) as bar:
        assert not bar.live and bar._progress is None
        bar.set_val("a", 1.0)
        bar.report(0)
        clock.t = 2.0
        bar.advance("b", 0.25)
        bar.set_val("b", 0.5)
        bar.report(1)
    assert out.getvalue().splitlines() == [
        "mtbench: step 0/10  a trn -  val 1  b trn -  val -",
        "mtbench: step 1/10  a trn -  val 1  b trn 0.25  val 0.5  0.5 training steps/s, 0:18 left"]
    quiet = io.StringIO()
    TrainingProgress(10, ["a"], enabled=False, stream=quiet).report(0)  # --no-progress: nothing
    assert quiet.getvalue() == ""


def test_summary_title_splits_the_wall_time() -> None:
    summary = {"steps": 50, "wall_s": 4.0, "timing": {"steps": [20, 40, 50], "step_s": [0.05, 0.04, 0.03]}}
    # training: 20 * 0.05 + 20 * 0.04 + 10 * 0.03 = 2.1 s
    assert summary_title(summary) == ("mtbench: 50 steps in 4.0 s (training 2.1 s = 23.8 steps/s; "
                                      "set-up, validation, checkpoints 1.9 s)")
    resumed = dict(summary, start_step=10, timing={"steps": [20, 40], "step_s": [0.1, 0.05]})
    # a resumed run says which steps this process trained and how many there are in all (issue 10)
    assert summary_title(resumed) == ("mtbench: 40 steps in this process (resumed at 10, 50 in total) in 4.0 s "
                                      "(training 2.0 s = 15.0 steps/s; set-up, validation, checkpoints 2.0 s)")
    assert summary_title({"steps": 0, "wall_s": 0.5, "timing": {"steps": [], "step_s": []}}) == \
        "mtbench: 0 steps in 0.5 s"
