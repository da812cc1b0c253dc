"""The training spec: DeePMD-kit v2 ``input.json`` keys, normalised and validated.

The spec is the contract between configuration (Hydra, or a hand-written input.json) and
training: everything downstream reads only the dict these functions return. Hydra
composition lives in :mod:`mtbench.spec.compose` (imported on demand).
"""

from __future__ import annotations

from mtbench.spec.io import load_spec, write_spec
from mtbench.spec.normalize import is_multi_task, normalize_spec
from mtbench.spec.paths import resolve_system_path
from mtbench.spec.tasks import TaskSpec, describe_sharing, task_probabilities, task_view
from mtbench.spec.validate import validate_spec

__all__ = [
    "TaskSpec",
    "describe_sharing",
    "is_multi_task",
    "load_spec",
    "normalize_spec",
    "resolve_system_path",
    "task_probabilities",
    "task_view",
    "validate_spec",
    "write_spec",
]
