"""The TF1-style Adam (mtbench/train/optimizer.py) on a known quadratic: against TF1's update formula by hand
(bias correction folded into the step size, epsilon outside the sqrt) and against ``tf.compat.v1``'s optimizer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mtbench.train.optimizer import Adam

A = np.array([[3.0, 0.5], [0.5, 10.0]])
X0 = np.array([1.0, -2.0])
B1, B2, EPS = 0.9, 0.999, 1e-8


def grad(x: np.ndarray) -> np.ndarray:
    return A @ x  # of 0.5 x^T A x


def by_hand(lrs: list[float], eps: float = EPS) -> list[np.ndarray]:
    """``tf.compat.v1.train.AdamOptimizer``'s documented update, in float64."""
    x, m, v, out = X0.copy(), np.zeros(2), np.zeros(2), []
    for t, lr in enumerate(lrs, start=1):
        g = grad(x)
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        lr_t = lr * np.sqrt(1 - B2 ** t) / (1 - B1 ** t)
        x = x - lr_t * m / (np.sqrt(v) + eps)  # epsilon outside the sqrt, not bias-corrected ("epsilon hat")
        out.append(x.copy())
    return out


def ours(lrs: list[float], dtype=tf.float64, eps: float = EPS) -> list[np.ndarray]:
    var = tf.Variable(X0, dtype=dtype)
    opt = Adam([var], epsilon=eps)
    out = []
    for lr in lrs:
        opt.apply([tf.constant(grad(var.numpy().astype(np.float64)), dtype)], tf.constant(lr, tf.float64))
        out.append(var.numpy().astype(np.float64))
    return out


LRS = [0.05, 0.05, 0.02, 0.02, 0.01, 0.01, 0.005, 0.005]  # a staircase


def test_updates_match_tf1_formula_by_hand() -> None:
    for a, b in zip(ours(LRS), by_hand(LRS)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def test_epsilon_is_outside_the_sqrt() -> None:
    # a large epsilon makes the placement visible: with eps inside the sqrt the first step would differ by ~50%
    eps = 1e-1
    first = ours([0.05], eps=eps)[0]
    np.testing.assert_allclose(first, by_hand([0.05], eps=eps)[0], rtol=1e-13)
    g = grad(X0)
    inside = X0 - 0.05 * np.sqrt(1 - B2) / (1 - B1) * (1 - B1) * g / np.sqrt((1 - B2) * g * g + eps)
    assert np.abs(first - inside).max() > 1e-3


def test_matches_tf_compat_v1_adam_optimizer() -> None:
    var = tf.Variable(X0, dtype=tf.float64)
    current = [LRS[0]]
    tf1 = tf.compat.v1.train.AdamOptimizer(learning_rate=lambda: current[0], beta1=B1, beta2=B2, epsilon=EPS)
    ref = []
    for lr in LRS:
        current[0] = lr  # the staircase, as DeePMD feeds its lr tensor
        tf1.apply_gradients([(tf.constant(grad(var.numpy())), var)])
        ref.append(var.numpy().copy())
    # TF1 keeps beta1^t and beta2^t as float32 running products (cast to the variable's dtype); ours are exact
    # float64 powers, hence agreement to ~1e-6 and not to the last bit
    for a, b in zip(ours(LRS), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=0)


def test_iterations_count_and_none_gradients_are_skipped() -> None:
    a, b = tf.Variable([1.0], dtype=tf.float64), tf.Variable([2.0], dtype=tf.float64)
    opt = Adam([a, b])
    opt.apply([tf.constant([1.0], tf.float64), None], tf.constant(0.1, tf.float64))
    assert int(opt.iterations.numpy()) == 1
    assert b.numpy()[0] == 2.0 and a.numpy()[0] == pytest.approx(1.0 - 0.1, rel=1e-6)


def test_state_round_trip_continues_identically() -> None:
    var = tf.Variable(X0, dtype=tf.float64)
    opt = Adam([var])
    for lr in LRS[:3]:
        opt.apply([tf.constant(grad(var.numpy()))], tf.constant(lr, tf.float64))
    state = {k: np.array(v) for k, v in opt.get_state().items()}
    assert set(state) == {"iterations", "m_0", "v_0"} and int(state["iterations"]) == 3
    var2 = tf.Variable(var.numpy(), dtype=tf.float64)
    opt2 = Adam([var2])
    opt2.set_state(state)
    for lr in LRS[3:]:
        opt.apply([tf.constant(grad(var.numpy()))], tf.constant(lr, tf.float64))
        opt2.apply([tf.constant(grad(var2.numpy()))], tf.constant(lr, tf.float64))
    assert np.array_equal(var.numpy(), var2.numpy())
    np.testing.assert_allclose(var.numpy(), by_hand(LRS)[-1], rtol=1e-13)
