"""The run folder under ``srun`` (every task must agree on the chief's folder) and the launcher's resume line;
fake SLURM environments only (env vars, no srun)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtbench.rundir import new_run_dir, slurm_step

STEP = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2"}


def test_every_task_of_an_srun_step_picks_the_chiefs_folder(tmp_path: Path) -> None:
    worker = new_run_dir(tmp_path, {**STEP, "SLURM_PROCID": "1"})
    assert not worker.exists()  # a non-chief task creates nothing
    chief = new_run_dir(tmp_path, {**STEP, "SLURM_PROCID": "0"})
    assert chief == worker == tmp_path / "runs" / "slurm" / "4242.0"
    assert chief.is_dir() and list(chief.iterdir()) == []
    assert new_run_dir(tmp_path, {**STEP, "SLURM_PROCID": "0"}) == chief  # a requeue: the same folder
    assert new_run_dir(tmp_path, {**STEP, "SLURM_STEP_ID": "1", "SLURM_PROCID": "0"}).name == "4242.1"


@pytest.mark.parametrize("env", [{}, {**STEP, "SLURM_STEP_NUM_TASKS": "1", "SLURM_NTASKS": "1"},
                                 {k: v for k, v in STEP.items() if k != "SLURM_STEP_ID"}])
def test_one_task_or_no_srun_keeps_the_time_stamped_folder(tmp_path: Path, env: dict) -> None:
    assert slurm_step(env) is None
    a, b = new_run_dir(tmp_path, env), new_run_dir(tmp_path, env)
    assert a != b and a.parent.parent == tmp_path / "runs" and a.parent.name != "slurm"


def test_hydra_default_run_dir_follows_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from mtbench.cli.hydra_app import register_resolvers

    for k, v in {**STEP, "SLURM_PROCID": "1"}.items():
        monkeypatch.setenv(k, v)
    register_resolvers()
    cfg = OmegaConf.create({"out": str(tmp_path), "dir": "${mtbench.run_dir:${out}}"})
    assert Path(cfg.dir) == tmp_path / "runs" / "slurm" / "4242.0"


def test_the_launcher_prints_one_resume_line_through_itself() -> None:
    from mtbench.launch import resume_line

    line = resume_line("mtbench: stopped by SIGTERM at step 12 (checkpoint written); resume with: /py -m "
                       "mtbench.train in.json -o /r --restart /r", 2)
    assert line.startswith("mtbench.launch: stopped by SIGTERM at step 12 (checkpoint written); resume with: ")
    assert line.endswith("-m mtbench.launch --nproc 2 --train in.json -- -o /r --restart /r")
    hydra = resume_line("mtbench: stopped by SIGINT at step 3 (checkpoint written); resume with: /py -m mtbench "
                        "a=1 training.restart=/r hydra.run.dir=/r", 4)
    assert hydra.endswith("-m mtbench.launch --nproc 4 -- a=1 training.restart=/r hydra.run.dir=/r")
