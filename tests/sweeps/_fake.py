"""A fake finished sweep on disk (the files a real sweep leaves), built in milliseconds.

The run-folder files go through the real writers (:class:`mtbench.rundir.RunDir`, :class:`Summary`,
:class:`mtbench.train.lcurve.LcurveWriter`), so the sweep readers are tested against what training writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from mtbench.rundir import RunDir, Summary
from mtbench.train.lcurve import LcurveWriter

TASKS = ("water_ener", "water_dipole")
KEY = "training.fitting_weight.water_dipole"
WEIGHTS = (1, 5, 20)


def ener_err(w: float) -> float:
    """The energy task gets worse as the dipole weight grows (a made-up but monotonic law)."""
    return 0.1 + 0.01 * w


def dipole_err(w: float) -> float:
    return 0.5 / (1 + w)


METRICS = {"water_ener": ("rmse", "rmse_e", "rmse_f"), "water_dipole": ("rmse", "rmse_lc")}


def write_lcurve(run: RunDir, task: str, final: float, steps: tuple[int, ...] = (0, 5, 10)) -> Path:
    """A curve falling to ``final`` (the ranking metric: forces / the tensor rmse) at the last step."""
    path = run.lcurve(task)
    with LcurveWriter(path, METRICS[task]) as w:
        for i, s in enumerate(steps):
            if task == "water_ener":
                val = {"rmse": 9.0, "rmse_e": 1.0, "rmse_f": final * (3 - i)}
                trn = {"rmse": math.nan if s == 0 else 9.0, "rmse_e": 1.0, "rmse_f": final}
            else:
                val = {"rmse": final * (3 - i), "rmse_lc": final}
                trn = {"rmse": final, "rmse_lc": final}
            w.write(s, val, trn, 1e-3)
    return path


def make_sweep_dir(root: Path, *, fail_last: bool = True, parent: str | None = None,
                   uri: str | None = None) -> Path:
    """``root/multirun.yaml`` + one job dir per weight; the last job failed (no summary.json)."""
    root.mkdir(parents=True, exist_ok=True)
    master = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                    "params": None},
                        "overrides": {"task": ["debug=fast", f"{KEY}={','.join(map(str, WEIGHTS))}"],
                                      "hydra": []}}}
    (root / "multirun.yaml").write_text(yaml.safe_dump(master))
    for num, w in enumerate(WEIGHTS):
        job = root / str(num)
        run = RunDir(job)
        run.hydra.mkdir(parents=True)
        run.hydra_overrides.write_text(yaml.safe_dump(["debug=fast", f"{KEY}={w}"]))
        env = {"MTBENCH_PARENT_RUN_ID": parent, "MLFLOW_TRACKING_URI": uri} if parent else {}
        run.hydra_runtime.write_text(yaml.safe_dump({"hydra": {"job": {"env_set": env}}}))
        spec = {"model": {"fitting_net_dict": {t: {} for t in TASKS}},
                "training": {"fitting_weight": {"water_ener": 10, "water_dipole": w}}}
        run.input_json.write_text(json.dumps(spec))
        finals = {"water_ener": ener_err(w), "water_dipole": dipole_err(w)}
        for t in TASKS:
            write_lcurve(run, t, finals[t])
        if fail_last and num == len(WEIGHTS) - 1:
            continue
        p_dip = w / (10 + w)
        summary = Summary(
            steps=10, wall_s=5.0,
            final={"water_ener": {"val": {"rmse": 9.0, "rmse_e": 1.0, "rmse_f": finals["water_ener"],
                                          "rmse_v": math.nan}},
                   "water_dipole": {"val": {"rmse": finals["water_dipole"], "rmse_lc": finals["water_dipole"]}}},
            counts={"water_ener": 10 - round(10 * p_dip), "water_dipole": round(10 * p_dip)},
            fractions={"water_ener": 1 - round(10 * p_dip) / 10, "water_dipole": round(10 * p_dip) / 10},
            objective=1.0, run_id=None, run_dir=str(job))
        run.write_summary(summary)
    return root
