"""``ExpDecayLR`` against DeePMD-kit's ``LearningRateExp`` (deepmd.dpmodel.utils.learning_rate, the schedule its
TF backend evaluates, in float32): staircase decay, the rate derived from ``stop_lr``, the decay_steps fallback."""

from __future__ import annotations

import numpy as np
import pytest

from mtbench.train.lr import ExpDecayLR


def _deepmd(config: dict, numb_steps: int):
    from deepmd.dpmodel.utils.learning_rate import LearningRateExp

    return LearningRateExp(num_steps=numb_steps, **config)


CASES = [
    ({"start_lr": 1e-3, "stop_lr": 1e-8, "decay_steps": 5000}, 1_000_000),
    ({"start_lr": 1e-3, "stop_lr": 3.51e-8, "decay_steps": 5000}, 400_000),
    ({"start_lr": 1e-2, "stop_lr": 1e-3, "decay_steps": 20}, 450),
    ({"start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 2}, 6),
    ({"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 5000}, 1000),  # decay_steps >= numb_steps: fallback
    ({"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 5000}, 20_000),  # fallback capped at 100
]


@pytest.mark.parametrize("config,numb_steps", CASES)
def test_schedule_matches_deepmd(config: dict, numb_steps: int) -> None:
    ours = ExpDecayLR.from_config(config, numb_steps)
    dp = _deepmd(config, numb_steps)
    assert ours.decay_steps == dp.decay_steps
    assert ours.decay_rate == pytest.approx(dp.decay_rate, rel=1e-14)
    steps = sorted({0, 1, ours.decay_steps - 1, ours.decay_steps, ours.decay_steps + 1, numb_steps // 2,
                    numb_steps - 1, *range(0, numb_steps, max(1, numb_steps // 97))})
    for t in steps:  # DeePMD's TF backend casts the schedule's value to float32
        assert ours.value(t) == pytest.approx(float(np.float32(dp.value(t))), rel=1e-7), t


def test_staircase_by_hand() -> None:
    lr = ExpDecayLR.from_config({"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 10}, 100)
    assert lr.decay_rate == pytest.approx(10 ** (-2 / 10), rel=1e-14)  # (stop/start) ** (decay_steps/numb_steps)
    assert [lr.value(t) for t in (0, 9)] == [float(np.float32(1e-3))] * 2
    assert lr.value(10) == float(np.float32(1e-3 * lr.decay_rate)) == lr.value(19)
    assert lr.value(95) == float(np.float32(1e-3 * lr.decay_rate ** 9))
    assert lr.value(100) == pytest.approx(1e-5, rel=1e-6)  # stop_lr reached at numb_steps
    assert lr.ratio(0) == 1.0
    assert lr.ratio(10) == float(np.float32(lr.value(10)) / np.float32(1e-3))


def test_explicit_decay_rate_is_used_as_is() -> None:
    lr = ExpDecayLR.from_config({"start_lr": 1e-3, "stop_lr": 1e-8, "decay_steps": 10, "decay_rate": 0.5}, 1000)
    assert (lr.decay_steps, lr.decay_rate) == (10, 0.5)
    assert lr.value(35) == float(np.float32(1e-3 * 0.5 ** 3))
    dp = _deepmd({"start_lr": 1e-3, "stop_lr": 1e-8, "decay_steps": 10, "decay_rate": 0.5}, 1000)
    assert lr.value(35) == pytest.approx(dp.value(35), rel=1e-7)


def test_explicit_decay_rate_follows_deepmd_v2_without_clipping_at_stop_lr() -> None:
    """mtbench follows DeePMD-kit v2 (the spec it implements): with an explicit decay_rate the rate keeps decaying
    past stop_lr. DeePMD-kit 3.x clips at stop_lr there (LearningRateExp.min_lr): the one place the two differ."""
    config = {"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 10, "decay_rate": 0.5}
    lr, dp = ExpDecayLR.from_config(config, 1000), _deepmd(config, 1000)
    assert dp.value(500) == 1e-5  # v3 clips
    assert lr.value(500) == pytest.approx(1e-3 * 0.5 ** 50, rel=1e-6)  # v2: start_lr * decay_rate^(step // 10)
    assert lr.value(30) == pytest.approx(dp.value(30), rel=1e-7)  # above stop_lr both agree


def test_ratio_is_float32_like_deepmds_prefactor_input() -> None:
    lr = ExpDecayLR.from_config({"start_lr": 3e-3, "stop_lr": 1e-6, "decay_steps": 7}, 300)
    for t in (0, 7, 100, 299):
        assert lr.ratio(t) == float(np.float32(lr.value(t)) / np.float32(3e-3))
        assert lr.ratio(t) == pytest.approx(lr.decay_rate ** (t // 7), rel=1e-6)
