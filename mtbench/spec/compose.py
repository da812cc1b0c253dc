"""From Hydra config groups to a training spec.

The composed config holds the spec (DeePMD-kit v2 keys: ``model``, ``learning_rate``,
``learning_rate_dict``, ``loss``, ``loss_dict``, ``training``) next to app settings
(``tracking``, ``paths``, ``debug``, ``sweep``, ``hydra``...). :func:`cfg_to_spec` keeps
only the spec, resolved to plain Python, so nothing downstream depends on Hydra.

Mapping to DeePMD-kit v3's multi-task input (see also ``conf/README.md``):

=====================================================  ==========================================================
mtbench / DeePMD-kit v2                                 DeePMD-kit v3
=====================================================  ==========================================================
``model.descriptor`` (one, shared by all heads)         ``model.shared_dict.<d>`` + ``model_dict.<task>.descriptor:
                                                        "<d>"`` in every branch
``model.type_map``                                      ``model.shared_dict.type_map`` referenced by each branch
``model.fitting_net_dict.<task>``                       ``model.model_dict.<task>.fitting_net``
``fitting_net_dict.<task>.layer_name`` (equal names     no per-layer equivalent; ``shared_dict`` shares whole
share a layer)                                          modules (``"my_fitting:1"`` style share levels)
``loss_dict.<task>``                                    ``loss_dict.<task>``
``learning_rate`` / ``learning_rate_dict.<task>``       one ``learning_rate`` for all branches
``training.data_dict.<task>``                           ``training.data_dict.<task>``
``training.fitting_weight.<task>`` (weight / sum)       ``training.model_prob.<task>`` (normalised the same way)
=====================================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SPEC_KEYS = ("model", "learning_rate", "learning_rate_dict", "loss", "loss_dict", "training")
"""Top-level keys of the composed config that form the training spec; the rest is app config."""
VERSION_BASE = "1.3"
CONFIG_NAME = "config"


def conf_dir() -> Path:
    """Absolute path of the Hydra config folder (``mtbench/conf``; ``../conf`` in a checkout)."""
    return (Path(__file__).resolve().parent.parent / "conf").resolve()


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the root config with Hydra overrides, outside of any ``@hydra.main`` app.

    Safe to call while Hydra is already initialised (e.g. inside the app): the global
    Hydra state is saved and restored around the composition.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=VERSION_BASE):
            return compose(config_name=CONFIG_NAME, overrides=list(overrides))
    finally:
        restore_gh_from_backup(backup)


def cfg_to_spec(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The training spec part of a composed config, resolved to plain dicts and lists."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    spec: dict[str, Any] = {}
    for key in SPEC_KEYS:
        if key in cfg and cfg[key] is not None:
            spec[key] = OmegaConf.to_container(cfg[key], resolve=True)
    return spec
