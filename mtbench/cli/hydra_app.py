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
from typing import Any


def _task_function(cfg: Any) -> float:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from mtbench.cli.train import print_summary
    from mtbench.errors import exit_on_user_error
    from mtbench.runtime import configure_logging, configure_runtime
    from mtbench.cli.train import exit_if_stopped
    from mtbench.spec.compose import cfg_to_spec
    from mtbench.train.run import run_training

    configure_runtime(warm_up=OmegaConf.select(cfg, "training.distributed") != "multi_worker")
    configure_logging()
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    choices = {k: str(v) for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    overrides = list(hc.overrides.task)
    tags = {**{f"config.{k}": v for k, v in choices.items()}, "overrides": " ".join(overrides) or "(none)"}
    tracking = OmegaConf.to_container(cfg.get("tracking", {"backend": "none"}), resolve=True)
    if str(hc.mode).endswith("MULTIRUN") and not tracking.get("run_name"):
        tracking["run_name"] = f"job{hc.job.num}"
    output_dir = Path(str(cfg.paths.output_dir)) if "paths" in cfg else Path("outputs")
    summary = exit_on_user_error(
        lambda: run_training(cfg_to_spec(cfg), run_dir=run_dir, base_dir=Path(hc.runtime.cwd), tracking=tracking,
                             output_dir=output_dir, tags=tags, extra_artifacts=[run_dir / ".hydra"],
                             parent_run_id=parent_run_id(tracking), progress=True),
        prog="mtbench", reraise=hc.mode is not None and str(hc.mode).endswith("MULTIRUN"))
    import shlex

    exit_if_stopped(summary, shlex.join([sys.executable, "-m", "mtbench",
                                         *[o for o in overrides if not o.startswith("training.restart=")],
                                         f"training.restart={run_dir.resolve()}"]))
    print_summary(summary)
    return float(summary["objective"])


def parent_run_id(tracking: dict) -> str | None:
    """The sweep's parent MLflow run, set by the sweep callback (config ``tracking.parent_run_id`` or env)."""
    import os

    return tracking.pop("parent_run_id", None) or os.environ.get("MTBENCH_PARENT_RUN_ID") or None


def main(argv: list[str] | None = None) -> None:
    """``python -m mtbench``: overrides checked first (a typo is one line, exit 2), then Hydra's app."""
    import hydra

    from mtbench.cli.overrides import check_overrides
    from mtbench.errors import exit_on_user_error
    from mtbench.spec.compose import CONFIG_NAME, VERSION_BASE, conf_dir

    from mtbench.runtime import expose_package_to_children

    expose_package_to_children()
    args = sys.argv[1:] if argv is None else list(argv)
    exit_on_user_error(lambda: check_overrides(args, config_dir=str(conf_dir()), config_name=CONFIG_NAME,
                                               version_base=VERSION_BASE), prog="mtbench")
    if argv is not None:
        sys.argv = [sys.argv[0], *args]
    hydra.main(config_path=str(conf_dir()), config_name=CONFIG_NAME, version_base=VERSION_BASE)(_task_function)()


if __name__ == "__main__":
    main()
