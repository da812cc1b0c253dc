"""Best checkpoint per task: one rule for which metric ranks a task (shared with the sweep comparison), and the
tracker improving only on finite smaller values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mtbench.spec.tasks import TaskSpec
from mtbench.train.best import RANKING_ORDER, BestTracker, best_metric_name, ranking_metric
from mtbench.loss import build_loss
from mtbench.spec.tasks import task_view
from mtbench.train.run import prepare_spec


def _task(fitting: dict, loss: dict) -> TaskSpec:
    return TaskSpec(name="t", fitting_net=fitting, loss=loss, training_data={}, validation_data=None, weight=1.0,
                    learning_rate={})


def test_metric_that_ranks_a_task() -> None:
    assert best_metric_name(_task({"type": "ener"}, {})) == "rmse_f"  # DeePMD's default force prefactors
    assert best_metric_name(_task({}, {"start_pref_f": 0, "limit_pref_f": 0})) == "rmse_e"
    assert best_metric_name(_task({"type": "ener"}, {"start_pref_f": 0, "limit_pref_f": 2})) == "rmse_f"
    assert best_metric_name(_task({"type": "dipole"}, {"type": "tensor", "pref": 1})) == "rmse"
    assert best_metric_name(_task({"type": "polar"}, {"type": "tensor"})) == "rmse"


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
    written = tr.write(tmp_path)  # a run folder: checkpoints/best.json
    assert written == tmp_path / "checkpoints" / "best.json"
    assert json.loads(written.read_text()) == expected


def test_summary_is_a_copy() -> None:
    tr = BestTracker({"a": "rmse"})
    tr.improves("a", {"rmse": 1.0}, 1)
    tr.summary()["a"]["value"] = -1.0
    assert tr.summary()["a"]["value"] == 1.0


@pytest.mark.parametrize(("reported", "expected"), [
    (("rmse", "rmse_e", "rmse_f", "rmse_v"), "rmse_f"),
    (("rmse", "rmse_e"), "rmse_e"),
    (("rmse", "rmse_lc", "rmse_gl"), "rmse"),
    (("rmse_gl", "rmse_lc"), "rmse_gl"),
    ((), "rmse"),
])
def test_ranking_metric(reported: tuple[str, ...], expected: str) -> None:
    assert ranking_metric(reported) == expected


def test_order_prefers_terms_whose_prefactors_do_not_move() -> None:
    assert RANKING_ORDER[-1] == "rmse"  # the total loss only when nothing better is reported


@pytest.mark.parametrize(("loss", "expected"), [
    ({}, "rmse_f"),
    ({"start_pref_f": 0, "limit_pref_f": 0}, "rmse_e"),
    ({"start_pref_f": 0, "limit_pref_f": 0, "start_pref_e": 0, "limit_pref_e": 0, "start_pref_v": 1,
      "limit_pref_v": 1}, "rmse"),
])
def test_best_metric_is_one_the_loss_reports(tiny_spec, loss: dict, expected: str) -> None:
    """The trainer ranks by a metric its loss really reports (else no best checkpoint would ever be kept)."""
    spec = tiny_spec(tasks=("water_ener", "water_dipole"))
    spec["loss_dict"]["water_ener"].update(loss)
    tasks = task_view(prepare_spec(spec, None))
    for name, ts in tasks.items():
        built = build_loss(ts.loss, ts.fitting_net, 2)
        assert best_metric_name(ts) == ranking_metric(built.metric_names)
        assert best_metric_name(ts) in built.metric_names
    assert best_metric_name(tasks["water_ener"]) == expected
    assert best_metric_name(tasks["water_dipole"]) == "rmse"
