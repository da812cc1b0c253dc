"""``TensorLoss`` against DeePMD-kit's TF ``TensorLoss`` formula (deepmd/tf/loss/tensor.py), computed here by
hand in numpy: the atomic term is a mean over the selected atoms, the global term is divided by their count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from mtbench.loss import build_loss

NF = 2
ATYPE = np.array([[0, 1, 1, 0, 1, 1, 0, 1, 1]] * NF)  # 3 O (selected), 6 H
SEL = ATYPE[0] == 0
NSEL = int(SEL.sum())


def _case(ndof: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    atomic = rng.normal(size=(NF, ATYPE.shape[1], ndof)) * SEL[None, :, None]  # zero on unselected atoms
    pred = {"atomic": atomic, "global": atomic.sum(axis=1)}
    label_atomic = rng.normal(size=atomic.shape) * SEL[None, :, None]
    label = {"atomic": label_atomic, "global": label_atomic.sum(axis=1) + rng.normal(size=(NF, ndof))}
    return pred, label


def _deepmd_formula(pred: dict, label: dict, pref: float, pref_atomic: float,
                    find_atomic: float = 1.0, find_global: float = 1.0) -> tuple[float, float, float]:
    """DeePMD's TF TensorLoss: its atomic output covers only the selected atoms (``sel_type``)."""
    d_loc = (pred["atomic"] - label["atomic"])[:, SEL]
    local = find_atomic * np.mean(d_loc ** 2)
    glob = find_global * np.mean((pred["global"] - label["global"]) ** 2)
    loss = pref_atomic * local + pref * glob / NSEL
    return loss, math.sqrt(np.mean(d_loc ** 2)), math.sqrt(np.mean((pred["global"] - label["global"]) ** 2)) / NSEL


def _ours(kind: str, pref: float, pref_atomic: float, pred: dict, label: dict,
          find_atomic: float = 1.0, find_global: float = 1.0):
    loss = build_loss({"type": "tensor", "pref": pref, "pref_atomic": pref_atomic},
                      {"type": kind, "sel_type": [0]}, ntypes=2)
    batch = {"atype": tf.constant(ATYPE, tf.int32), loss.atomic_key: tf.constant(label["atomic"]),
             loss.global_key: tf.constant(label["global"]),
             f"find_{loss.atomic_key}": tf.constant(find_atomic, tf.float32),
             f"find_{loss.global_key}": tf.constant(find_global, tf.float32)}
    value, metrics = loss({k: tf.constant(v) for k, v in pred.items()}, batch, tf.constant(0.5, tf.float64))
    return loss, float(value), {k: float(v) for k, v in metrics.items()}


@pytest.mark.parametrize("kind,ndof", [("dipole", 3), ("polar", 9)])
@pytest.mark.parametrize("pref,pref_atomic", [(1.0, 1.0), (2.0, 0.5), (1.0, 0.0), (0.0, 3.0)])
def test_tensor_loss_matches_deepmd_formula(kind: str, ndof: int, pref: float, pref_atomic: float) -> None:
    pred, label = _case(ndof)
    loss, value, metrics = _ours(kind, pref, pref_atomic, pred, label)
    expected, rmse_lc, rmse_gl = _deepmd_formula(pred, label, pref, pref_atomic)
    assert loss.metric_names == ("rmse", "rmse_lc", "rmse_gl")
    assert value == pytest.approx(expected, rel=1e-12)
    assert metrics["rmse"] == pytest.approx(math.sqrt(expected), rel=1e-12)
    if pref_atomic > 0:
        assert metrics["rmse_lc"] == pytest.approx(rmse_lc, rel=1e-12)
    else:
        assert math.isnan(metrics["rmse_lc"])
    if pref > 0:
        assert metrics["rmse_gl"] == pytest.approx(rmse_gl, rel=1e-12)
    else:
        assert math.isnan(metrics["rmse_gl"])


def test_prefactors_do_not_follow_the_learning_rate() -> None:
    pred, label = _case(3, seed=1)
    loss = build_loss({"type": "tensor", "pref": 2.0, "pref_atomic": 0.5}, {"type": "dipole", "sel_type": [0]}, 2)
    batch = {"atype": tf.constant(ATYPE, tf.int32), "atomic_dipole": tf.constant(label["atomic"]),
             "dipole": tf.constant(label["global"]), "find_atomic_dipole": tf.constant(1.0),
             "find_dipole": tf.constant(1.0)}
    p = {k: tf.constant(v) for k, v in pred.items()}
    values = {float(loss(p, batch, tf.constant(r, tf.float64))[0]) for r in (1.0, 0.3, 0.0)}
    assert len(values) == 1


def test_systems_with_only_global_labels_train_the_global_term_alone() -> None:
    pred, label = _case(3, seed=2)
    _, value, metrics = _ours("dipole", 1.0, 1.0, pred, label, find_atomic=0.0)
    expected, _, rmse_gl = _deepmd_formula(pred, label, 1.0, 1.0, find_atomic=0.0)
    assert value == pytest.approx(expected, rel=1e-12)
    assert math.isnan(metrics["rmse_lc"]) and metrics["rmse_gl"] == pytest.approx(rmse_gl, rel=1e-12)


def test_requirements_and_sel_type_default() -> None:
    loss = build_loss({"type": "tensor", "pref": 1.0, "pref_atomic": 0.0}, {"type": "polar"}, ntypes=3)
    assert loss.sel_type == [0, 1, 2]
    assert [r.key for r in loss.requirements()] == ["polarizability"]
    loss = build_loss({"type": "tensor"}, {"type": "dipole", "sel_type": [1]}, ntypes=2)
    assert [(r.key, r.atomic) for r in loss.requirements()] == [("dipole", False), ("atomic_dipole", True)]
    assert [r.type_sel for r in loss.requirements()] == [None, (1,)]  # atomic labels only on sel_type atoms
