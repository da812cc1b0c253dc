"""The compiled widening shortcut (``add_tiled``: ``y + [x, x]``): equal to stock TensorFlow's broadcast add to the
last bit, with first and second derivatives, in both precisions, for the shapes the layers give (pairs x width,
atoms x slots x width, no rows at all) and a threefold tiling; present where it applies, absent in portable graphs;
a width that does not divide is TensorFlow's InvalidArgument naming the op; a DeePMD layer with the doubled
shortcut still matches its formula."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mtbench.model.kernels import add_tiled, portable_graphs
from mtbench.model.kernels.shortcut import ADD_OP, FOLD_OP
from mtbench.model.networks import Dense
from tests.model.test_kernels import _ops, needs_kernel

SHAPES = {  # name: (x shape, tiling)
    "pairs": ((37, 25), 2),
    "atoms-slots": ((3, 11, 50), 2),
    "no-rows": ((0, 50), 2),
    "threefold": ((9, 7), 3),
}


def _derivatives(xshape: tuple[int, ...], k: int, dtype: tf.DType, portable: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(sum(xshape) + k)
    yshape = (*xshape[:-1], k * xshape[-1])
    x = tf.Variable(rng.normal(size=xshape), dtype=dtype)
    y = tf.Variable(rng.normal(size=yshape), dtype=dtype)
    w = tf.constant(rng.normal(size=yshape), dtype=dtype)

    @tf.function(autograph=False)
    def run() -> list[tf.Tensor]:
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                z = add_tiled(tf.tanh(y), tf.sin(x))
                e = tf.reduce_sum(w * z * z)
            dx, dy = inner.gradient(e, [x, y])
            loss = tf.reduce_sum(dx * dx) + tf.reduce_sum(dy * dy * dy)  # like a force loss: d/dx of d/dx
        return [z, dx, dy, *outer.gradient(loss, [x, y])]

    if portable:
        with portable_graphs():
            fn = run.get_concrete_function()
    else:
        fn = run.get_concrete_function()
    assert ({ADD_OP, FOLD_OP} <= _ops(fn)) != portable, _ops(fn) & {ADD_OP, FOLD_OP}
    return [t.numpy() for t in fn()]


@needs_kernel
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(SHAPES))
def test_equal_to_the_broadcast_add_with_two_derivatives(case: str, dtype: tf.DType) -> None:
    xshape, k = SHAPES[case]
    got, want = _derivatives(xshape, k, dtype, False), _derivatives(xshape, k, dtype, True)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w)  # one pass over the same sums in the same order: the same bits
    if case != "no-rows":
        assert all(np.abs(w).max() > 0 for w in want)


def test_the_fallback_is_y_plus_tiled_x() -> None:
    x = tf.constant(np.arange(6.0).reshape(2, 3))
    y = tf.constant(np.ones((2, 6)))
    with portable_graphs():
        z = add_tiled(y, x).numpy()
    np.testing.assert_array_equal(z, 1.0 + np.concatenate([x.numpy(), x.numpy()], axis=-1))


@needs_kernel
def test_a_width_that_does_not_divide_is_an_invalid_argument() -> None:
    from mtbench.model.kernels.library import module

    with pytest.raises(tf.errors.InvalidArgumentError, match="MtbenchAddTiled.*not a positive multiple"):
        module().mtbench_add_tiled(tf.ones([3, 7], tf.float64), tf.ones([3, 2], tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="MtbenchAddTiled.*differ before the last axis"):
        module().mtbench_add_tiled(tf.ones([3, 4], tf.float64), tf.ones([2, 2], tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="MtbenchFoldSum.*not a positive multiple"):
        module().mtbench_fold_sum(tf.ones([3, 7], tf.float64), width=2)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_a_doubling_layer_is_its_formula(precision: str) -> None:
    rng = np.random.default_rng(3)
    layer = Dense.init(25, 50, rng=rng, activation_function="tanh", resnet=True, use_timestep=True,
                       precision=precision)
    x = rng.normal(size=(40, 25)).astype(precision)
    var = layer.to_dict()["@variables"]
    want = np.tanh(x @ var["w"] + var["b"]) * var["idt"] + np.concatenate([x, x], axis=-1)
    tol = 1e-12 if precision == "float64" else 1e-5
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), want, rtol=tol, atol=tol)
