"""The sweeper's config schema, registered as ``hydra/sweeper=optuna`` (and ``mtbench_optuna``, the same node,
for when another plugin also registers ``optuna``)."""

# no `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules, where
# dataclasses cannot resolve string annotations
from dataclasses import dataclass, field
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class MtbenchOptunaSweeperConf:
    _target_: str = "hydra_plugins.mtbench_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # "tasks": one objective per task (its final validation error, minimized); "weighted": one scalar,
    # sum_t weights[t] * error_t / sum_t weights[t] (a task missing from weights has weight 1)
    objective: str = "tasks"
    weights: Dict[str, float] = field(default_factory=dict)
    # the trial budget (finished trials, a resumed study included) and how many run at once (one launcher batch)
    n_trials: int = 20
    n_jobs: int = 1
    # tpe | nsga2 | random; a seed makes the search repeatable
    sampler: str = "tpe"
    seed: Optional[int] = None
    # the study: rerunning the same command with the same study_name resumes it
    study_name: str = "search"
    # null: sqlite:///<sweep dir>.optuna.db, beside the sweep folder
    storage: Optional[str] = None
    # the sweep folder of a search (conf/config.yaml's hydra.sweep.dir takes it): no time stamp, so a rerun of
    # the same command finds its study and its trials' folders
    sweep_dir: str = "${oc.select:paths.output_dir,outputs}/search/${hydra.sweeper.study_name}"
    # a rerun continues the sweep's MLflow parent run (mtbench.sweeps.callback), as it continues the study
    resumes: bool = True
    # the search space, as hydra.sweeper.params of the basic sweeper (the command line adds to it and wins)
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=MtbenchOptunaSweeperConf,
                             provider="mtbench")
ConfigStore.instance().store(group="hydra/sweeper", name="mtbench_optuna", node=MtbenchOptunaSweeperConf,
                             provider="mtbench")
