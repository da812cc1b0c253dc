"""The compiled products (batched, plain, dense-layer): built here, equal to ``tf.matmul`` / ``tf.tensordot`` with
their first and second derivatives (1e-12), kept out of saved graphs, and replaced by TensorFlow's with one message
where they cannot be built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mtbench.model.kernels import batch_matmul, dense_product, matmul, portable_graphs
from mtbench.model.kernels.build import compiler
from mtbench.model.kernels.library import compiled, enabled_by_env
from mtbench.model.kernels.matmul import MATMUL_OP_NAME, OP_NAME

RTOL = 1e-12
needs_kernel = pytest.mark.skipif(compiler() is None or not enabled_by_env(),
                                  reason="no C++ compiler, or MTBENCH_KERNELS=0 (the fallback test still runs)")
SHAPES = {  # name: (x shape, y shape, transpose_a, transpose_b)
    "xy": ((2, 3, 5, 7), (2, 3, 7, 4), False, False),
    "xTy": ((6, 7, 5), (6, 7, 4), True, False),
    "xyT": ((6, 5, 7), (6, 4, 7), False, True),
    "xTyT": ((2, 3, 7, 5), (2, 3, 4, 7), True, True),
    "GtR-4col": ((5, 11, 9), (5, 11, 4), True, False),
    "matrix-xy": ((5, 7), (7, 4), False, False),
    "matrix-xTy": ((7, 5), (7, 4), True, False),
    "matrix-xyT": ((5, 7), (4, 7), False, True),
    "matrix-xTyT": ((7, 5), (4, 7), True, True),
    "dense-rank4": ((2, 3, 5, 7), (7, 4), False, False),
    "dense-rank2": ((5, 7), (7, 4), False, False),
}


def _fast_and_reference(case: str):  # noqa: ANN202
    """The compiled-kernel function for ``case``, TensorFlow's equivalent, and the op the first must put in a graph."""
    if case.startswith("dense"):
        return ((lambda x, y, **_: dense_product(x, y)), (lambda x, y, **_: tf.tensordot(x, y, axes=1)),
                MATMUL_OP_NAME)
    if case.startswith("matrix"):
        return matmul, tf.matmul, MATMUL_OP_NAME
    return batch_matmul, tf.matmul, OP_NAME


def _ops(fn: tf.types.experimental.ConcreteFunction) -> set[str]:
    graph = fn.graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


@needs_kernel
def test_the_kernel_builds_here() -> None:
    """CI and users with g++ get the compiled kernel (a build failure here is a bug, not a skip)."""
    built = compiled()
    assert built.module is not None, built.reason
    assert built.path is not None and built.path.exists()


@needs_kernel
@pytest.mark.parametrize("case", list(SHAPES))
def test_equal_to_tf_matmul_with_two_derivatives(case: str) -> None:
    xs, ys, ta, tb = SHAPES[case]
    fast, reference, op_name = _fast_and_reference(case)
    rng = np.random.default_rng(len(case))
    x, y = tf.Variable(rng.normal(size=xs)), tf.Variable(rng.normal(size=ys))
    w = tf.constant(rng.normal(size=reference(x, y, transpose_a=ta, transpose_b=tb).shape))

    def derivatives(product) -> list[np.ndarray]:  # noqa: ANN001
        @tf.function(autograph=False)
        def run() -> list[tf.Tensor]:
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    z = product(x, y, transpose_a=ta, transpose_b=tb)
                    e = tf.reduce_sum(tf.tanh(z) * w)
                gx, gy = inner.gradient(e, [x, y])
                loss = tf.reduce_sum(gx * gx) + tf.reduce_sum(tf.sin(gy))  # like a force loss: d/dx of d/dx
            return [z, gx, gy, *outer.gradient(loss, [x, y])]

        assert (op_name in _ops(run.get_concrete_function())) == (product is fast)
        return [t.numpy() for t in run()]

    for got, want in zip(derivatives(fast), derivatives(reference)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max())
        assert np.abs(want).max() > 0


