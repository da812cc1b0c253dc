"""hydra/launcher=slurm_distributed (sweep jobs that are themselves data-parallel) up to the sbatch script, as
tests/sweeps/test_launchers.py does for hydra/launcher=slurm (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.sweeps.test_launchers import launcher_config


def test_distributed_slurm_config_makes_a_multi_task_sbatch_script(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"

    cfg = launcher_config("slurm_distributed", ["hydra.launcher.partition=gpu", "hydra.launcher.nodes=2",
                                                "training.distributed=multi_worker"])
    assert cfg.training.distributed == "multi_worker"
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
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --partition=gpu", "#SBATCH --mem=64GB",
                 "export MTBENCH_THREADS=8"):
        assert line in script, line
    assert "srun" in script  # every task runs the job: one worker each
