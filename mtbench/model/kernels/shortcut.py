"""``add_tiled``: ``y + [x, x]``, the widening shortcut of DeePMD's embedding layers (``resnet`` with doubled width).

Stock TensorFlow writes it as a broadcast add over a split axis ``[..., 2, n] + [..., 1, n]``; on CPU that add and
its gradient, a sum over the axis of size 2, run at a few GB/s and took ~9% of a float32 se_e2_a training step's
kernel time. The compiled ops (``shortcut.cc``) do each in one pass: ``MtbenchAddTiled`` and its gradient
``MtbenchFoldSum`` (``g[..., :n] + g[..., n:]``), whose own gradient is the tiling, a copy; so forces and the
force loss's second derivative stay on them. Where :func:`~mtbench.model.kernels.library.applies` says no, this
is the broadcast add, with the same numbers to the last bit.
"""

from __future__ import annotations

import tensorflow as tf

from mtbench.model.kernels.library import applies, module

ADD_OP = "MtbenchAddTiled"
FOLD_OP = "MtbenchFoldSum"
_DTYPES = (tf.float32, tf.float64)


def add_tiled(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``y + concat([x] * k, -1)`` for ``y`` [..., k n] and ``x`` [..., n] of the same leading shape."""
    if x.shape[-1] is not None and applies(y, x, dtypes=_DTYPES):
        return module().mtbench_add_tiled(y, x)
    n = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    shape = tf.shape(y)
    # expand_dims, not x[..., None, :], whose gradient would be a full StridedSliceGrad pass
    parts = tf.reshape(y, tf.concat([shape[:-1], [-1, n]], axis=0)) + tf.expand_dims(x, -2)
    return tf.reshape(parts, shape)


@tf.RegisterGradient(ADD_OP)
def _add_tiled_grad(op: tf.Operation, dz: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return dz, module().mtbench_fold_sum(dz, width=int(op.inputs[1].shape[-1]))


@tf.RegisterGradient(FOLD_OP)
def _fold_sum_grad(op: tf.Operation, ds: tf.Tensor) -> tf.Tensor:
    width, wide = op.get_attr("width"), op.inputs[0].shape[-1]
    if wide is not None:
        return tf.concat([ds] * (wide // width), axis=-1)
    multiples = tf.concat([tf.ones([tf.rank(ds) - 1], tf.int32), [tf.shape(op.inputs[0])[-1] // width]], axis=0)
    return tf.tile(ds, multiples)
