"""Task sampling schedules: counts follow the requested probabilities; budgets are met exactly."""

from __future__ import annotations

import numpy as np
import pytest

from mtbench.errors import SpecError
from mtbench.train.sampler import TaskSampler


def draw(sampler: TaskSampler, n: int) -> dict[str, int]:
    for _ in range(n):
        sampler.draw()
    return dict(sampler.counts)


def test_counts_match_weights_within_binomial_tolerance() -> None:
    weights = {"a": 20.0, "b": 10.0, "c": 1.0}
    n = 10_000
    counts = draw(TaskSampler(list(weights), weights, np.random.default_rng(0)), n)
    total = sum(weights.values())
    for t, w in weights.items():
        p = w / total
        assert abs(counts[t] - n * p) <= 4 * np.sqrt(n * p * (1 - p)), (t, counts)


def test_zero_weight_task_is_never_drawn() -> None:
    counts = draw(TaskSampler(["a", "b"], {"a": 1.0, "b": 0.0}, np.random.default_rng(1)), 10_000)
    assert counts == {"a": 10_000, "b": 0}


def test_all_zero_weights_is_an_error() -> None:
    with pytest.raises(SpecError, match="fitting_weight"):
        TaskSampler(["a"], {"a": 0.0}, np.random.default_rng(0))


def test_temperature_sampling_follows_dataset_size() -> None:
    tasks = ["small", "big"]
    frames = {"small": 100, "big": 10_000}
    one = TaskSampler.from_spec({"type": "temperature", "temperature": 1.0}, tasks, {"small": 1, "big": 1},
                                frames, frames, np.random.default_rng(0))
    np.testing.assert_allclose(one.requested, [100 / 10_100, 10_000 / 10_100])
    hot = TaskSampler.from_spec({"type": "temperature", "temperature": 1e6}, tasks, {"small": 1, "big": 1},
                                frames, frames, np.random.default_rng(0))
    np.testing.assert_allclose(hot.requested, [0.5, 0.5], atol=1e-4)
    two = TaskSampler.from_spec({"type": "temperature", "temperature": 2.0}, tasks, {"small": 1, "big": 1},
                                frames, frames, np.random.default_rng(0))
    np.testing.assert_allclose(two.requested, [10 / 110, 100 / 110])


def test_epoch_budgets_are_met_exactly() -> None:
    tasks = ["a", "b"]
    s = TaskSampler.from_spec({"type": "epochs", "epochs": {"a": 2, "b": 0.5}}, tasks, {"a": 1, "b": 1},
                              {"a": 30, "b": 40}, {"a": 30, "b": 40}, np.random.default_rng(3))
    assert s.total_budget == 80
    n = 0
    while not s.exhausted():
        s.draw()
        n += 1
    assert n == 80 and s.counts == {"a": 60, "b": 20}


def test_epochs_for_unknown_task_is_an_error() -> None:
    with pytest.raises(SpecError, match="training.sampling.epochs.zzz"):
        TaskSampler.from_spec({"type": "epochs", "epochs": {"zzz": 1}}, ["a"], {"a": 1}, {"a": 1}, {"a": 1},
                              np.random.default_rng(0))


def test_state_round_trip_continues_the_same_draws() -> None:
    s = TaskSampler(["a", "b"], {"a": 1, "b": 1}, np.random.default_rng(5))
    draw(s, 7)
    state = s.get_state()
    after = [s.draw() for _ in range(20)]
    t = TaskSampler(["a", "b"], {"a": 1, "b": 1}, np.random.default_rng(99))
    t.set_state(state)
    assert [t.draw() for _ in range(20)] == after
