"""A multi-objective Optuna search behind Hydra's Sweeper interface (the engine of ``hydra/sweeper=optuna``).

The plugin class (``hydra_plugins.mtbench_optuna_sweeper``) only hands Hydra's objects to :class:`Search`; Optuna
is imported here, when a search starts, so Hydra's plugin scan stays fast.

- Search space: every sweep override (command line or ``hydra.sweeper.params``) becomes an Optuna distribution
  (:func:`distribution`): ``a,b,c`` / ``choice(...)`` categorical, ``interval(lo,hi)`` float (int when both ends
  are ints, e.g. ``int(interval(1,8))``), ``range(...)`` int/float with a step, ``tag(log, ...)`` log scale.
  Other overrides are passed unchanged to every trial.
- Objectives (:func:`objective_values`): ``tasks`` (one per task, its final validation error: the job returns a
  :class:`mtbench.train.run.RunResult`), or ``weighted`` (one scalar ``sum_t w_t e_t / sum_t w_t``).
- Trials run in batches of ``n_jobs`` through the configured launcher (job number = trial number).
- The study lives in SQLite (default ``<sweep dir>.optuna.db``, beside the sweep folder). Rerunning the same
  command loads it: finished trials are kept, trials a kill left RUNNING are marked FAIL (and their MLflow child
  runs KILLED, tag ``mtbench.stale``), the budget ``n_trials`` counts finished trials.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtbench.errors import MtbenchError

log = logging.getLogger("mtbench.search")

OBJECTIVE_MODES = ("tasks", "weighted")
SAMPLERS = ("tpe", "nsga2", "random")
INTERRUPTED_ATTR = "interrupted_trials"  # study user attr: trials a killed search left RUNNING (marked FAIL)
DEFINITION_ATTR = "definition"  # study user attr: what the study searches (a resumed command must match it)
PARENT_ATTR = "mlflow_parent_run_ids"  # study user attr: the sweep parent run of each (re)start
RESULTS_FILE = "search_results.json"  # in the sweep folder: the Pareto trials (or the best one)


class SearchError(MtbenchError):
    """A search the sweeper cannot run as asked (bad objective mode, a resumed study that differs)."""


@dataclass(frozen=True)
class Param:
    """One searched override: its key and its Optuna distribution (categorical choices are override strings)."""

    key: str
    distribution: Any

    def override(self, value: Any) -> str:
        return f"{self.key}={value!r}" if isinstance(value, float) else f"{self.key}={value}"


def distribution(sweep: Any) -> Any:
    """The Optuna distribution of one parsed Hydra sweep (``Override.value()`` of a sweep override)."""
    import optuna.distributions as od
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep

    log_scale = "log" in (sweep.tags or set())
    if isinstance(sweep, ChoiceSweep):
        if log_scale:
            raise SearchError("tag(log, ...) needs interval(...) or range(...), not a list of choices")
        return od.CategoricalDistribution([Override._get_value_element_as_str(v) for v in sweep.list])
    if isinstance(sweep, IntervalSweep):
        lo, hi = sweep.start, sweep.end
        if isinstance(lo, int) and isinstance(hi, int):
            return od.IntDistribution(lo, hi, log=log_scale)
        return od.FloatDistribution(float(lo), float(hi), log=log_scale)
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        if all(isinstance(x, int) for x in (start, stop, step)):
            if log_scale and step != 1:
                raise SearchError("tag(log, range(...)) needs step 1")
            last = start + step * ((stop - 1 - start) // step)  # range(start, stop, step)'s last value
            return od.IntDistribution(start, last, step=1 if log_scale else step, log=log_scale)
        if log_scale:
            raise SearchError("tag(log, range(...)) needs integers; use tag(log, interval(lo, hi))")
        last = start + step * math.floor((stop - start) / step - 1e-12)
        return od.FloatDistribution(float(start), float(last), step=float(step))
    raise SearchError(f"unsupported sweep {sweep!r}")


def parse_search_space(params: Mapping[str, Any], arguments: Sequence[str]) -> tuple[list[Param], list[str]]:
    """``(searched params, fixed overrides)`` from ``hydra.sweeper.params`` and the command line (which wins)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mtbench.sweeps.plan import override_key

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + [str(a) for a in arguments]
    by_key: dict[str, Any] = {}
    for o in OverridesParser.create().parse_overrides(lines):
        by_key[override_key(o)] = o
    searched: list[Param] = []
    fixed: list[str] = []
    for key, o in by_key.items():
        if o.is_sweep_override():
            searched.append(Param(key=f"{o.get_key_element()}", distribution=distribution(o.value())))
        else:
            fixed.append(str(o.input_line))
    return searched, fixed


