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
    """A task's loss. ``metric_names`` are DeePMD's lcurve columns (``rmse`` first)."""

    type_name: ClassVar[str] = ""
    metric_names: tuple[str, ...] = ("rmse",)

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


def build_loss(config: Mapping[str, Any], fitting: Mapping[str, Any], ntypes: int) -> Loss:
    return loss_class(config).from_config(config, fitting, ntypes)


def reported_metrics(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The lcurve metrics (``rmse`` first) a task with loss section ``config`` reports."""
    return loss_class(config).reported_metrics(config)
