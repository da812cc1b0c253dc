"""``smooth_env``: DeePMD's smooth environment matrix rows and switch per neighbour slot, compiled or in TensorFlow.

The TensorFlow formula (:func:`tf_smooth_env`) is some fifteen element-wise passes over ``[atoms, sel, 3|4]``, each
again in the force's backward pass and in the force loss's gradient: a fifth of a float32 se_e2_a training step,
whose env matrix stays in float64 with the coordinates. The compiled ops (``env_mat.cc``) do the slot's values and
its 5 x 3 Jacobian in one pass: ``MtbenchEnvMat`` for the values, ``MtbenchEnvMatGrad`` (``J^T g``) as its
gradient, ``MtbenchEnvMatTangent`` (``J u``) as that one's, and back, so forces and the force loss's gradient stay on
them. Their gradient in ``rij`` (a second derivative in positions, which training never takes) is TensorFlow's own
formula differentiated twice. float64 only; elsewhere, and in portable graphs, :func:`tf_smooth_env`.
"""

from __future__ import annotations

import tensorflow as tf

from mtbench.model.kernels.library import applies, module

ENV_OP, ENV_GRAD_OP, ENV_TANGENT_OP = "MtbenchEnvMat", "MtbenchEnvMatGrad", "MtbenchEnvMatTangent"


def smooth_weight(r: tf.Tensor, rmin: float, rmax: float) -> tf.Tensor:
    """DeePMD's quintic switch: 1 below ``rmin``, 0 beyond ``rmax``, C2-continuous in between."""
    u = (tf.clip_by_value(r, rmin, rmax) - rmin) / (rmax - rmin)
    u2 = u * u
    return u2 * u * (-6.0 * u2 + 15.0 * u - 10.0) + 1.0


def tf_smooth_env(rij: tf.Tensor, mask: tf.Tensor, rcut_smth: float, rcut: float, protection: float,
                  radial: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """``sw (1/a, x/a^2, y/a^2, z/a^2)`` (``sw/a`` if ``radial``) with ``a = r + protection``, and ``sw``, in
    TensorFlow ops: rij [..., 3], mask [...] -> [..., 4|1], [...]; padding slots are exactly 0 with no gradient."""
    r2 = tf.reduce_sum(rij * rij, axis=-1)
    r2 = tf.where(mask, r2, tf.ones_like(r2))  # padding: r = 1, masked out below (keeps sqrt differentiable)
    length = tf.sqrt(r2)[..., None]
    sw = smooth_weight(length, rcut_smth, rcut) * tf.cast(mask[..., None], length.dtype)
    t0 = 1.0 / (length + protection)
    if radial:
        em = t0 * sw
    else:
        t1 = rij / (length + protection) ** 2
        em = tf.concat([t0, t1], axis=-1) * sw
    return em, sw[..., 0]


def smooth_env(rij: tf.Tensor, mask: tf.Tensor, rcut_smth: float, rcut: float, protection: float,
               radial: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`tf_smooth_env`'s values, from the compiled ops where they apply (the same numbers to rounding)."""
    if not applies(rij):
        return tf_smooth_env(rij, mask, rcut_smth, rcut, protection, radial)
    lead = tf.shape(mask)
    params = tf.constant([rcut_smth, rcut, protection], tf.float64)
    em, sw = module().mtbench_env_mat(tf.reshape(rij, [-1, 3]), tf.reshape(mask, [-1]), params, radial=radial)
    return tf.reshape(em, tf.concat([lead, [1 if radial else 4]], 0)), tf.reshape(sw, lead)


def _second_order(left_em: tf.Tensor, left_sw: tf.Tensor, right: tf.Tensor, rij: tf.Tensor, mask: tf.Tensor,
                  params: tf.Tensor, radial: bool) -> tf.Tensor:
    """``d/d rij (left^T J(rij) right)``, from TensorFlow's formula (second derivatives in positions only)."""
    rcut_smth, rcut, protection = (float(v) for v in tf.get_static_value(params))
    with tf.GradientTape() as outer:
        outer.watch(rij)
        with tf.GradientTape() as inner:
            inner.watch(rij)
            em, sw = tf_smooth_env(rij, mask, rcut_smth, rcut, protection, radial)
        jt_left = inner.gradient([em, sw], rij, output_gradients=[left_em, left_sw])
        s = tf.reduce_sum(jt_left * right)
    return outer.gradient(s, rij)


def _skip(op: tf.Operation, index: int) -> bool:
    return index in (getattr(op, "skip_input_indices", None) or ())


@tf.RegisterGradient(ENV_OP)
def _env_grad(op: tf.Operation, g_em: tf.Tensor | None, g_sw: tf.Tensor | None) -> tuple:
    rij, mask, params = op.inputs
    radial = op.get_attr("radial")
    g_em = tf.zeros_like(op.outputs[0]) if g_em is None else g_em
    g_sw = tf.zeros_like(op.outputs[1]) if g_sw is None else g_sw
    return module().mtbench_env_mat_grad(g_em, g_sw, rij, mask, params, radial=radial), None, None


@tf.RegisterGradient(ENV_GRAD_OP)
def _env_grad_grad(op: tf.Operation, w: tf.Tensor) -> tuple:
    g_em, g_sw, rij, mask, params = op.inputs
    radial = op.get_attr("radial")
    t_em, t_sw = module().mtbench_env_mat_tangent(w, rij, mask, params, radial=radial)
    d_rij = None if _skip(op, 2) else _second_order(g_em, g_sw, w, rij, mask, params, radial)
    return t_em, t_sw, d_rij, None, None


@tf.RegisterGradient(ENV_TANGENT_OP)
def _env_tangent_grad(op: tf.Operation, a_em: tf.Tensor | None, a_sw: tf.Tensor | None) -> tuple:
    u, rij, mask, params = op.inputs
    radial = op.get_attr("radial")
    a_em = tf.zeros_like(op.outputs[0]) if a_em is None else a_em
    a_sw = tf.zeros_like(op.outputs[1]) if a_sw is None else a_sw
    d_u = module().mtbench_env_mat_grad(a_em, a_sw, rij, mask, params, radial=radial)
    d_rij = None if _skip(op, 1) else _second_order(a_em, a_sw, u, rij, mask, params, radial)
    return d_u, d_rij, None, None
