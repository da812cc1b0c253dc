"""The end-of-run evaluation that is the same for every job: each task on its whole validation data.

Per-display validation draws ``numb_btch`` random batches, so two jobs are ranked on different frames. At the end of
a run every task is evaluated instead on every frame of every validation system, with the code of
``python -m mtbench.test`` (:func:`mtbench.evaluation.metrics.evaluate`, same loader, same predictor, no shuffle), so
the numbers equal what ``python -m mtbench.test -m CHECKPOINT`` prints for the checkpoint (with
``validation_data.final_nframes: N``, a fixed subset: N frames per system after a shuffle seeded with
``training.seed``, what ``mtbench.test -n N --shuffle-test -r SEED`` prints). Two checkpoints:

- the last one (``final``): logged as ``final/<task>/<m>``;
- each task's best checkpoint (``checkpoints/best.<task>.h5``), that task only: ``final_best/<task>/<m>``.

``best/<task>/<metric>`` keeps its meaning (the best per-display validation value of the ranking metric, lcurve
names): dp-test names overlap lcurve names with another meaning (``rmse_e`` is per atom in the lcurve, per frame in
dp test), so the full evaluations get groups of their own. ``<m>`` are dp-test metric keys (``rmse_f``, ``mae_ea``,
``rmse``, ``rmse_atomic``, ...). A metric is present when some validation system has its labels (DeePMD's
frame-weighted merge over systems), so a mix of atomic and global dipole systems gives both, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def validation_systems(spec: Mapping[str, Any], bases: Sequence[Path]) -> dict[str, list[str]]:
    """``{task: systems}``: each task's validation data (training data where it has none), as ``mtbench.test``."""
    from mtbench.evaluation.dp_test import spec_data  # the one rule of mtbench.test for "a head's data"

    return spec_data(spec, bases, "validation")


def frame_caps(spec: Mapping[str, Any]) -> dict[str, int]:
    """``{task: N}`` for tasks whose ``validation_data.final_nframes`` caps the evaluation at N frames per system."""
    from mtbench.spec.tasks import task_view

    out = {}
    for name, task in task_view(spec).items():
        cap = (task.validation_data or {}).get("final_nframes")
        if cap is not None:
            out[name] = int(cap)
    return out


def evaluate_checkpoint(checkpoint: str | Path, data: Mapping[str, Sequence[str]],
                        tasks: Sequence[str] | None = None, caps: Mapping[str, int] | None = None,
                        seed: int | None = None) -> dict[str, dict[str, Any]]:
    """``{task: {"kind", "nframes", "metrics"}}`` of ``checkpoint`` on ``data``, as ``mtbench.test`` computes it.

    A task in ``caps`` is evaluated on the first ``caps[task]`` frames of each system after a shuffle seeded with
    ``seed`` (None: 0), as ``mtbench.test -n N --shuffle-test -r SEED``; the others on every frame."""
    from mtbench.evaluation.metrics import SystemLoader, evaluate
    from mtbench.export.load import load_model
    from mtbench.inference.predictor import as_model

    model = as_model(load_model(checkpoint))
    loader = SystemLoader(model.type_map)
    out: dict[str, dict[str, Any]] = {}
    for task in tasks if tasks is not None else list(model.heads):
        if task not in data or task not in model.heads:
            continue
        cap = (caps or {}).get(task)
        res = evaluate(model, task, data[task], cap, atomic=False,
                       shuffle_seed=None if cap is None else (0 if seed is None else int(seed)), loader=loader)
        metrics = {k: float(v) for k, v in res.metrics.items() if math.isfinite(v)}
        out[task] = {"kind": res.kind, "nframes": res.nframes, "checkpoint": Path(checkpoint).name,
                     "metrics": metrics}
    return out


def final_evaluation(run_dir: str | Path, spec: Mapping[str, Any], bases: Sequence[Path]) -> dict[str, Any]:
    """``{"final": {task: ...}, "final_best": {task: ...}}`` for the run in ``run_dir`` (see the module doc)."""
    from mtbench.rundir import RunDir

    run = RunDir(run_dir)
    data = validation_systems(spec, bases)
    caps, seed = frame_caps(spec), (spec.get("training") or {}).get("seed")
    out: dict[str, Any] = {"final": {}, "final_best": {}}
    latest = run.latest_checkpoint()
    if latest is not None:
        out["final"] = evaluate_checkpoint(latest, data, caps=caps, seed=seed)
    for task in run.read_best():
        ckpt = run.best_checkpoint(task)
        if ckpt.is_file():
            out["final_best"].update(evaluate_checkpoint(ckpt, data, [task], caps=caps, seed=seed))
    return out


def metrics_to_log(evaluation: Mapping[str, Any]) -> dict[str, float]:
    """``final/<task>/<m>`` and ``final_best/<task>/<m>`` from :func:`final_evaluation`'s result."""
    from mtbench.tracking import names

    out: dict[str, float] = {}
    for group, build in (("final", names.final_metric), ("final_best", names.final_best_metric)):
        for task, res in (evaluation.get(group) or {}).items():
            out.update({build(task, m): v for m, v in res["metrics"].items()})
    return out
