"""Micro-benchmark: forward + gradient (energy-like sum, d/d coords and d/d weights, and the force-loss second
derivative) of the se_atten descriptor alone at the benchmark's size (water 192 atoms, sel 120, [25,50,100], attn
128, 2 layers, attn_dotr). Prints the median of N repetitions and the neighbour-count statistics.

    python benchmarks/micro_se_atten.py [--type se_atten|se_atten_v2] [--reps 15] [--profile DIR] [--no-buckets]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import tensorflow as tf

from mtbench.data.neighbor import NeighborSpec, build_neighbor_list
from mtbench.model.descriptor import build_descriptor
from mtbench.model.env_mat import Neighbors, neighbor_types, pair_vectors

ROOT = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--type", default="se_atten")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--precision", default="float64")
    ap.add_argument("--water", default="/work/shared/data/water/data_0")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--mode", default="train", choices=["train", "fwd"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="descriptor key=json-value overrides")
    ap.add_argument("--no-buckets", action="store_true", help="one attention window for all atoms (A/B)")
    args = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cfg = json.loads((ROOT / "inputs" / f"{args.type}.json").read_text())["model"]["descriptor"]
    cfg["precision"] = args.precision
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg[k] = json.loads(v)
    desc = build_descriptor(cfg, ["O", "H"], np.random.default_rng(1))
    if args.no_buckets:
        desc.bucket_atoms = False
    d = Path(args.water)
    coord = np.load(d / "set.000/coord.npy")[:1].reshape(1, -1, 3).astype(np.float64)
    box = np.load(d / "set.000/box.npy")[:1].reshape(1, 3, 3).astype(np.float64)
    atype = np.loadtxt(d / "type.raw", dtype=np.int32).reshape(1, -1)
    spec = desc.neighbor_specs()[0]
    idx, shift, counts = build_neighbor_list(coord[0], box[0], atype[0], NeighborSpec(spec.rcut, spec.sel, True), 2)
    n = (idx >= 0).sum(1)
    print(f"neighbours: mean {n.mean():.1f} max {n.max()} min {n.min()} of {idx.shape[1]}")
    coord_t = tf.Variable(coord)
    box_t = tf.constant(box)
    idx_t, shift_t, atype_t = tf.constant(idx[None]), tf.constant(shift[None].astype(np.int32)), tf.constant(atype)
    rng = np.random.default_rng(0)
    w_out = tf.constant(rng.normal(size=(1, atype.shape[1], desc.dim_out)))

    @tf.function
    def step():
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                rij, mask = pair_vectors(coord_t, box_t, idx_t, shift_t)
                nb = Neighbors(rij, mask, neighbor_types(atype_t, idx_t, 2))
                out = desc({spec: nb}, atype_t)
                e = tf.reduce_sum(tf.tanh(out.descriptor) * w_out)
            f = inner.gradient(e, coord_t)
            loss = e + tf.reduce_sum(f * f)
        return outer.gradient(loss, desc.trainable_variables)

    @tf.function
    def fwd():
        rij, mask = pair_vectors(coord_t, box_t, idx_t, shift_t)
        nb = Neighbors(rij, mask, neighbor_types(atype_t, idx_t, 2))
        return desc({spec: nb}, atype_t).descriptor

    fn = step if args.mode == "train" else fwd
    for _ in range(3):
        fn()
    times, cpus = [], []
    if args.profile:
        tf.profiler.experimental.start(args.profile)
    for _ in range(args.reps):
        t0, c0 = time.perf_counter(), time.process_time()
        r = fn()
        _ = [x.numpy() for x in tf.nest.flatten(r)][:1]
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if args.profile:
        tf.profiler.experimental.stop()
    times, cpus = np.array(times), np.array(cpus)
    print(f"{args.type} {args.precision} {args.mode} {args.set} buckets={not args.no_buckets}: "
          f"wall median {np.median(times):.4f} s "
          f"min {times.min():.4f} | CPU median {np.median(cpus):.4f} s min {cpus.min():.4f} "
          f"IQR {np.subtract(*np.percentile(cpus, [75, 25])):.4f}")


if __name__ == "__main__":
    main()
