"""DeePMD's ``TensorLoss`` for dipole / polarizability heads: an atomic term and a global (summed) term.

Systems may carry only atomic labels or only global ones (as in DeePMD-kit's water_tensor example): each term is
switched off by its ``find_*`` flag, and its lcurve column reports NaN for such batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from mtbench.data.requirements import TENSOR_LABELS, LabelRequirement
from mtbench.loss.base import Loss, register_loss
from mtbench.tracking.names import TENSOR_METRICS


@register_loss("tensor")
class TensorLoss(Loss):
    metric_names = TENSOR_METRICS

    def __init__(self, kind: str, pref: float, pref_atomic: float, sel_type: list[int]) -> None:
        self.kind = kind
        self.labels = TENSOR_LABELS[kind]
        self.atomic_key, self.global_key, self.ndof = self.labels.atomic_key, self.labels.global_key, self.labels.ndof
        self.pref, self.pref_atomic = float(pref), float(pref_atomic)
        self.sel_type = list(sel_type)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], fitting: Mapping[str, Any], ntypes: int) -> "TensorLoss":
        kind = fitting.get("type", "ener")
        sel_type = fitting.get("sel_type")
        sel_type = list(range(ntypes)) if sel_type is None else list(sel_type)
        return cls(kind, config.get("pref", 1.0), config.get("pref_atomic", 1.0), sel_type)

    def requirements(self) -> list[LabelRequirement]:
        return self.labels.requirements(self.sel_type, global_=self.pref > 0, atomic=self.pref_atomic > 0)

    def __call__(self, pred: Mapping[str, tf.Tensor], batch: Mapping[str, tf.Tensor],
                 lr_ratio: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        atype = batch["atype"]
        sel = tf.reduce_any(tf.equal(atype[..., None], tf.constant(self.sel_type, atype.dtype)), axis=-1)
        selw = tf.cast(sel, tf.float64)  # [nf, N]; padding atoms (type -1) are never selected
        # a padded batch (mixed:N) counts each frame's own selected atoms; otherwise every frame has the first's
        nsel = tf.reduce_sum(selw, axis=1) if self.padded else tf.reduce_sum(selw[0])
        nan = tf.constant(float("nan"), tf.float64)
        loss = tf.constant(0.0, tf.float64)
        metrics: dict[str, tf.Tensor] = {}
        if self.pref_atomic > 0:
            find = tf.cast(batch[f"find_{self.atomic_key}"], tf.float64)
            d = (pred["atomic"] - batch[self.atomic_key]) * selw[..., None]
            if self.padded:  # pooled over the batch's selected atoms, as DeePMD-kit's masked_atom_mean
                l2 = tf.reduce_sum(d * d) / (tf.reduce_sum(nsel) * self.ndof)
            else:
                nf = tf.cast(tf.shape(d)[0], tf.float64)
                l2 = tf.reduce_sum(d * d) / (nf * nsel * self.ndof)
            loss = loss + self.pref_atomic * find * l2
            metrics["rmse_lc"] = tf.where(find > 0, tf.sqrt(l2), nan)
        else:
            metrics["rmse_lc"] = nan
        if self.pref > 0:
            find = tf.cast(batch[f"find_{self.global_key}"], tf.float64)
            d = pred["global"] - batch[self.global_key]
            if self.padded:  # per frame: its squared error over its own selected atoms
                d2 = tf.reduce_mean(d * d, axis=-1)
                term, rmse = tf.reduce_mean(d2 / nsel), tf.sqrt(tf.reduce_mean(d2 / (nsel * nsel)))
            else:
                l2 = tf.reduce_mean(d * d)
                term, rmse = l2 / nsel, tf.sqrt(l2) / nsel
            loss = loss + self.pref * find * term
            metrics["rmse_gl"] = tf.where(find > 0, rmse, nan)
        else:
            metrics["rmse_gl"] = nan
        return loss, {"rmse": tf.sqrt(loss), **metrics}
