"""Which task trains at each step.

Three schedules (``training.sampling.type``):

- ``weights`` (DeePMD-kit v2): drawn with probability ``fitting_weight / sum``;
- ``temperature``: probability proportional to ``fitting_weight * n_frames ** (1 / T)`` — T = 1 follows dataset
  size, large T tends to uniform (the multilingual-NLP recipe for unbalanced tasks);
- ``epochs`` (DeePMD-kit v3's ``num_epoch_dict`` idea): task t gets a budget of ``epochs[t] * n_batches[t]`` steps;
  tasks are drawn without replacement from the remaining budgets, so every budget is met exactly, and training
  stops when they are spent (or at ``numb_steps``, whichever comes first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mtbench.errors import SpecError


class TaskSampler:
    """Draws a task per step and counts how often each one was drawn (``sampling/<task>/*`` metrics)."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float], rng: np.random.Generator,
                 budgets: Mapping[str, int] | None = None) -> None:
        self.tasks = list(tasks)
        w = np.array([max(float(weights.get(t, 0.0)), 0.0) for t in self.tasks])
        if w.sum() <= 0:
            raise SpecError("training.fitting_weight", "every task has zero weight")
        self.requested = w / w.sum()
        self.rng = rng
        self.counts = {t: 0 for t in self.tasks}
        self.budgets = None if budgets is None else {t: int(budgets.get(t, 0)) for t in self.tasks}

    @classmethod
    def from_spec(cls, sampling: Mapping[str, Any], tasks: Sequence[str], weights: Mapping[str, float],
                  nframes: Mapping[str, int], nbatches: Mapping[str, int], rng: np.random.Generator) -> "TaskSampler":
        kind = sampling.get("type", "weights")
        if kind == "weights":
            return cls(tasks, weights, rng)
        if kind == "temperature":
            temp = float(sampling.get("temperature", 1.0))
            return cls(tasks, {t: weights.get(t, 0.0) * nframes[t] ** (1.0 / temp) for t in tasks}, rng)
        if kind == "epochs":
            epochs = dict(sampling.get("epochs") or {})
            unknown = sorted(set(epochs) - set(tasks))
            if unknown:
                raise SpecError(f"training.sampling.epochs.{unknown[0]}", f"no such task; tasks: {list(tasks)}")
            budgets = {t: int(math.ceil(float(epochs.get(t, 0)) * nbatches[t])) for t in tasks}
            if sum(budgets.values()) == 0:
                raise SpecError("training.sampling.epochs", "every task has a budget of 0 steps")
            return cls(tasks, {t: float(b) for t, b in budgets.items()}, rng, budgets=budgets)
        raise SpecError("training.sampling.type", f"unknown sampling {kind!r}")

    @property
    def total_budget(self) -> int | None:
        return None if self.budgets is None else sum(self.budgets.values())

    @property
    def probs(self) -> np.ndarray:
        """Current draw probabilities (for budgets: proportional to what is left)."""
        if self.budgets is None:
            return self.requested
        left = np.array([self.budgets[t] - self.counts[t] for t in self.tasks], dtype=np.float64)
        return left / left.sum() if left.sum() > 0 else self.requested

    def exhausted(self) -> bool:
        return self.budgets is not None and all(self.counts[t] >= self.budgets[t] for t in self.tasks)

    def draw(self) -> str:
        p = self.probs
        task = self.tasks[int(self.rng.choice(len(self.tasks), p=p))] if len(self.tasks) > 1 else self.tasks[0]
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