def objective_values(result: Any, tasks: Sequence[str], mode: str, weights: Mapping[str, float]) -> list[float]:
    """What Optuna is told for one finished job: per task errors (``tasks``), or their weighted mean."""
    per_task = dict(getattr(result, "per_task", {}) or {})
    missing = [t for t in tasks if t not in per_task]
    if missing:
        raise SearchError(f"the job returned no final validation error for {', '.join(missing)}")
    values = [float(per_task[t]) for t in tasks]
    if mode == "tasks":
        return values
    w = [float(weights.get(t, 1.0)) for t in tasks]
    total = sum(w)
    if total <= 0:
        raise SearchError("hydra.sweeper.weights: at least one weight must be positive")
    return [sum(wi * vi for wi, vi in zip(w, values)) / total]


def default_storage(sweep_dir: str | Path) -> str:
    """``sqlite:///<sweep dir>.optuna.db``: beside the sweep folder, so a rerun finds it."""
    path = Path(str(sweep_dir)).resolve()
    return f"sqlite:///{path.parent / (path.name + '.optuna.db')}"


def tasks_of(config: Any) -> list[str]:
    """The task names of the composed (master) config: one objective each."""
    from mtbench.spec.compose import cfg_to_spec
    from mtbench.spec.tasks import task_view

    return list(task_view(cfg_to_spec(config)))


def make_sampler(name: str, seed: int | None) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SearchError(f"hydra.sweeper.sampler={name!r}: one of {', '.join(SAMPLERS)}")


