"""GF/s of TensorFlow's matrix products against mtbench's compiled kernels (``mtbench/model/kernels``) at the shapes
of the benchmark models: se_atten's attention (water, 192 atoms, ~100 filled slots, attn 128, embedding 100), the
dense layers (embedding and projections on [atoms x slots] rows, fitting net on [atoms, 1600]); then se_e2_a's
row sums ``G^T R`` over real neighbours (``kernels.real_pair_sum``: water's 192 atoms x 92 H slots, 65% real, M 100)
against stock TensorFlow's scatter into the padded layout and batched product (its portable path).

    python benchmarks/kernel_rates.py [--threads 1] [--precision float64|float32|both] [--reps 20]

Each line: the product, TensorFlow's rate, the compiled kernel's, their ratio and the largest difference. The
compiled products are float64 only (float32 products run on TensorFlow's oneDNN kernels, which are as fast).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tensorflow as tf

from mtbench.model.kernels import portable_graphs, real_pair_sum
from mtbench.model.kernels.library import compiled

ROWS = 192 * 92  # atoms x filled neighbour slots
# name: (x shape, y shape, transpose_a, transpose_b); rank 2 -> MatMul, rank 3 -> BatchMatMulV2
PRODUCTS = {
    "dense: projection x W, [rows,100]x[100,128]": ((ROWS, 100), (100, 128), False, False),
    "dense: out_proj x W, [rows,128]x[128,100]": ((ROWS, 128), (128, 100), False, False),
    "dense: its input gradient dz Wt": ((ROWS, 128), (100, 128), False, True),
    "dense: its weight gradient xT dz": ((ROWS, 100), (ROWS, 128), True, False),
    "dense: embedding layer [rows,50]x[50,100]": ((ROWS, 50), (50, 100), False, False),
    "dense: fitting layer [192,1600]x[1600,240]": ((192, 1600), (1600, 240), False, False),
    "dense: fitting layer [192,240]x[240,240]": ((192, 240), (240, 240), False, False),
    "batched: q kT, 192x(101x128)(101x128)T": ((192, 101, 128), (192, 101, 128), False, True),
    "batched: weights v, 192x(101x101)(101x128)": ((192, 101, 101), (192, 101, 128), False, False),
    "batched: GT R, 192x(101x100)T(101x4)": ((192, 101, 100), (192, 101, 4), True, False),
}


def _seconds(fn, *args, reps: int) -> float:  # noqa: ANN001
    fn(*args)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            fn(*args)
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--precision", choices=["float64", "float32", "both"], default="both")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    module = compiled().module
    if module is None:
        raise SystemExit(f"kernel_rates: no compiled kernels here ({compiled().reason})")
    rng = np.random.default_rng(0)
    dtypes = ["float64", "float32"] if args.precision == "both" else [args.precision]
    print(f"threads {args.threads}; GF/s, best of 3 x {args.reps}")
    print("| product | dtype | TensorFlow | compiled | speed-up | max diff |")
    print("|---|---|---|---|---|---|")
    for dtype in dtypes:
        for name, (xs, ys, ta, tb) in PRODUCTS.items():
            x = tf.constant(rng.standard_normal(xs).astype(dtype))
            y = tf.constant(rng.standard_normal(ys).astype(dtype))
            reference = tf.function(lambda a, b, ta=ta, tb=tb: tf.matmul(a, b, transpose_a=ta, transpose_b=tb))
            if dtype != "float64":  # the compiled products are float64 only; float32 stays on oneDNN
                want = reference(x, y)
                flops = 2 * int(np.prod(want.shape)) * (xs[-2] if ta else xs[-1]) / 1e9
                print(f"| {name} | {dtype} | {flops / _seconds(reference, x, y, reps=args.reps):.1f} | - | - | - |")
                continue
            if len(xs) == 2:
                fast = tf.function(lambda a, b, ta=ta, tb=tb: module.mtbench_mat_mul(a, b, transpose_a=ta,
                                                                                     transpose_b=tb))
            else:
                fast = tf.function(lambda a, b, ta=ta, tb=tb: module.mtbench_batch_mat_mul(a, b, adj_x=ta, adj_y=tb))
            want = reference(x, y)
            flops = 2 * int(np.prod(want.shape)) * (xs[-2] if ta else xs[-1]) / 1e9
            t_ref, t_fast = _seconds(reference, x, y, reps=args.reps), _seconds(fast, x, y, reps=args.reps)
            diff = float(tf.reduce_max(tf.abs(fast(x, y) - want)) / tf.reduce_max(tf.abs(want)))
            print(f"| {name} | {dtype} | {flops / t_ref:.1f} | {flops / t_fast:.1f} | {t_ref / t_fast:.2f} | "
                  f"{diff:.1e} |")
        _row_sums(rng, dtype, args.reps)


def _row_sums(rng: np.random.Generator, dtype: str, reps: int) -> None:
    """The forward row sum and its two gradient kernels (as in the force and its loss) against the padded path."""
    rows, width, m = 192, 92, 100
    slots = tf.where(tf.reshape(rng.random((rows, width)) < 0.65, [-1]))[:, 0]
    g = tf.constant(rng.standard_normal((int(slots.shape[0]), m)).astype(dtype))
    r = tf.constant(rng.standard_normal((int(slots.shape[0]), 4)).astype(dtype))

    def step(g: tf.Tensor, r: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch([g, r])
            t = real_pair_sum(g, r, slots, rows, width)
            e = tf.reduce_sum(t * t)
        return [t, *tape.gradient(e, [g, r])]

    fast = tf.function(step)
    with portable_graphs():
        reference = tf.function(step).get_concrete_function(g, r)
    fast_fn = fast.get_concrete_function(g, r)
    flops = 3 * 2 * int(slots.shape[0]) * m * 4 / 1e9
    t_ref, t_fast = _seconds(reference, g, r, reps=reps), _seconds(fast_fn, g, r, reps=reps)
    diff = max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(b))) for a, b in zip(fast_fn(g, r), reference(g, r)))
    print(f"| row sums: G^T R over real pairs and its two gradients, {rows}x{width} slots, M {m} | {dtype} | "
          f"{flops / t_ref:.1f} | {flops / t_fast:.1f} | {t_ref / t_fast:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
