"""One rule for "which metric ranks a task": the best checkpoint and the sweep comparison share it."""

from __future__ import annotations

import pytest

from mtbench.loss import build_loss
from mtbench.spec.tasks import task_view
from mtbench.train.best import RANKING_ORDER, best_metric_name, ranking_metric
from mtbench.train.run import prepare_spec


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
