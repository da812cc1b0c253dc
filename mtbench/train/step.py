"""Compiled per-task training and evaluation steps with fixed, shape-polymorphic signatures.

Each task gets one ``tf.function`` whose input signature leaves frames and atoms as ``None``, so a training run
traces each step once per task however many systems (atom counts) its data has. ``trace_counts`` records traces
(the CI guard against retracing reads it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.data.requirements import LabelRequirement
from mtbench.loss import Loss
from mtbench.model.descriptor import NeighborSpec
from mtbench.model.inputs import TRAIN_SHIFT_DTYPE, model_input_signature, nlist_tensors, predict_inputs, shift_key
from mtbench.model.multitask import MultiTaskModel
from mtbench.train.optimizer import Adam


def batch_signature(requirements: Sequence[LabelRequirement], nspecs: Sequence[NeighborSpec],
                    numb_fparam: int = 0, numb_aparam: int = 0) -> dict[str, tf.TensorSpec]:
    """The model inputs (:func:`~mtbench.model.inputs.model_input_signature`, compact int8 shifts) and the labels."""
    sig = model_input_signature(nspecs, numb_fparam, numb_aparam, shift_dtype=TRAIN_SHIFT_DTYPE)
    for req in requirements:
        shape = [None, None, req.ndof] if req.atomic else [None, req.ndof]
        sig[req.key] = tf.TensorSpec(shape, tf.float64)
        sig[f"find_{req.key}"] = tf.TensorSpec([], tf.float64)
    return sig


def to_inputs(batch: Mapping[str, Any], signature: Mapping[str, tf.TensorSpec],
              nspecs: Sequence[NeighborSpec]) -> dict[str, tf.Tensor]:
    """Numpy batch from the data layer -> the tensors of ``signature`` (same keys, dtypes and ranks)."""
    out = nlist_tensors(batch["nlist"], nspecs, signature[shift_key(0)].dtype) if nspecs else {}
    for key, ts in signature.items():
        if key in out:
            continue
        value = np.asarray(batch[key])
        if key == "atype":
            value = value.astype(np.int32)
        if ts.shape.rank == 0:
            value = value.reshape(())
        out[key] = tf.convert_to_tensor(value, ts.dtype)
    return out


def all_finite(loss: tf.Tensor, grads: Sequence[tf.Tensor | None]) -> tf.Tensor:
    """In-graph: whether the loss and every gradient are finite (one boolean, no host sync)."""
    checks = [tf.reduce_all(tf.math.is_finite(loss))]
    checks += [tf.reduce_all(tf.math.is_finite(g.values if isinstance(g, tf.IndexedSlices) else g))
               for g in grads if g is not None]
    return tf.reduce_all(tf.stack(checks))


class TaskSteps:
    """The compiled train/eval steps of one task."""

    def __init__(self, model: MultiTaskModel, task: str, loss: Loss, optimizer: Adam,
                 signature: Mapping[str, tf.TensorSpec], *, jit_compile: bool = False) -> None:
        self.model, self.task, self.loss, self.optimizer = model, task, loss, optimizer
        self.nspecs = model.neighbor_specs()
        self.signature = dict(signature)
        self.variables = model.trainable_variables_of(task)  # descriptor variables first
        self.n_descriptor = len(model.descriptor.trainable_variables)
        self.need_force = model.heads[task].kind == "ener" and any(k in signature for k in ("force", "virial"))
        self.trace_counts = {"train": 0, "eval": 0}
        sig = [self.signature, tf.TensorSpec([], tf.float64), tf.TensorSpec([], tf.float64)]
        # autograph=False: the step has no data-dependent Python control flow, and converting the model's code
        # costs seconds of tracing per function
        self.train = tf.function(self._train, input_signature=sig, jit_compile=jit_compile, autograph=False)
        self.eval = tf.function(self._eval, input_signature=[self.signature, tf.TensorSpec([], tf.float64)],
                                jit_compile=jit_compile, autograph=False)

    def _predict(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return predict_inputs(self.model, self.task, batch, self.nspecs, do_force=self.need_force)

    def _train(self, batch: Mapping[str, tf.Tensor], lr: tf.Tensor, lr_ratio: tf.Tensor):
        return self.step(batch, lr, lr_ratio)

    def step(self, batch: Mapping[str, tf.Tensor], lr: tf.Tensor, lr_ratio: tf.Tensor,
             reduce: Callable[..., tuple] | None = None):
        """The uncompiled step; ``reduce(loss, metrics, grads) -> (loss, metrics, grads)`` runs between the
        gradient and the update (:mod:`mtbench.train.distributed`'s cross-replica mean)."""
        self.trace_counts["train"] += 1
        with tf.GradientTape() as tape:
            pred = self._predict(batch)
            loss, metrics = self.loss(pred, batch, lr_ratio)
        grads = tape.gradient(loss, self.variables)
        if reduce is not None:
            loss, metrics, grads = reduce(loss, metrics, grads)
        finite = all_finite(loss, grads)

        def update() -> tf.Tensor:
            self.optimizer.apply(grads, lr)
            return tf.constant(True)

        # a non-finite step leaves weights and Adam moments untouched; the host reads ``finite`` with the metrics
        tf.cond(finite, update, lambda: tf.constant(False))
        desc = [tf.reshape(g, [-1]) for g in grads[: self.n_descriptor] if g is not None]
        desc_grad = tf.concat(desc, 0) if desc else tf.zeros([0], tf.float64)
        return loss, metrics, tf.cast(desc_grad, tf.float64), finite

    def _eval(self, batch: Mapping[str, tf.Tensor], lr_ratio: tf.Tensor):
        self.trace_counts["eval"] += 1
        pred = self._predict(batch)
        return self.loss(pred, batch, lr_ratio)