@needs_kernel
def test_tf_matmul_where_the_kernel_does_not_apply() -> None:
    """float32 (TensorFlow's oneDNN kernel is faster), rank 2, broadcast batches, and portable graphs."""
    rng = np.random.default_rng(3)
    f64 = tf.constant(rng.normal(size=(4, 3, 5)))
    cases = {
        "float32": (tf.cast(f64, tf.float32), tf.cast(f64, tf.float32)),
        "rank 2": (f64[0], f64[0]),
        "broadcast": (f64, f64[:1]),
    }
    for name, (x, y) in cases.items():
        fn = tf.function(lambda x=x, y=y: batch_matmul(x, y, transpose_b=True)).get_concrete_function()
        assert OP_NAME not in _ops(fn), name
    with portable_graphs():
        fn = tf.function(lambda: batch_matmul(f64, f64, transpose_b=True)).get_concrete_function()
    assert OP_NAME not in _ops(fn)
    fn = tf.function(lambda: batch_matmul(f64, f64, transpose_b=True)).get_concrete_function()
    assert OP_NAME in _ops(fn)


@needs_kernel
def test_tf_matmul_for_matrices_where_the_kernel_does_not_apply() -> None:
    """The plain and dense-layer products: float32 and portable graphs keep TensorFlow's MatMul."""
    rng = np.random.default_rng(4)
    x, w = tf.constant(rng.normal(size=(4, 3, 5))), tf.constant(rng.normal(size=(5, 2)))
    x32, w32 = tf.cast(x, tf.float32), tf.cast(w, tf.float32)
    for name, fn in {"matmul float32": lambda: matmul(x32[0], w32), "dense float32": lambda: dense_product(x32, w32),
                     "rank 3": lambda: matmul(x, x, transpose_b=True)}.items():
        assert MATMUL_OP_NAME not in _ops(tf.function(fn).get_concrete_function()), name
    with portable_graphs():
        fn = tf.function(lambda: dense_product(x, w)).get_concrete_function()
    assert MATMUL_OP_NAME not in _ops(fn)
    assert MATMUL_OP_NAME in _ops(tf.function(lambda: dense_product(x, w)).get_concrete_function())
    assert MATMUL_OP_NAME in _ops(tf.function(lambda: matmul(x[0], w)).get_concrete_function())


@needs_kernel
def test_error_is_tensorflows_invalid_argument() -> None:
    """Shapes known only at run time that do not fit give an error naming the op, not a crash."""
    fn = tf.function(lambda x, y: batch_matmul(x, y), input_signature=[tf.TensorSpec([None, 3, 4], tf.float64)] * 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=OP_NAME):
        fn(tf.zeros([2, 3, 4], tf.float64), tf.zeros([2, 3, 4], tf.float64))


_FALLBACK_SCRIPT = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import numpy as np
    import tensorflow as tf
    from mtbench.model.kernels import batch_matmul
    from mtbench.model.kernels.matmul import OP_NAME
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 4, 5)))
    for _ in range(2):
        fn = tf.function(lambda: batch_matmul(x, x, transpose_b=True)).get_concrete_function()
        assert OP_NAME not in {n.op for n in fn.graph.as_graph_def().node}
        np.testing.assert_array_equal(fn().numpy(), tf.matmul(x, x, transpose_b=True).numpy())
    print("ok")
""")


@pytest.mark.parametrize("how", ["compiler fails", "disabled"])
def test_fallback_is_tf_matmul_said_once(tmp_path: Path, how: str) -> None:
    """A real process whose compiler fails (or with MTBENCH_KERNELS=0) computes with tf.matmul; one line says why."""
    env = {**os.environ, "MTBENCH_KERNELS_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if how == "disabled":
        env["MTBENCH_KERNELS"] = "0"
    else:
        env["CXX"] = shutil.which("false") or "/bin/false"
        env.pop("MTBENCH_KERNELS", None)
    proc = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if "fast CPU kernels unavailable" in ln]
    if how == "disabled":
        assert lines == [] and not (tmp_path / "cache").exists()
    else:
        assert len(lines) == 1 and "failed" in lines[0], proc.stderr[-2000:]
