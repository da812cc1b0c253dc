"""``batch_matmul``: ``tf.matmul`` for batched float64 products, on the compiled kernel where it can run.

TensorFlow's CPU wheels compile their float64 ``BatchMatMulV2`` for a baseline instruction set; at the attention's
shapes ([atoms, ~100, 128] x [atoms, 128, ~100]) it runs at half the rate of the same product compiled for the host
(measured 17-20 against 33 GF/s on one core, 4-column ``G^T R`` products 5 against 10; ``benchmarks/README.md``).
The compiled kernel is used for float64, same-rank operands without broadcasting, on machines without a GPU, and
never in graphs that are saved (:func:`portable_graphs`): a frozen model must load in plain TensorFlow. Everywhere
else, and where building failed (said once per process), this is ``tf.matmul``. Both give the same numbers to
rounding (tested to 1e-12, first and second derivatives included). ``MTBENCH_KERNELS=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
from collections.abc import Iterator

import tensorflow as tf

from mtbench.model.kernels.build import Built, build_and_load

OP_NAME = "MtbenchBatchMatMul"
_log = logging.getLogger(__name__)
_portable: contextvars.ContextVar[bool] = contextvars.ContextVar("mtbench_portable_graphs", default=False)


@contextlib.contextmanager
def portable_graphs() -> Iterator[None]:
    """Graphs traced inside use stock TensorFlow ops only (for SavedModels that load without mtbench)."""
    token = _portable.set(True)
    try:
        yield
    finally:
        _portable.reset(token)


def enabled_by_env() -> bool:
    return os.environ.get("MTBENCH_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def compiled() -> Built:
    """The compiled kernels of this process (built on first call); the fallback is announced here, once."""
    if not enabled_by_env():
        return Built(None, "MTBENCH_KERNELS=0")
    if tf.test.is_built_with_cuda() and tf.config.list_physical_devices("GPU"):  # (no device probe without CUDA)
        return Built(None, "a GPU is visible (the kernel is CPU-only)")
    built = build_and_load()
    if built.module is None:
        _log.warning("fast float64 CPU kernels unavailable (%s); training uses TensorFlow's own kernels, "
                     "slower for se_atten", built.reason)
    else:
        _register_gradient()
    return built


def _raw(x: tf.Tensor, y: tf.Tensor, adj_x: bool, adj_y: bool) -> tf.Tensor:
    return compiled().module.mtbench_batch_mat_mul(x, y, adj_x=adj_x, adj_y=adj_y)


@functools.lru_cache(maxsize=1)
def _register_gradient() -> None:
    @tf.RegisterGradient(OP_NAME)
    def _grad(op: tf.Operation, dz: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = op.inputs
        ax, ay = op.get_attr("adj_x"), op.get_attr("adj_y")
        if not ax and not ay:  # z = x y
            return _raw(dz, y, False, True), _raw(x, dz, True, False)
        if ax and not ay:  # z = x^T y
            return _raw(y, dz, False, True), _raw(x, dz, False, False)
        if not ax and ay:  # z = x y^T
            return _raw(dz, y, False, False), _raw(dz, x, True, False)
        return _raw(y, dz, True, True), _raw(dz, x, True, True)  # z = x^T y^T


def _fits(x: tf.Tensor, y: tf.Tensor) -> bool:
    rank = x.shape.rank
    if x.dtype != tf.float64 or y.dtype != tf.float64 or rank is None or rank < 3 or y.shape.rank != rank:
        return False
    return all(a is None or b is None or a == b for a, b in zip(x.shape[:-2], y.shape[:-2]))


def batch_matmul(x: tf.Tensor, y: tf.Tensor, transpose_a: bool = False, transpose_b: bool = False) -> tf.Tensor:
    """``tf.matmul(x, y, transpose_a=, transpose_b=)`` for real tensors of rank >= 3 with equal batch dimensions."""
    if not _portable.get() and _fits(x, y) and compiled().module is not None:
        return _raw(x, y, transpose_a, transpose_b)
    return tf.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b)
