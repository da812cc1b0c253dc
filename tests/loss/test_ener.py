"""``EnerLoss`` against DeePMD-kit's own ``EnergyLoss`` (the numpy ``dpmodel`` one, legacy 1/N normalisation):
the prefactor schedule, per-atom normalisation of the energy and virial terms, and every lcurve column."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from mtbench.loss import build_loss
from mtbench.loss.ener import EnerLoss

NF, NATOMS = 3, 5
PREFS = {"start_pref_e": 0.02, "limit_pref_e": 1.0, "start_pref_f": 1000.0, "limit_pref_f": 1.0,
         "start_pref_v": 0.5, "limit_pref_v": 0.25, "start_pref_ae": 2.0, "limit_pref_ae": 4.0,
         "start_pref_pf": 3.0, "limit_pref_pf": 0.5}
START_LR = 1e-3


def _case(seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    pred = {"atom_energy": rng.normal(size=(NF, NATOMS)), "force": rng.normal(size=(NF, NATOMS, 3)),
            "virial": rng.normal(size=(NF, 9))}
    pred["energy"] = pred["atom_energy"].sum(axis=1)
    label = {"energy": rng.normal(size=(NF, 1)) * 3, "force": rng.normal(size=(NF, NATOMS, 3)),
             "virial": rng.normal(size=(NF, 9)), "atom_ener": rng.normal(size=(NF, NATOMS, 1)),
             "atom_pref": rng.uniform(0.5, 2.0, size=(NF, NATOMS, 1))}
    return pred, label


def _ours(config: dict, pred: dict, label: dict, lr_ratio: float, find: dict | None = None):
    loss = build_loss({"type": "ener", **config}, {"type": "ener"}, ntypes=2)
    batch = {k: tf.constant(v) for k, v in label.items()}
    for key in ("energy", "force", "virial", "atom_ener", "atom_pref"):
        batch[f"find_{key}"] = tf.constant((find or {}).get(key, 1.0), tf.float32)
    value, metrics = loss({k: tf.constant(v) for k, v in pred.items()}, batch, tf.constant(lr_ratio, tf.float64))
    return loss, float(value), {k: float(v) for k, v in metrics.items()}


def _deepmd(config: dict, pred: dict, label: dict, lr: float, find: dict | None = None):
    from deepmd.dpmodel.loss.ener import EnergyLoss

    dp = EnergyLoss(starter_learning_rate=START_LR, intensive_ener_virial=False, **config)
    model = {"energy": pred["energy"][:, None], "force": pred["force"], "virial": pred["virial"],
             "atom_energy": pred["atom_energy"][..., None]}
    labels = dict(label)
    labels["atom_pref"] = np.repeat(label["atom_pref"], 3, axis=-1)  # DeePMD loads atom_pref with repeat=3
    for key in ("energy", "force", "virial", "atom_ener", "atom_pref"):
        labels[f"find_{key}"] = (find or {}).get(key, 1.0)
    value, more = dp.call(lr, NATOMS, model, labels)
    return float(value), {k: float(v) for k, v in more.items()}


@pytest.mark.parametrize("lr_ratio", [1.0, 0.5, 0.125, 0.0])
def test_all_terms_match_deepmd_energy_loss(lr_ratio: float) -> None:
    pred, label = _case()
    loss, value, metrics = _ours(PREFS, pred, label, lr_ratio)
    dp_value, dp_more = _deepmd(PREFS, pred, label, lr_ratio * START_LR)
    assert loss.metric_names == ("rmse", "rmse_e", "rmse_f", "rmse_v", "rmse_ae", "rmse_pf")
    # prefactors are float32 in both DeePMD-kit's TF backend and ours: agreement to float32 rounding
    assert value == pytest.approx(dp_value, rel=1e-6)
    assert metrics["rmse"] == pytest.approx(dp_more["rmse"], rel=1e-6)
    for term in ("e", "f", "v", "ae", "pf"):
        assert metrics[f"rmse_{term}"] == pytest.approx(dp_more[f"rmse_{term}"], rel=1e-12), term


def test_default_prefactors_are_deepmds() -> None:
    pred, label = _case(1)
    _, value, metrics = _ours({}, pred, label, 0.25)
    dp_value, dp_more = _deepmd({}, pred, label, 0.25 * START_LR)
    assert value == pytest.approx(dp_value, rel=1e-6)
    assert set(metrics) == {"rmse", "rmse_e", "rmse_f"}
    assert metrics["rmse_f"] == pytest.approx(dp_more["rmse_f"], rel=1e-12)


def test_prefactor_moves_linearly_from_start_to_limit() -> None:
    loss = EnerLoss({"e": (0.02, 1.0), "f": (1000.0, 1.0), "v": (0, 0), "ae": (0, 0), "pf": (0, 0)})
    for ratio in (1.0, 0.75, 0.5, 0.1, 0.0):
        r = tf.constant(ratio, tf.float64)
        # computed in float32 as DeePMD's TF backend does (global_cvt_2_tf_float), then widened
        expected_f = float(np.float32(1.0) + (np.float32(1000.0) - np.float32(1.0)) * np.float32(ratio))
        assert float(loss._pref("f", r)) == expected_f
        assert float(loss._pref("e", r)) == pytest.approx(1.0 + (0.02 - 1.0) * ratio, abs=1e-7)  # float32 cancellation
    assert float(loss._pref("f", tf.constant(1.0, tf.float64))) == 1000.0
    assert float(loss._pref("f", tf.constant(0.0, tf.float64))) == 1.0


def test_energy_and_virial_are_divided_by_natoms_not_natoms_squared() -> None:
    pred, label = _case(2)
    only_e = {"start_pref_e": 1.0, "limit_pref_e": 1.0, "start_pref_f": 0.0, "limit_pref_f": 0.0}
    _, value, metrics = _ours(only_e, pred, label, 1.0)
    de = pred["energy"] - label["energy"][:, 0]
    assert value == pytest.approx(np.mean(de ** 2) / NATOMS, rel=1e-12)
    assert metrics["rmse_e"] == pytest.approx(math.sqrt(np.mean(de ** 2)) / NATOMS, rel=1e-12)
    only_v = {**only_e, "start_pref_e": 0.0, "limit_pref_e": 0.0, "start_pref_v": 1.0, "limit_pref_v": 1.0}
    _, value, metrics = _ours(only_v, pred, label, 1.0)
    dv = pred["virial"] - label["virial"]
    assert value == pytest.approx(np.mean(dv ** 2) / NATOMS, rel=1e-12)
    assert metrics["rmse_v"] == pytest.approx(math.sqrt(np.mean(dv ** 2)) / NATOMS, rel=1e-12)


def test_missing_label_switches_its_term_off_and_reports_nan() -> None:
    pred, label = _case(3)
    find = {"virial": 0.0}
    _, value, metrics = _ours(PREFS, pred, label, 0.5, find)
    dp_value, _ = _deepmd(PREFS, pred, label, 0.5 * START_LR, find)
    assert value == pytest.approx(dp_value, rel=1e-6)
    assert math.isnan(metrics["rmse_v"]) and math.isfinite(metrics["rmse_f"])


def test_relative_force_matches_deepmd() -> None:
    pred, label = _case(4)
    config = {"start_pref_e": 0.0, "limit_pref_e": 0.0, "relative_f": 0.5}
    _, value, metrics = _ours(config, pred, label, 0.5)
    dp_value, dp_more = _deepmd(config, pred, label, 0.5 * START_LR)
    assert value == pytest.approx(dp_value, rel=1e-6)
    assert metrics["rmse_f"] == pytest.approx(dp_more["rmse_f"], rel=1e-12)


def test_requirements_follow_the_terms_in_use() -> None:
    loss = build_loss({"type": "ener", **PREFS}, {"type": "ener"}, ntypes=2)
    assert [r.key for r in loss.requirements()] == ["energy", "force", "virial", "atom_ener", "atom_pref"]
    only_f = build_loss({"type": "ener", "start_pref_e": 0, "limit_pref_e": 0}, {"type": "ener"}, ntypes=2)
    assert [r.key for r in only_f.requirements()] == ["force"]
