"""The launcher configs compose into something their plugins accept (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf


def launcher_config(name: str, extra: list[str] | None = None):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from mtbench.spec.compose import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = GlobalHydra.instance().hydra.compose_config(
            "config", [f"hydra/launcher={name}", "training.fitting_weight.water_dipole=1,5", *(extra or [])],
            run_mode=RunMode.MULTIRUN, with_log_configuration=False)
    return cfg


def test_slurm_config_makes_a_valid_sbatch_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What hydra-submitit-launcher does with hydra.launcher before `sbatch`, up to the script."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"

    cfg = launcher_config("slurm", ["hydra.launcher.partition=cpu", "hydra.launcher.account=proj42"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params.pop("_target_")
    params["submitit_folder"] = str(tmp_path / "%j")
    params["setup"] = [line.replace("${hydra.launcher.cpus_per_task}", str(params["cpus_per_task"]))
                       for line in params["setup"]]
    params["name"] = "mtbench"
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("#SBATCH --cpus-per-task=8", "#SBATCH --time=240", "#SBATCH --partition=cpu",
                 "#SBATCH --account=proj42", "#SBATCH --mem=16GB", "export MTBENCH_THREADS=8"):
        assert line in script, line


def test_local_launchers_resolve_to_their_plugins() -> None:
    assert launcher_config("joblib").hydra.launcher._target_.endswith("JoblibLauncher")
    assert launcher_config("submitit_local").hydra.launcher._target_.endswith("LocalLauncher")
