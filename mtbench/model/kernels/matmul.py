"""``batch_matmul``, ``matmul`` and ``dense_product``: ``tf.matmul`` for float64, on compiled kernels where they run.

TensorFlow's CPU wheels compile their float64 ``MatMul`` and ``BatchMatMulV2`` for a baseline instruction set
(float32 goes to oneDNN, which is as fast as a compiled kernel or faster). At the attention's batched shapes
([atoms, ~100, 128] x [atoms, 128, ~100]) that runs at half the rate of the same product compiled for the host
(measured 17-20 against 33 GF/s on one core, 4-column ``G^T R`` products 5 against 10), and the dense layers'
products ([rows, 100] x [100, 128], fitting [192, 1600] x [1600, 240]) at 0.5-0.95 of it (one or two threads;
``benchmarks/kernel_rates.py``).
The compiled kernels are used for float64 where :func:`~mtbench.model.kernels.library.applies` (batched:
same-rank operands without broadcasting); everywhere else this is ``tf.matmul``. Both give the same numbers to
rounding (tested to 1e-12, first and second derivatives included).
"""

from __future__ import annotations

import tensorflow as tf

from mtbench.model.kernels.library import applies, module

OP_NAME = "MtbenchBatchMatMul"
MATMUL_OP_NAME = "MtbenchMatMul"


def _raw(x: tf.Tensor, y: tf.Tensor, adj_x: bool, adj_y: bool) -> tf.Tensor:
    return module().mtbench_batch_mat_mul(x, y, adj_x=adj_x, adj_y=adj_y)


def _raw2(a: tf.Tensor, b: tf.Tensor, ta: bool, tb: bool) -> tf.Tensor:
    return module().mtbench_mat_mul(a, b, transpose_a=ta, transpose_b=tb)


def _product_gradient(raw, x: tf.Tensor, y: tf.Tensor, tx: bool, ty: bool, dz: tf.Tensor
                      ) -> tuple[tf.Tensor, tf.Tensor]:
    """d/dx and d/dy of ``z = op(x) op(y)`` (op: transpose or not), with the same kernel ``raw``."""
    if not tx and not ty:  # z = x y
        return raw(dz, y, False, True), raw(x, dz, True, False)
    if tx and not ty:  # z = x^T y
        return raw(y, dz, False, True), raw(x, dz, False, False)
    if not tx and ty:  # z = x y^T
        return raw(dz, y, False, False), raw(dz, x, True, False)
    return raw(y, dz, True, True), raw(dz, x, True, True)  # z = x^T y^T


@tf.RegisterGradient(OP_NAME)
def _batch_grad(op: tf.Operation, dz: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return _product_gradient(_raw, *op.inputs, op.get_attr("adj_x"), op.get_attr("adj_y"), dz)


@tf.RegisterGradient(MATMUL_OP_NAME)
def _matmul_grad(op: tf.Operation, dz: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return _product_gradient(_raw2, *op.inputs, op.get_attr("transpose_a"), op.get_attr("transpose_b"), dz)


def _same_batch(x: tf.Tensor, y: tf.Tensor) -> bool:
    rank = x.shape.rank
    if rank is None or rank < 3 or y.shape.rank != rank:
        return False
    return all(a is None or b is None or a == b for a, b in zip(x.shape[:-2], y.shape[:-2]))


def batch_matmul(x: tf.Tensor, y: tf.Tensor, transpose_a: bool = False, transpose_b: bool = False) -> tf.Tensor:
    """``tf.matmul(x, y, transpose_a=, transpose_b=)`` for real tensors of rank >= 3 with equal batch dimensions."""
    if _same_batch(x, y) and applies(x, y):
        return _raw(x, y, transpose_a, transpose_b)
    return tf.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b)


def matmul(a: tf.Tensor, b: tf.Tensor, transpose_a: bool = False, transpose_b: bool = False) -> tf.Tensor:
    """``tf.matmul`` of two matrices (rank 2)."""
    if a.shape.rank == 2 and b.shape.rank == 2 and applies(a, b):
        return _raw2(a, b, transpose_a, transpose_b)
    return tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)


def dense_product(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """``x @ w`` over the last axis of ``x`` (any rank >= 2) and a matrix ``w``: ``tf.tensordot(x, w, axes=1)``."""
    if x.shape.rank == 2:
        return matmul(x, w)
    if not applies(x, w):
        return tf.tensordot(x, w, axes=1)
    shape = tf.shape(x)
    y = _raw2(tf.reshape(x, [-1, shape[-1]]), w, False, False)
    return tf.reshape(y, tf.concat([shape[:-1], tf.shape(w)[1:]], axis=0))
