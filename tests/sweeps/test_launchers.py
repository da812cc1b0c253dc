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


def sbatch_script(cfg, folder: Path) -> str:
    """The sbatch script hydra-submitit-launcher would submit for ``cfg.hydra.launcher`` (needs submitit's
    ``SlurmExecutor.affinity`` patched: "srun is here")."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params.pop("_target_")
    params["submitit_folder"] = str(folder / "%j")
    params["setup"] = [line.replace("${hydra.launcher.cpus_per_task}", str(params["cpus_per_task"]))
                       for line in params["setup"]]
    params["name"] = "mtbench"
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")


def test_slurm_config_makes_a_valid_sbatch_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What hydra-submitit-launcher does with hydra.launcher before `sbatch`, up to the script."""
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"

    cfg = launcher_config("slurm", ["hydra.launcher.partition=cpu", "hydra.launcher.account=proj42"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    script = sbatch_script(cfg, tmp_path)
    for line in ("#SBATCH --cpus-per-task=8", "#SBATCH --time=240", "#SBATCH --partition=cpu",
                 "#SBATCH --account=proj42", "#SBATCH --mem=16GB", "export MTBENCH_THREADS=8"):
        assert line in script, line


PROBE_APP = """
import json, os, sys
import hydra
from hydra.core.hydra_config import HydraConfig
from mtbench.spec.compose import conf_dir


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def probe(cfg):
    out = os.path.join(HydraConfig.get().runtime.output_dir, "probe.json")
    with open(out, "w") as fh:
        json.dump({"pid": os.getpid(), "weight": cfg.training.fitting_weight.water_dipole}, fh)


if __name__ == "__main__":
    probe()
"""


@pytest.mark.slow
@pytest.mark.parametrize("launcher,extra,separate", [
    ("basic", [], False),
    ("joblib", ["hydra.launcher.n_jobs=2"], True),
    ("submitit_local", ["hydra.launcher.timeout_min=5"], True),
])
def test_local_launchers_run_each_job_in_its_folder(tmp_path: Path, launcher: str, extra: list[str],
                                                    separate: bool) -> None:
    """mtbench's config (its sweep dir layout, callbacks) through each local launcher, with a probe instead of
    training: every job gets its own numbered folder with its overrides; joblib and submitit run the jobs in
    other processes than the launching one, the basic launcher in the same."""
    import json
    import os
    import subprocess
    import sys

    app = tmp_path / "probe_app.py"
    app.write_text(PROBE_APP)
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                                       os.environ.get("PYTHONPATH", "")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, str(app), "-m", f"hydra/launcher={launcher}", *extra, "tracking=none",
                             "training.fitting_weight.water_dipole=1,5", f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0", "1"]
    probes = [json.loads((sweep / j / "probe.json").read_text()) for j in jobs]
    assert [p["weight"] for p in probes] == [1, 5]
    for j, w in zip(jobs, (1, 5)):
        overrides = (sweep / j / ".hydra" / "overrides.yaml").read_text()
        assert f"training.fitting_weight.water_dipole={w}" in overrides
    assert all((p["pid"] != proc.pid) == separate for p in probes), (proc.pid, probes)
    if launcher == "submitit_local":  # one process per job, with submitit's own logs
        assert probes[0]["pid"] != probes[1]["pid"]
        assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2
