"""A fake finished sweep on disk (the files a real sweep leaves), built in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

TASKS = ("water_ener", "water_dipole")
KEY = "training.fitting_weight.water_dipole"
WEIGHTS = (1, 5, 20)


def ener_err(w: float) -> float:
    """The energy task gets worse as the dipole weight grows (a made-up but monotonic law)."""
    return 0.1 + 0.01 * w


def dipole_err(w: float) -> float:
    return 0.5 / (1 + w)


def lcurve_text(task: str, final: float, steps: tuple[int, ...] = (0, 5, 10)) -> str:
    if task == "water_ener":
        head = "#  step    rmse_val    rmse_trn  rmse_e_val  rmse_e_trn  rmse_f_val  rmse_f_trn       lr"
        rows = [f"{s:7d} {9.0:11.2e} {'nan' if s == 0 else 9.0:>11} {1.0:11.2e} {1.0:11.2e} "
                f"{final * (3 - i):11.2e} {final:11.2e} {1e-3:8.1e}" for i, s in enumerate(steps)]
    else:
        head = "#  step    rmse_val    rmse_trn   rmse_lc_val   rmse_lc_trn       lr"
        rows = [f"{s:7d} {final * (3 - i):11.2e} {final:11.2e} {final:11.2e} {final:11.2e} {1e-3:8.1e}"
                for i, s in enumerate(steps)]
    return "\n".join([head, *rows]) + "\n"


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
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["debug=fast", f"{KEY}={w}"]))
        env = {"MTBENCH_PARENT_RUN_ID": parent, "MLFLOW_TRACKING_URI": uri} if parent else {}
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"env_set": env}}}))
        spec = {"model": {"fitting_net_dict": {t: {} for t in TASKS}},
                "training": {"fitting_weight": {"water_ener": 10, "water_dipole": w}}}
        (job / "input.json").write_text(json.dumps(spec))
        finals = {"water_ener": ener_err(w), "water_dipole": dipole_err(w)}
        for t in TASKS:
            (job / f"lcurve.{t}.out").write_text(lcurve_text(t, finals[t]))
        if fail_last and num == len(WEIGHTS) - 1:
            continue
        p_dip = w / (10 + w)
        summary = {
            "steps": 10, "wall_s": 5.0,
            "final": {"water_ener": {"val": {"rmse": 9.0, "rmse_e": 1.0, "rmse_f": finals["water_ener"],
                                             "rmse_v": None}},
                      "water_dipole": {"val": {"rmse": finals["water_dipole"],
                                               "rmse_lc": finals["water_dipole"]}}},
            "counts": {"water_ener": 10 - round(10 * p_dip), "water_dipole": round(10 * p_dip)},
            "fractions": {"water_ener": 1 - round(10 * p_dip) / 10, "water_dipole": round(10 * p_dip) / 10},
            "objective": 1.0, "run_id": None, "run_dir": str(job),
        }
        (job / "summary.json").write_text(json.dumps(summary))
    return root
