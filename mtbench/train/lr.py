"""DeePMD's exponential learning-rate schedule (staircase, float32-valued)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExpDecayLR:
    """``lr(t) = start_lr * rate ** floor(t / decay_steps)``; ``rate`` reaches ``stop_lr`` at ``numb_steps``."""

    start_lr: float
    stop_lr: float
    decay_steps: int
    decay_rate: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any], numb_steps: int) -> "ExpDecayLR":
        start = float(config.get("start_lr", 1e-3))
        stop = float(config.get("stop_lr", 1e-8))
        decay_steps = int(config.get("decay_steps", 5000))
        if decay_steps >= numb_steps:  # DeePMD silently shrinks it; so do we (the spec keeps the user's value)
            decay_steps = 100 if numb_steps // 10 > 100 else numb_steps // 100 + 1
        rate = config.get("decay_rate")
        if rate is None:
            rate = math.exp(math.log(stop / start) / (numb_steps / decay_steps))
        return cls(start, stop, decay_steps, float(rate))

    def value(self, step: int) -> float:
        """The learning rate at ``step`` as DeePMD computes it (float32 rounding included)."""
        return float(np.float32(self.start_lr * self.decay_rate ** (step // self.decay_steps)))

    def ratio(self, step: int) -> float:
        """lr(t)/start_lr in float32 arithmetic, for loss prefactors."""
        return float(np.float32(self.value(step)) / np.float32(self.start_lr))
