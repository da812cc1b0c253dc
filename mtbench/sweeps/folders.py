"""Sweeps read from disk: a Hydra multirun folder (``multirun.yaml``, ``<job>/.hydra/``,
``<job>/input.json``, ``lcurve.<task>.out``, ``summary.json``), or one run folder.

The files alone make the report; :func:`load_sweep_dir` adds the curves only MLflow holds
(gradient diagnostics) when the jobs were tracked and the store answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtbench.errors import DataError
from mtbench.rundir import RunDir
from mtbench.sweeps.mlflow_reader import add_mlflow_diagnostics
from mtbench.sweeps.model import DONE, Curve, Job, Sweep, job_sort_key, requested_from_spec
from mtbench.sweeps.model import num as _num
from mtbench.sweeps.plan import ENV_PARENT, ENV_TRACKING_URI, plan_sweep, sweep_label, swept_values, varying_keys
from mtbench.train.lcurve import read_lcurve as read_lcurve_file

log = logging.getLogger("mtbench.compare")


def read_lcurve(path: Path) -> dict[str, Curve]:
    """Validation curves of one ``lcurve.<task>.out`` (``{metric: Curve}``)."""
    lc = read_lcurve_file(path)
    return {m: Curve(lc.steps, [_num(v) for v in lc.val(m)]) for m in lc.metrics}


def _job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name != "compare"
            and ((p / ".hydra" / "overrides.yaml").is_file() or (p / "input.json").is_file())]
    return sorted(dirs, key=lambda p: job_sort_key(p.name))


def _load_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.load(path) if path.is_file() else None


def load_job_dir(job_dir: Path, keys: Sequence[str]) -> tuple[Job, list[str]]:
    """One job from its run dir; also returns its task overrides."""
    run = RunDir(job_dir)
    overrides_cfg = _load_yaml(run.hydra_overrides)
    overrides = [str(x) for x in overrides_cfg] if overrides_cfg is not None else []
    job = Job(label=job_dir.name, status="INCOMPLETE", run_dir=str(job_dir.resolve()))
    spec: dict[str, Any] = run.read_input() or {}
    fitting = (spec.get("model") or {}).get("fitting_net_dict") or {}
    job.tasks = list(fitting)
    for task, path in run.lcurves().items():
        job.curves[task] = read_lcurve(path)
        if task not in job.tasks:
            job.tasks.append(task)
    s = run.read_summary()
    if s is not None:
        job.status = DONE
        job.final = {t: {m: _num(v) for m, v in (res.get("val") or {}).items()} for t, res in s.final.items()}
        job.full = {t: {m: _num(v) for m, v in (res.get("metrics") or {}).items()}
                    for t, res in ((s.extra.get("final_eval") or {}).get("final") or {}).items()}
        job.val_best = {t: {m: _num(v) for m, v in (ms or {}).items()}
                        for t, ms in (s.extra.get("val_best") or {}).items()}
        job.counts = {t: _num(v) for t, v in s.counts.items()}
        job.fractions = {t: _num(v) for t, v in s.fractions.items()}
        job.requested = {t: _num(v) for t, v in s.requested.items()}
        job.best_hint = {t: str(b["metric"]) for t, b in s.best.items() if isinstance(b, Mapping) and "metric" in b}
        job.steps = int(s.steps) if s.steps is not None else None
        job.train_s = _num(s.wall_s)
        job.run_id = s.run_id
        job.objective = _num(s.objective)
        for t in job.final:
            if t not in job.tasks:
                job.tasks.append(t)
        if run.input_json.is_file():
            job.run_s = run.summary_json.stat().st_mtime - run.input_json.stat().st_mtime
    elif job.curves:
        job.steps = max((c.steps[-1] for cs in job.curves.values() for c in cs.values() if c.steps),
                        default=None)
    if not job.requested:
        job.requested = requested_from_spec(spec, job.tasks)
    job.swept = swept_values(overrides, keys)
    return job, overrides


def load_sweep_dir(sweep_dir: str | Path, *, with_mlflow: bool = True) -> Sweep:
    """A sweep from its directory (``<sweep dir>/<job>/...``); a single run dir works too."""
    root = Path(sweep_dir).resolve()
    if not root.is_dir():
        raise DataError(str(sweep_dir), "not a directory")
    job_dirs = _job_dirs(root)
    if not job_dirs and (root / "input.json").is_file():
        job_dirs = [root]
    if not job_dirs:
        raise DataError(str(sweep_dir), "no job directories (<n>/input.json) in this sweep directory")
    master = _load_yaml(root / "multirun.yaml")
    keys: list[str] = []
    name = ""
    if master is not None:
        try:
            keys = plan_sweep(master).keys
        except Exception as exc:  # noqa: BLE001 - fall back to what varies
            log.debug("multirun.yaml not understood: %s", exc)
        sweep_cfg = master.get("sweep") if "sweep" in master else None
        if sweep_cfg is not None and sweep_cfg.get("name"):
            name = str(sweep_cfg.get("name"))
    loaded = [load_job_dir(d, keys) for d in job_dirs]
    if not keys:
        keys = varying_keys([ov for _, ov in loaded])
        loaded = [load_job_dir(d, keys) for d in job_dirs]
    # named as the live report names it (the parent run's sweep.name); the folder's name when nothing is swept
    name = sweep_label(name, keys) if (name or keys) else root.name
    sweep = Sweep(jobs=[j for j, _ in loaded], keys=keys, source=str(root), sweep_dir=root, name=name)
    for d in job_dirs:
        hydra_cfg = _load_yaml(d / ".hydra" / "hydra.yaml")
        env = dict(hydra_cfg.hydra.job.get("env_set") or {}) if hydra_cfg is not None else {}
        if env.get(ENV_PARENT):
            sweep.parent_run_id = str(env[ENV_PARENT])
            sweep.tracking_uri = str(env.get(ENV_TRACKING_URI) or "") or None
            break
    if with_mlflow:
        add_mlflow_diagnostics(sweep)
    return sweep


def looks_like_sweep_dir(path: str | Path) -> bool:
    """What :func:`load_sweep_dir` reads: a Hydra multirun folder (``multirun.yaml``, or job
    folders ``<n>/`` with ``.hydra/overrides.yaml`` or ``input.json``) or one run folder
    (``input.json``). Any other folder (a package, a data folder) is not taken for a sweep."""
    root = Path(path)
    if not root.is_dir():
        return False
    return ((root / "multirun.yaml").is_file() or (root / "input.json").is_file()
            or bool(_job_dirs(root)))
