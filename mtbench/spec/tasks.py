"""One view of the tasks of a spec, the same in single- and multi-task mode.

The trainer should not care whether a spec uses ``fitting_net`` or ``fitting_net_dict``:
:func:`task_view` gives it ``{task name: TaskSpec}`` in ``fitting_net_dict`` order
(single-task: one task named ``training.task_name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mtbench.spec.normalize import is_multi_task, normalize_spec


@dataclass(frozen=True)
class TaskSpec:
    """Everything one head needs; all dicts are normalised spec sections (not shared with the spec)."""

    name: str
    fitting_net: dict[str, Any]
    loss: dict[str, Any]
    training_data: dict[str, Any]
    validation_data: dict[str, Any] | None
    weight: float
    learning_rate: dict[str, Any]


def task_view(spec: Mapping[str, Any]) -> dict[str, TaskSpec]:
    """``{task: TaskSpec}`` in ``model.fitting_net_dict`` order (normalises ``spec`` first)."""
    norm = normalize_spec(spec)
    if not is_multi_task(norm):
        train = norm["training"]
        name = train["task_name"]
        return {name: TaskSpec(name=name, fitting_net=norm["model"]["fitting_net"], loss=norm["loss"],
                               training_data=train["training_data"], validation_data=train["validation_data"],
                               weight=1.0, learning_rate=norm["learning_rate"])}
    lr_dict = norm.get("learning_rate_dict", {})
    data = norm["training"]["data_dict"]
    weights = norm["training"]["fitting_weight"]
    return {
        task: TaskSpec(name=task, fitting_net=fit, loss=norm["loss_dict"][task],
                       training_data=data[task]["training_data"], validation_data=data[task]["validation_data"],
                       weight=float(weights[task]), learning_rate=lr_dict.get(task, norm["learning_rate"]))
        for task, fit in norm["model"]["fitting_net_dict"].items()
    }


def task_probabilities(spec: Mapping[str, Any]) -> dict[str, float]:
    """Probability that each task is drawn at a step: weight / sum of weights (0 = never)."""
    weights = {name: max(task.weight, 0.0) for name, task in task_view(spec).items()}
    total = sum(weights.values())
    if total <= 0:
        return {name: 0.0 for name in weights}
    return {name: w / total for name, w in weights.items()}


def describe_sharing(spec: Mapping[str, Any]) -> dict[str, str]:
    """Which fitting layers are shared by which tasks, as short strings for MLflow tags.

    ``{"shared_layers": "l0:water_dft+water_ccsdt;l2:water_dft+water_ccsdt"}``, names in
    order of first use; ``"none"`` when no ``layer_name`` is used by more than one task.
    (The descriptor is always shared by every task.)
    """
    users: dict[str, list[str]] = {}
    for name, task in task_view(spec).items():
        for layer in task.fitting_net.get("layer_name") or []:
            if layer is not None and name not in users.setdefault(layer, []):
                users[layer].append(name)
    shared = [f"{layer}:{'+'.join(tasks)}" for layer, tasks in users.items() if len(tasks) > 1]
    return {"shared_layers": ";".join(shared) if shared else "none"}
