"""Multi-task diagnostics: do the tasks pull the shared descriptor the same way?

Each training step already computes its task's gradient on the descriptor weights; the trainer sums them per task
over a display window. At display time: ``grad/<task>/norm`` (mean per-step gradient norm) and
``grad/cos/<a>__<b>`` (cosine between the two tasks' window-mean gradients). A negative cosine says the tasks fight
over the descriptor. No extra forward or backward pass is needed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from mtbench.tracking import names


class GradientWindow:
    """Running sum of one task's descriptor gradients (and of their norms) since the last display."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total: np.ndarray | None = None
        self.norm_sum = 0.0
        self.n = 0

    def add(self, grad: np.ndarray) -> None:
        if grad.size == 0:
            return
        self.total = grad.copy() if self.total is None else self.total + grad
        # a ufunc reduction, not np.linalg.norm: BLAS threads waking up next to TensorFlow's cost ~6 ms a step
        self.norm_sum += float(np.sqrt(np.add.reduce(grad * grad)))
        self.n += 1


def gradient_diagnostics(windows: Mapping[str, GradientWindow]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, w in windows.items():
        if w.n:
            out[names.grad_norm(name)] = w.norm_sum / w.n
    for (a, wa), (b, wb) in itertools.combinations(sorted(windows.items()), 2):
        if wa.n and wb.n:
            na, nb = np.sqrt(np.add.reduce(wa.total ** 2)), np.sqrt(np.add.reduce(wb.total ** 2))
            if na > 0 and nb > 0:
                out[names.grad_cos(a, b)] = float(np.add.reduce(wa.total * wb.total) / (na * nb))
    return out