class Search:
    """One (possibly resumed) search: the study, the launcher, the trial loop."""

    def __init__(self, sweeper_cfg: Mapping[str, Any], config: Any, launcher: Any, validate: Any) -> None:
        self.cfg = dict(sweeper_cfg)
        self.config = config
        self.launcher = launcher
        self.validate = validate  # Sweeper.validate_batch_is_legal
        self.mode = str(self.cfg.get("objective") or "tasks")
        if self.mode not in OBJECTIVE_MODES:
            raise SearchError(f"hydra.sweeper.objective={self.mode!r}: one of {', '.join(OBJECTIVE_MODES)}")
        self.weights = {str(k): float(v) for k, v in dict(self.cfg.get("weights") or {}).items()}
        self.n_trials = int(self.cfg.get("n_trials") or 0)
        self.n_jobs = max(1, int(self.cfg.get("n_jobs") or 1))
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def definition(self, params: Sequence[Param], fixed: Sequence[str], tasks: Sequence[str]) -> str:
        from optuna.distributions import distribution_to_json

        return json.dumps({"params": {p.key: json.loads(distribution_to_json(p.distribution)) for p in params},
                           "fixed": sorted(fixed), "objective": self.mode, "tasks": list(tasks),
                           "weights": self.weights if self.mode == "weighted" else {}}, sort_keys=True)

    def open_study(self, definition: str, n_objectives: int) -> Any:
        import optuna
        from optuna.trial import TrialState

        storage = str(self.cfg.get("storage") or default_storage(self.sweep_dir))
        if storage.startswith("sqlite:///"):
            Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        name = str(self.cfg.get("study_name") or "search")
        try:
            existing = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            existing = None
        if existing is not None:
            old = existing.user_attrs.get(DEFINITION_ATTR)
            if old is not None and old != definition:
                raise SearchError(f"study {name!r} in {storage} searches something else (space, fixed overrides "
                                  f"or objectives differ); choose another hydra.sweeper.study_name")
        done = len(existing.trials) if existing is not None else 0
        seed = self.cfg.get("seed")
        sampler = make_sampler(str(self.cfg.get("sampler") or "tpe"),
                               None if seed is None else int(seed) + done)  # a resumed seeded search goes on
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    directions=["minimize"] * n_objectives, load_if_exists=True)
        if len(study.directions) != n_objectives:
            raise SearchError(f"study {name!r} has {len(study.directions)} objectives, this search "
                              f"{n_objectives}; choose another hydra.sweeper.study_name")
        study.set_user_attr(DEFINITION_ATTR, definition)
        left = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))]
        self.interrupt(study, left, "was left running by an interrupted search")
        if existing is not None:  # printed: mtbench's logging is set up by the first job, after this
            print(f"mtbench: search: resuming study {name!r} ({storage}), {done} trials so far", flush=True)
        self.storage = storage
        return study

    def trial_dir(self, number: int) -> Path:
        """The run folder of trial ``number`` (Hydra's ``<sweep dir>/<job num>``, job number = trial number)."""
        return self.sweep_dir.resolve() / str(number)

    def interrupt(self, study: Any, numbers: Sequence[int], why: str) -> None:
        """Trials whose process is gone (a killed search or worker): FAIL in the study, not counted towards
        ``n_trials``, and their MLflow child run, left RUNNING by the dead process, ended as KILLED with the
        ``mtbench.stale`` tag (:func:`mtbench.tracking.stale.mark_stale`; a folder a live process holds is left
        alone)."""
        from optuna.trial import TrialState

        from mtbench.rundir import RunDir
        from mtbench.tracking.stale import mark_stale

        for number in numbers:
            study.set_user_attr(INTERRUPTED_ATTR, [*study.user_attrs.get(INTERRUPTED_ATTR, []), number])
            study.tell(number, state=TrialState.FAIL)
            log.warning("trial %d %s: marked failed", number, why)
            print(f"mtbench: search: trial {number} {why}: marked failed", flush=True)
            mark_stale(RunDir(self.trial_dir(number)), "a resumed search")

    def finished(self, study: Any) -> int:
        from optuna.trial import TrialState

        interrupted = set(study.user_attrs.get(INTERRUPTED_ATTR, []))
        return sum(1 for t in study.get_trials(deepcopy=False)
                   if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and t.number not in interrupted))

    def run(self, arguments: Sequence[str]) -> list[Any]:
        from hydra.core.utils import JobStatus
        from omegaconf import OmegaConf
        from optuna.trial import TrialState

        from mtbench.sweeps.plan import ENV_PARENT

        params, fixed = parse_search_space(dict(self.cfg.get("params") or {}), arguments)
        if not params:
            raise SearchError("nothing to search: give at least one sweep override, e.g. "
                              "'training.fitting_weight.water_dipole=tag(log,interval(0.1,100))'")
        tasks = tasks_of(self.config)
        n_obj = len(tasks) if self.mode == "tasks" else 1
        study = self.open_study(self.definition(params, fixed, tasks), n_obj)
        study.set_user_attr("tasks", tasks)
        study.set_user_attr("sweep_dir", str(self.sweep_dir.resolve()))
        parent = (self.config.hydra.job.get("env_set") or {}).get(ENV_PARENT)
        if parent:
            study.set_user_attr(PARENT_ATTR, [*study.user_attrs.get(PARENT_ATTR, []), str(parent)])
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        returns: list[Any] = []
        while (left := self.n_trials - self.finished(study)) > 0:
            trials = [study.ask({p.key: p.distribution for p in params}) for _ in range(min(self.n_jobs, left))]
            batch = [[*fixed, *(p.override(t.params[p.key]) for p in params)] for t in trials]
            numbers = [t.number for t in trials]
            if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
                raise SearchError(f"trial numbers {numbers} are not consecutive: is another process using "
                                  f"the study {self.storage}?")
            self.validate(batch)
            try:
                results = self.launcher.launch(batch, initial_job_idx=numbers[0])
            except BaseException:  # a worker killed (joblib: TerminatedWorkerError), Ctrl-C: no result came back
                self.interrupt(study, numbers, "was cut short (its launch raised)")
                raise
            for trial, res in zip(trials, results):
                trial.set_user_attr("run_dir", str(self.trial_dir(trial.number)))
                if res.status != JobStatus.COMPLETED:
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d failed (%s)", trial.number, _error_line(res))
                    continue
                try:
                    values = objective_values(res.return_value, tasks, self.mode, self.weights)
                except SearchError as exc:
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d: %s", trial.number, exc)
                    continue
                metrics = dict(getattr(res.return_value, "metrics", {}) or {})
                trial.set_user_attr("metrics", metrics)
                if not all(math.isfinite(v) for v in values):
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d: non-finite objective %s", trial.number, values)
                    continue
                study.tell(trial, values)
            returns.append(results)
        self.write_results(study, params, tasks)
        return returns

    def write_results(self, study: Any, params: Sequence[Param], tasks: Sequence[str]) -> Path:
        """``<sweep dir>/search_results.json``: the study, and its non-dominated (or best) trials."""
        from optuna.trial import TrialState

        complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        best = study.best_trials if complete else []
        names = tasks if self.mode == "tasks" else ["weighted"]
        out = {"study_name": study.study_name, "storage": self.storage, "objective": self.mode,
               "objectives": names, "weights": self.weights, "n_trials": len(study.trials),
               "complete": len(complete), "params": [p.key for p in params],
               "best_trials": [{"number": t.number, "values": dict(zip(names, t.values)), "params": t.params}
                               for t in best]}
        path = self.sweep_dir / RESULTS_FILE
        path.write_text(json.dumps(out, indent=2) + "\n")
        for t in best:
            log.info("search: non-dominated trial %d %s %s", t.number, dict(zip(names, t.values)), t.params)
        return path


def _error_line(job_return: Any) -> str:
    try:
        job_return.return_value  # noqa: B018 - raises the job's exception
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return "?"
