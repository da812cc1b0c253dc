"""The compiled env matrix (``smooth_env``): equal to TensorFlow's formula (``tf_smooth_env``) in value, in the
first derivative (forces), in the second derivative through the weights (the force loss's gradient) and in the
second derivative in positions, full and radial, with and without ``protection``, neighbours on both sides of
``rcut_smth`` and ``rcut``, and padding slots exactly zero; present where it applies, absent in portable graphs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mtbench.model.kernels import portable_graphs
from mtbench.model.kernels.env import ENV_GRAD_OP, ENV_OP, ENV_TANGENT_OP, smooth_env, tf_smooth_env
from tests.model.test_kernels import _ops, needs_kernel

RCUT_SMTH, RCUT = 1.0, 4.0


def _slots(seed: int) -> tuple[tf.Tensor, tf.Tensor]:
    """[4, 9, 3] pair vectors (lengths 0.6-4.6: below, inside and beyond the switching range) and a mask."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(4, 9, 3))
    v *= (rng.uniform(0.6, 4.6, size=(4, 9, 1)) / np.linalg.norm(v, axis=-1, keepdims=True))
    mask = rng.random((4, 9)) < 0.7
    mask[2] = False  # a centre without neighbours
    return tf.constant(np.where(mask[..., None], v, 0.0)), tf.constant(mask)


@needs_kernel
@pytest.mark.parametrize("radial", [False, True], ids=["full", "radial"])
@pytest.mark.parametrize("protection", [0.0, 0.05])
def test_equal_to_tensorflow_with_derivatives_of_both_orders(radial: bool, protection: float) -> None:
    rij, mask = _slots(int(radial) + 2)
    ncol = 1 if radial else 4
    rng = np.random.default_rng(7)
    w = tf.Variable(rng.normal(size=(ncol, 5)))  # a tiny "network" on the env matrix rows and the switch
    c = tf.constant(rng.normal(size=(4, 9)))
    probe = tf.constant(rng.normal(size=(4, 9, 3)))

    def derivatives(portable: bool) -> list[np.ndarray]:
        @tf.function(autograph=False)
        def run() -> list[tf.Tensor]:
            with tf.GradientTape(persistent=True) as outer:
                outer.watch(rij)
                with tf.GradientTape() as inner:
                    inner.watch(rij)
                    em, sw = smooth_env(rij, mask, RCUT_SMTH, RCUT, protection, radial)
                    e = tf.reduce_sum(tf.tanh(tf.tensordot(em, w, 1))) + tf.reduce_sum(c * sw * sw)
                force = inner.gradient(e, rij)
                loss = tf.reduce_sum(force * force) + tf.reduce_sum(force * probe)
            return [em, sw, force, outer.gradient(loss, w), outer.gradient(loss, rij)]

        if portable:
            with portable_graphs():
                fn = run.get_concrete_function()
        else:
            fn = run.get_concrete_function()
        kernels = {ENV_OP, ENV_GRAD_OP, ENV_TANGENT_OP} & _ops(fn)
        assert kernels == (set() if portable else {ENV_OP, ENV_GRAD_OP, ENV_TANGENT_OP})
        return [x.numpy() for x in fn()]

    got, want = derivatives(False), derivatives(True)
    for name, a, b in zip(["em", "sw", "force", "d loss / d w", "d loss / d rij"], got, want):
        assert np.abs(b).max() > 0, name
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max(), err_msg=name)
    padding = ~mask.numpy()
    assert not np.any(got[0][padding]) and not np.any(got[1][padding]) and not np.any(got[2][padding])


@needs_kernel
def test_the_switch_near_its_ends_is_tensorflows_to_the_last_bits() -> None:
    """Near rcut the switch is a difference of numbers close to 1; rounded differently (fused multiply-adds) it was
    7e-4 off relative to TensorFlow's at rcut - 1e-9, which moved se_atten's oracle outputs by 1e-7."""
    r = np.array([0.5, RCUT_SMTH - 1e-9, RCUT_SMTH + 1e-9, 2.5, RCUT - 1e-3, RCUT - 1e-9, RCUT + 1e-9, 4.5])
    rij = tf.constant(np.stack([r * 0.6, r * 0.8, 0.0 * r], axis=-1)[None])
    mask = tf.ones([1, len(r)], tf.bool)
    em, sw = smooth_env(rij, mask, RCUT_SMTH, RCUT, 0.0, False)
    ref_em, ref_sw = tf_smooth_env(rij, mask, RCUT_SMTH, RCUT, 0.0, False)
    assert sw.numpy()[0, 0] == 1.0 and 0.0 < sw.numpy()[0, 4] < 1e-6 and sw.numpy()[0, -1] == 0.0
    np.testing.assert_allclose(sw, ref_sw, rtol=1e-14, atol=0)
    np.testing.assert_allclose(em, ref_em, rtol=1e-14, atol=0)


@needs_kernel
def test_mismatched_shapes_are_an_invalid_argument() -> None:
    from mtbench.model.kernels.library import module

    params = tf.constant([RCUT_SMTH, RCUT, 0.0], tf.float64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask must be"):
        module().mtbench_env_mat(tf.ones([5, 3], tf.float64), tf.ones([4], tf.bool), params, radial=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="params"):
        module().mtbench_env_mat(tf.ones([5, 3], tf.float64), tf.ones([5], tf.bool), params[:2], radial=False)
