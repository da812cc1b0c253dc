"""The Hydra Sweeper: Hydra's objects in, :class:`mtbench.sweeps.search.Search` does the work (imported on use,
so Hydra's plugin scan does not import Optuna)."""

from __future__ import annotations

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from .config import MtbenchOptunaSweeperConf  # noqa: F401 - registers the config


class OptunaSweeper(Sweeper):
    """Multi-objective Optuna search over Hydra overrides; see :mod:`mtbench.sweeps.search`."""

    def __init__(self, **cfg: Any) -> None:
        self.sweeper_cfg = {k: (OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v)
                            for k, v in cfg.items()}
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: List[str]) -> Any:
        from mtbench.sweeps.search import Search

        assert self.config is not None and self.launcher is not None
        return Search(self.sweeper_cfg, self.config, self.launcher, self.validate_batch_is_legal).run(arguments)
