"""``python -m mtbench [hydra overrides]``: compose a spec with Hydra and train it.

Examples::

    python -m mtbench                                   # energy + dipole on built-in water data
    python -m mtbench descriptor=se_atten fitting=ener_dipole_polar training.numb_steps=500
    python -m mtbench --cfg job                         # show the composed config, train nothing
    python -m mtbench -m training.fitting_weight.water_dipole=1,5,20   # a sweep
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtbench.train.run import RunResult


def _task_function(cfg: Any) -> "RunResult":
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from mtbench.cli.train import print_summary
    from mtbench.errors import exit_on_user_error
    from mtbench.runtime import configure_logging, configure_runtime
    from mtbench.cli.train import exit_if_stopped
    from mtbench.train.run import RunResult, run_training
    from mtbench.train.signals import CommandSignals

    configure_runtime(warm_up=OmegaConf.select(cfg, "training.distributed") != "multi_worker")
    configure_logging()
    hc = HydraConfig.get()
    hydra_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode is not None and str(hc.mode).endswith("MULTIRUN")
    spec, run_dir = exit_on_user_error(lambda: spec_and_run_dir(cfg, hydra_dir, Path(hc.runtime.cwd)),
                                       prog="mtbench", reraise=multirun)
    choices = {k: str(v) for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    overrides = list(hc.overrides.task)
    tags = {**{f"config.{k}": v for k, v in choices.items()}, "overrides": " ".join(overrides) or "(none)"}
    tracking = OmegaConf.to_container(cfg.get("tracking", {"backend": "none"}), resolve=True)
    if str(hc.mode).endswith("MULTIRUN"):
        import os

        from mtbench.sweeps.plan import ENV_SWEEP_KEYS, job_note, job_run_name

        keys = [k for k in os.environ.get(ENV_SWEEP_KEYS, "").split(",") if k]
        if not tracking.get("run_name"):
            tracking["run_name"] = job_run_name(hc.job.num, overrides, keys)
        tags["mlflow.note.content"] = job_note(hc.job.num, overrides, keys)
    output_dir = Path(str(cfg.paths.output_dir)) if "paths" in cfg else Path("outputs")
    import shlex

    keep = [o for o in overrides if not o.startswith(("training.restart=", "hydra.run.dir="))]
    with CommandSignals():  # after a stop the process ends with 130/143, a second signal included
        summary = exit_on_user_error(
            lambda: run_training(spec, run_dir=run_dir, base_dir=Path(hc.runtime.cwd), tracking=tracking,
                                 output_dir=output_dir, tags=tags, extra_artifacts=[hydra_dir / ".hydra"],
                                 parent_run_id=parent_run_id(tracking), progress=True),
            prog="mtbench", reraise=multirun)
        exit_if_stopped(summary, shlex.join([sys.executable, "-m", "mtbench", *keep,
                                             f"training.restart={run_dir.resolve()}",
                                             f"hydra.run.dir={run_dir.resolve()}"]))
    print_summary(summary)
    return RunResult.from_summary(summary)  # a float (the objective) carrying each task's final error


def spec_and_run_dir(cfg: Any, hydra_dir: Path, cwd: Path) -> tuple[dict[str, Any], Path]:
    """The spec, and where it trains: ``training.restart=<run dir>`` continues that folder (and its MLflow run);
    otherwise Hydra's folder (``training.restart=auto`` then resumes it if it has a checkpoint: give a stable
    ``hydra.run.dir``, e.g. ``outputs/slurm/${oc.env:SLURM_JOB_ID}``, so a requeued job finds it)."""
    import logging

    from mtbench.spec.compose import cfg_to_spec
    from mtbench.train.resume import continuation_dir

    spec = cfg_to_spec(cfg)
    cont = continuation_dir((spec.get("training") or {}).get("restart"), cwd)
    if cont is None:
        return spec, hydra_dir
    spec["training"]["restart"] = str(cont)
    if cont != hydra_dir.resolve():
        logging.getLogger("mtbench").info("continuing in %s (this launch's Hydra folder %s keeps only its .hydra/; "
                                          "add hydra.run.dir=%s to resume in place)", cont, hydra_dir, cont)
    return spec, cont


def parent_run_id(tracking: dict) -> str | None:
    """The sweep's parent MLflow run, set by the sweep callback (config ``tracking.parent_run_id`` or env)."""
    import os

    return tracking.pop("parent_run_id", None) or os.environ.get("MTBENCH_PARENT_RUN_ID") or None


RUN_DIR_RESOLVER = "mtbench.run_dir"
SWEEP_DIR_RESOLVER = "mtbench.sweep_dir"


def _sweep_dir(output_dir: str, chosen: str | None = None) -> str:
    from mtbench.rundir import new_sweep_dir

    return str(chosen) if chosen else str(new_sweep_dir(output_dir))


def register_resolvers() -> None:
    """``${mtbench.run_dir:<output dir>}``, the default ``hydra.run.dir``: a fresh run folder, made atomically by
    :func:`mtbench.rundir.new_run_dir`; ``${mtbench.sweep_dir:<output dir>,<chosen or null>}``, the default
    ``hydra.sweep.dir``: the chosen folder (a search names its own), else a fresh one from
    :func:`mtbench.rundir.new_sweep_dir`. Both cached, so every read in one launch gets the same folder (Hydra
    copies the cache into each job's config)."""
    from omegaconf import OmegaConf

    from mtbench.rundir import new_run_dir

    if not OmegaConf.has_resolver(RUN_DIR_RESOLVER):
        OmegaConf.register_new_resolver(RUN_DIR_RESOLVER, lambda output_dir: str(new_run_dir(output_dir)),
                                        use_cache=True)
    if not OmegaConf.has_resolver(SWEEP_DIR_RESOLVER):
        OmegaConf.register_new_resolver(SWEEP_DIR_RESOLVER, _sweep_dir, use_cache=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m mtbench``: overrides checked first (a typo is one line, exit 2), then Hydra's app."""
    import hydra

    from mtbench.cli.overrides import check_overrides
    from mtbench.errors import exit_on_user_error
    from mtbench.spec.compose import CONFIG_NAME, VERSION_BASE, conf_dir

    from mtbench.runtime import expose_package_to_children

    expose_package_to_children()
    register_resolvers()
    args = sys.argv[1:] if argv is None else list(argv)
    exit_on_user_error(lambda: check_overrides(args, config_dir=str(conf_dir()), config_name=CONFIG_NAME,
                                               version_base=VERSION_BASE), prog="mtbench")
    if argv is not None:
        sys.argv = [sys.argv[0], *args]
    hydra.main(config_path=str(conf_dir()), config_name=CONFIG_NAME, version_base=VERSION_BASE)(_task_function)()


if __name__ == "__main__":
    main()
