"""hydra/launcher=slurm_distributed (sweep jobs that are themselves data-parallel) up to the sbatch script, as
tests/sweeps/test_launchers.py does for hydra/launcher=slurm (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sweeps.test_launchers import launcher_config, sbatch_script


def test_distributed_slurm_config_makes_a_multi_task_sbatch_script(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"

    cfg = launcher_config("slurm_distributed", ["hydra.launcher.partition=gpu", "hydra.launcher.nodes=2",
                                                "training.distributed=multi_worker"])
    assert cfg.training.distributed == "multi_worker"
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    script = sbatch_script(cfg, tmp_path)
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --partition=gpu", "#SBATCH --mem=64GB",
                 "export MTBENCH_THREADS=8"):
        assert line in script, line
    assert "srun" in script  # every task runs the job: one worker each
