"""Which task trains at each step: drawn with probability fitting_weight / sum from a seeded RNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class TaskSampler:
    """Draws a task per step and counts how often each one was drawn (for ``sampling/<task>/*`` metrics)."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float], rng: np.random.Generator) -> None:
        self.tasks = list(tasks)
        w = np.array([max(float(weights.get(t, 0.0)), 0.0) for t in self.tasks])
        if w.sum() <= 0:
            raise ValueError("every task has zero weight")
        self.probs = w / w.sum()
        self.rng = rng
        self.counts = {t: 0 for t in self.tasks}

    def draw(self) -> str:
        task = self.tasks[int(self.rng.choice(len(self.tasks), p=self.probs))] if len(self.tasks) > 1 \
            else self.tasks[0]
        self.counts[task] += 1
        return task

    def fractions(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {t: (c / total if total else 0.0) for t, c in self.counts.items()}

    def get_state(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "rng": self.rng.bit_generator.state}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.counts = {t: int(state["counts"].get(t, 0)) for t in self.tasks}
        self.rng.bit_generator.state = state["rng"]
