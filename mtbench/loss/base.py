"""Loss interface: predictions + labels -> (scalar loss, lcurve metrics)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import tensorflow as tf

from mtbench.data.requirements import LabelRequirement

LOSSES: dict[str, type["Loss"]] = {}


def register_loss(name: str) -> Callable[[type["Loss"]], type["Loss"]]:
    def deco(cls: type[Loss]) -> type[Loss]:
        LOSSES[name] = cls
        cls.type_name = name
        return cls

    return deco


class Loss:
    """A task's loss. ``metric_names`` are DeePMD's lcurve columns (``rmse`` first).

    ``padded``: batches may hold frames of different atom counts padded with atoms of type -1 (``mixed:N``);
    the loss then normalises by each frame's real atoms (:func:`real_atom_mask`). Off, it keeps the plain
    means of a one-system batch (the same values whenever no frame is padded).
    """

    type_name: ClassVar[str] = ""
    metric_names: tuple[str, ...] = ("rmse",)
    padded: bool = False

    @classmethod
    def reported_metrics(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        """The ``metric_names`` a loss built from ``config`` reports, without building it."""
        return cls.metric_names

    def requirements(self) -> list[LabelRequirement]:
        raise NotImplementedError

    def __call__(self, pred: Mapping[str, tf.Tensor], batch: Mapping[str, tf.Tensor],
                 lr_ratio: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """``lr_ratio`` = lr(t) / start_lr (float32-rounded as DeePMD does), for the prefactor schedule."""
        raise NotImplementedError


def loss_class(config: Mapping[str, Any]) -> type[Loss]:
    kind = config.get("type", "ener")
    if kind not in LOSSES:
        raise KeyError(f"unknown loss type {kind!r}; known: {sorted(LOSSES)}")
    return LOSSES[kind]


def build_loss(config: Mapping[str, Any], fitting: Mapping[str, Any], ntypes: int, *, padded: bool = False) -> Loss:
    """The loss of a task; ``padded`` when its batches may be padded (see :class:`Loss`)."""
    loss = loss_class(config).from_config(config, fitting, ntypes)
    loss.padded = bool(padded)
    return loss


def real_atom_mask(batch: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Float mask [nf, N] of real (non-padding, type >= 0) atoms and each frame's real atom count [nf]."""
    mask = tf.cast(batch["atype"] >= 0, tf.float64)
    return mask, tf.reduce_sum(mask, axis=1)


def pooled_atom_mean(elem: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of per-atom terms ``elem`` [nf, N, ncomp] over the real atoms of the whole batch.

    Pooled as DeePMD-kit's ``masked_atom_mean`` (dpmodel/loss/reduction.py): every real label counts once, so a
    frame weighs in proportion to its atoms, whatever company it keeps in a batch.
    """
    ncomp = tf.cast(tf.shape(elem)[-1], tf.float64)
    return tf.reduce_sum(elem * mask[..., None]) / (ncomp * tf.reduce_sum(mask))


def reported_metrics(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The lcurve metrics (``rmse`` first) a task with loss section ``config`` reports."""
    return loss_class(config).reported_metrics(config)
