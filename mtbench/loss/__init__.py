"""Losses per task kind, with DeePMD-kit's prefactor schedule and lcurve metric names."""

from mtbench.loss.base import Loss, build_loss, reported_metrics
from mtbench.loss import ener, tensor  # noqa: F401  (registers)

__all__ = ["Loss", "build_loss", "reported_metrics"]
