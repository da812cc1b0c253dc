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


def test_best_and_probability_builders() -> None:
    assert names.best_metric("water_ener", "rmse_f") == "best/water_ener/rmse_f"
    assert names.sampling_probability("water_ener") == "sampling/water_ener/probability"
    assert names.parse_metric_name("best/water_ener/rmse_f") == ("best", "water_ener", "rmse_f")


class RecordingTracker:
    """A tracker that keeps every metric name the trainer logs."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def log_metrics(self, metrics, step: int) -> None:
        self.keys.update(metrics)

    def set_tags(self, tags) -> None:
        pass


def test_trainer_logs_only_names_the_builders_make(tiny_spec, tmp_path) -> None:
    """Every key the trainer (and its diagnostics) logs is one of names.py's: per-task names parse back to a task
    of the run and rebuild to the same string through their builder; the rest are the global names."""
    from mtbench.train.run import prepare_spec
    from mtbench.train.trainer import Trainer

    tracker = RecordingTracker()
    spec = tiny_spec(tasks=("water_ener", "water_dipole"), steps=4)
    Trainer(prepare_spec(spec, None), tmp_path, progress=False, tracker=tracker).train()
    tasks = {"water_ener", "water_dipole"}
    rebuild = {"train": names.train_metric, "val": names.val_metric, "best": names.best_metric,
               "sampling": lambda t, m: {"count": names.sampling_count, "fraction": names.sampling_fraction,
                                         "probability": names.sampling_probability}[m](t),
               "data": lambda t, m: names.max_neighbors(t, m.removeprefix("max_neighbors/")),
               "grad": lambda t, m: names.grad_norm(t) if m == "norm" else None}
    seen_groups = set()
    for key in tracker.keys:
        parsed = names.parse_metric_name(key)
        if parsed is None:
            assert key in (names.LR, names.STEP_TIME) or key == names.grad_cos("water_dipole", "water_ener"), key
            continue
        assert parsed.task in tasks, key
        assert rebuild[parsed.group](parsed.task, parsed.metric) == key
        seen_groups.add(parsed.group)
    assert seen_groups == {"train", "val", "best", "sampling", "data", "grad"}
    assert names.grad_cos("water_ener", "water_dipole") in tracker.keys
    assert names.best_metric("water_ener", "rmse_f") in tracker.keys
    assert names.best_metric("water_dipole", "rmse") in tracker.keys
