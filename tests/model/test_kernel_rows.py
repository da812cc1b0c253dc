"""The compiled real-pair row sums (``real_pair_sum``): equal to the padded scatter-and-multiply of stock TensorFlow
with first and second derivatives (float64 1e-12, float32 1e-5), for the env matrix's 4 columns and any other,
rows without pairs, pair counts that are not a multiple of the kernels' unrolling; present where they apply, absent
in portable graphs; wrong row ids are TensorFlow's InvalidArgument naming the op."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mtbench.model.kernels import portable_graphs, real_pair_sum
from mtbench.model.kernels.rows import APPLY_OP, APPLY_T_OP, OUTER_SUM_OP
from tests.model.test_kernels import _ops, needs_kernel

CASES = {  # name: (rows, width, M, C, fraction of real slots)
    "env-matrix": (6, 13, 100, 4, 0.6),
    "few-pairs": (5, 3, 7, 4, 0.3),  # rows with 0..3 pairs (below the unrolling of 4)
    "three-columns": (4, 9, 10, 3, 0.7),  # C taken at run time
    "wide": (3, 8, 6, 20, 0.8),  # C above the unrolled sums' buffer
}
TOL = {tf.float64: 1e-12, tf.float32: 1e-5}


def _inputs(case: str, dtype: tf.DType):  # noqa: ANN202
    rows, width, m, c, frac = CASES[case]
    rng = np.random.default_rng(len(case))
    mask = rng.random((rows, width)) < frac
    mask[1] = False  # a row without neighbours
    slots = tf.where(tf.reshape(mask, [-1]))[:, 0]
    p = int(slots.shape[0])
    g = tf.Variable(rng.normal(size=(p, m)), dtype=dtype)
    r = tf.Variable(rng.normal(size=(p, c)), dtype=dtype)
    w = tf.constant(rng.normal(size=(rows, m, c)), dtype=dtype)
    return g, r, w, slots, rows, width


@needs_kernel
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_equal_to_the_padded_product_with_two_derivatives(case: str, dtype: tf.DType) -> None:
    g, r, w, slots, rows, width = _inputs(case, dtype)

    def derivatives(portable: bool) -> list[np.ndarray]:
        @tf.function(autograph=False)
        def run() -> list[tf.Tensor]:
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    t = real_pair_sum(tf.tanh(g), r, slots, rows, width)
                    e = tf.reduce_sum(tf.tanh(t) * w)
                dg, dr = inner.gradient(e, [g, r])
                loss = tf.reduce_sum(dg * dg) + tf.reduce_sum(tf.sin(dr))  # like a force loss: d/dx of d/dx
            return [t, dg, dr, *outer.gradient(loss, [g, r])]

        if portable:
            with portable_graphs():
                fn = run.get_concrete_function()
        else:
            fn = run.get_concrete_function()
        ops = _ops(fn)
        assert ({OUTER_SUM_OP, APPLY_OP, APPLY_T_OP} <= ops) != portable, ops & {OUTER_SUM_OP, APPLY_OP, APPLY_T_OP}
        return [x.numpy() for x in fn()]

    tol = TOL[dtype]
    for got, want in zip(derivatives(False), derivatives(True)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        assert np.abs(want).max() > 0
    assert np.all(derivatives(False)[0][1] == 0)  # the row without neighbours


@needs_kernel
def test_no_pairs_at_all_gives_zeros() -> None:
    t = real_pair_sum(tf.zeros([0, 5], tf.float64), tf.zeros([0, 4], tf.float64), tf.zeros([0], tf.int64), 3, 7)
    assert t.shape == (3, 5, 4) and not np.any(t.numpy())


@needs_kernel
@pytest.mark.parametrize("ids,match", [([0, 2, 1], "ascending"), ([0, 1, 3], "not in"), ([0, 1], "one entry")])
def test_wrong_row_ids_are_an_invalid_argument(ids: list[int], match: str) -> None:
    from mtbench.model.kernels.library import module

    g, r = tf.ones([3, 5], tf.float64), tf.ones([3, 4], tf.float64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        module().mtbench_row_outer_sum(g, r, tf.constant(ids, tf.int64), tf.constant(3, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        module().mtbench_row_apply(tf.ones([3, 5, 4], tf.float64), r, tf.constant(ids, tf.int64))
