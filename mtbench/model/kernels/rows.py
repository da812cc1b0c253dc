"""``real_pair_sum``: ``sum_j g_ij (x) r_ij`` over the real neighbour slots of each row, without the padded layout.

se_e2_a evaluates its embedding net on real neighbour pairs only (a third of water's slots at 6 A are padding).
In stock TensorFlow the per-row sum ``G_i^T R_i`` then needs the pairs scattered back into ``[rows, sel, M]`` and a
batched product over every slot, padding included, and the same again in each derivative. The compiled ops
(``row_sums.cc``) sum the pairs where they are, in float32 and float64; their gradients are each other, so forces
and the force loss's second derivative stay on them. Where :func:`~mtbench.model.kernels.library.applies` says no,
this is the scatter and the product, with the same numbers to rounding (tested to 1e-12).
"""

from __future__ import annotations

import tensorflow as tf

from mtbench.model.kernels.library import applies, module
from mtbench.model.kernels.matmul import batch_matmul

OUTER_SUM_OP = "MtbenchRowOuterSum"
APPLY_OP = "MtbenchRowApply"
APPLY_T_OP = "MtbenchRowApplyT"
_DTYPES = (tf.float32, tf.float64)


def real_pair_sum(g: tf.Tensor, r: tf.Tensor, slots: tf.Tensor, rows: tf.Tensor, width: int) -> tf.Tensor:
    """``T[i] = sum_{p in row i} g_p^T r_p``: [rows, M, C].

    ``g`` [P, M] and ``r`` [P, C] hold the values at the real slots; ``slots`` [P] (int64) are those slots' flat
    indices ``i * width + j`` in ascending order (``tf.where`` of a [rows, width] mask gives them so).
    """
    rows = tf.cast(rows, tf.int64)
    if applies(g, r, dtypes=_DTYPES):
        return module().mtbench_row_outer_sum(g, r, slots // width, rows)

    def padded(x: tf.Tensor) -> tf.Tensor:  # [P, k] -> [rows, width, k], zeros in the padding slots
        shape = tf.stack([rows * width, tf.shape(x, tf.int64)[1]])
        return tf.reshape(tf.scatter_nd(slots[:, None], x, shape), [rows, width, -1])

    return batch_matmul(padded(g), padded(r), transpose_a=True)


def _outer_sum(g: tf.Tensor, r: tf.Tensor, ids: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    return module().mtbench_row_outer_sum(g, r, ids, rows)


def _apply(d: tf.Tensor, r: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    return module().mtbench_row_apply(d, r, ids)


def _apply_t(d: tf.Tensor, g: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    return module().mtbench_row_apply_t(d, g, ids)


@tf.RegisterGradient(OUTER_SUM_OP)
def _outer_sum_grad(op: tf.Operation, dt: tf.Tensor) -> tuple:
    g, r, ids, _ = op.inputs
    return _apply(dt, r, ids), _apply_t(dt, g, ids), None, None


@tf.RegisterGradient(APPLY_OP)
def _apply_grad(op: tf.Operation, da: tf.Tensor) -> tuple:
    d, r, ids = op.inputs
    return _outer_sum(da, r, ids, tf.shape(d, tf.int64)[0]), _apply_t(d, da, ids), None


@tf.RegisterGradient(APPLY_T_OP)
def _apply_t_grad(op: tf.Operation, db: tf.Tensor) -> tuple:
    d, g, ids = op.inputs
    return _outer_sum(g, db, ids, tf.shape(d, tf.int64)[0]), _apply(d, db, ids), None
