"""Metric names are a public interface: pin their spelling."""

from __future__ import annotations

import pytest

from mtbench.tracking import names


def test_per_task_names():
    assert names.train_metric("water_ener", "rmse_e") == "train/water_ener/rmse_e"
    assert names.val_metric("water_dipole", "rmse_gl") == "val/water_dipole/rmse_gl"
    assert names.metric_on_test("water_ener", "rmse_f") == "test/water_ener/rmse_f"
    assert names.sampling_count("water_ener") == "sampling/water_ener/count"
    assert names.sampling_fraction("water_ener") == "sampling/water_ener/fraction"
    assert names.max_neighbors("water_ener", "O") == "data/water_ener/max_neighbors/O"
    assert names.grad_norm("water_ener") == "grad/water_ener/norm"
    assert names.LR == "lr"
    assert names.STEP_TIME == "time/step_s"


def test_lcurve_metric_sets_follow_deepmd():
    assert names.ENERGY_METRICS == ("rmse", "rmse_e", "rmse_f", "rmse_v", "rmse_ae", "rmse_pf")
    assert names.TENSOR_METRICS == ("rmse", "rmse_lc", "rmse_gl")


def test_grad_cos_is_order_independent():
    assert names.grad_cos("b_task", "a_task") == "grad/cos/a_task__b_task"
    assert names.grad_cos("a_task", "b_task") == names.grad_cos("b_task", "a_task")


@pytest.mark.parametrize("column, expected", [
    ("rmse_e_trn", "train/w/rmse_e"),
    ("rmse_val", "val/w/rmse"),
    ("rmse_lc_val", "val/w/rmse_lc"),
    ("lr", "lr"),
])
def test_from_lcurve_column(column, expected):
    assert names.from_lcurve_column("w", column) == expected


@pytest.mark.parametrize("column", ["rmse", "step", "_trn"])
def test_from_lcurve_column_rejects_unknown(column):
    with pytest.raises(ValueError, match="lcurve column"):
        names.from_lcurve_column("w", column)


@pytest.mark.parametrize("task", ["a/b", "", "..", "bad:name", "x*"])
def test_bad_task_names_raise(task):
    with pytest.raises(ValueError, match="cannot be part of a metric name"):
        names.train_metric(task, "rmse")


def test_parse_metric_name():
    assert names.parse_metric_name("val/water_ener/rmse_f") == ("val", "water_ener", "rmse_f")
    assert names.parse_metric_name("data/w/max_neighbors/O") == ("data", "w", "max_neighbors/O")
    assert names.parse_metric_name("test/h/rmse") == ("test", "h", "rmse")
    assert names.parse_metric_name("lr") is None
    assert names.parse_metric_name("time/step_s") is None
    assert names.parse_metric_name("grad/cos/a__b") is None
