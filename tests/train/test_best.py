"""Best checkpoint per task: which metric ranks a task, and the tracker improving only on finite smaller values."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mtbench.spec.tasks import TaskSpec
from mtbench.train.best import BestTracker, best_metric_name


def _task(fitting: dict, loss: dict) -> TaskSpec:
    return TaskSpec(name="t", fitting_net=fitting, loss=loss, training_data={}, validation_data=None, weight=1.0,
                    learning_rate={})


def test_metric_that_ranks_a_task() -> None:
    assert best_metric_name(_task({"type": "ener"}, {})) == "rmse_f"  # DeePMD's default force prefactors
    assert best_metric_name(_task({}, {"start_pref_f": 0, "limit_pref_f": 0})) == "rmse_e"
    assert best_metric_name(_task({"type": "ener"}, {"start_pref_f": 0, "limit_pref_f": 2})) == "rmse_f"
    assert best_metric_name(_task({"type": "dipole"}, {"pref": 1})) == "rmse"
    assert best_metric_name(_task({"type": "polar"}, {})) == "rmse"


def test_improves_only_on_finite_smaller_values(tmp_path: Path) -> None:
    tr = BestTracker({"a": "rmse_f", "b": "rmse"})
    assert not tr.improves("a", {"rmse_f": math.nan}, 0)
    assert not tr.improves("a", {"rmse_f": math.inf}, 0)
    assert not tr.improves("a", {"rmse": 0.1}, 0)  # its metric is missing
    assert tr.improves("a", {"rmse_f": 0.5, "rmse": 9.0}, 10)
    assert not tr.improves("a", {"rmse_f": 0.5}, 20)  # equal is not better
    assert not tr.improves("a", {"rmse_f": 0.7}, 30)
    assert not tr.improves("a", {"rmse_f": -math.inf}, 35)
    assert tr.improves("a", {"rmse_f": 0.25}, 40)
    assert tr.improves("b", {"rmse": 3.0}, 40)
    expected = {"a": {"metric": "rmse_f", "value": 0.25, "step": 40, "checkpoint": "best.a.h5"},
                "b": {"metric": "rmse", "value": 3.0, "step": 40, "checkpoint": "best.b.h5"}}
    assert tr.summary() == expected
    tr.write(tmp_path / "best.json")
    assert json.loads((tmp_path / "best.json").read_text()) == expected


def test_summary_is_a_copy() -> None:
    tr = BestTracker({"a": "rmse"})
    tr.improves("a", {"rmse": 1.0}, 1)
    tr.summary()["a"]["value"] = -1.0
    assert tr.summary()["a"]["value"] == 1.0
