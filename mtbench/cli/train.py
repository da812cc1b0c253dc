"""``python -m mtbench.train input.json``: train a DeePMD-style input.json directly, like ``dp train``.

Relative data paths resolve against the input file's folder; the run is tracked like a Hydra run.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m mtbench.train",
        description="Train a DeePMD-kit v2 style input.json (single- or multi-task) with mtbench's trainer.",
        epilog="Example: python -m mtbench.train examples/ener_dipole/input.json --tracking none")
    p.add_argument("input", help="DeePMD-style input.json (or .yaml)")
    p.add_argument("--restart", metavar="CKPT", help="resume from a checkpoint file, checkpoint folder or run dir")
    p.add_argument("--init-frz-model", metavar="MODEL",
                   help="start from a frozen mtbench model or a DeePMD-kit .dp model")
    p.add_argument("-o", "--run-dir", metavar="DIR",
                   help="where the run goes (default: <output-dir>/runs/<date>/<time>-<pid>)")
    p.add_argument("--output-dir", default="outputs", metavar="DIR",
                   help="root of runs and of the default MLflow store (default: ./outputs)")
    p.add_argument("--tracking", choices=["mlflow", "none"], default="mlflow", help="experiment tracking backend")
    p.add_argument("--experiment", default="mtbench", help="MLflow experiment name")
    p.add_argument("--run-name", default=None, help="MLflow run name")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (MLFLOW_TRACKING_URI wins)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def default_run_dir(output_dir: Path) -> Path:
    """``<output>/runs/<date>/<time to the microsecond>-<pid>``, created atomically so launches never share one."""
    import os

    now = datetime.datetime.now()
    day = output_dir / "runs" / now.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = day / (now.strftime("%H-%M-%S-%f") + f"-{os.getpid()}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()  # atomic: exactly one process creates it
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder under {day}")


def main(argv: list[str] | None = None) -> dict:
    from mtbench.errors import exit_on_user_error

    args = parse_args(argv)

    def run() -> dict:
        from mtbench.runtime import configure_logging, configure_runtime
        import shlex
        import sys

        from mtbench.train.run import exit_if_stopped, print_summary, run_training
        from mtbench.spec.io import load_spec

        configure_runtime()
        configure_logging()
        spec, base_dir = load_spec(args.input)
        spec.setdefault("training", {})
        if args.restart:
            spec["training"]["restart"] = str(Path(args.restart).resolve())
        if args.init_frz_model:
            spec["training"]["init_frz_model"] = str(Path(args.init_frz_model).resolve())
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(Path(args.output_dir))
        tracking = {"backend": args.tracking, "experiment": args.experiment, "run_name": args.run_name,
                    "tracking_uri": args.tracking_uri}
        summary = run_training(spec, run_dir=run_dir, base_dir=base_dir, tracking=tracking,
                               output_dir=args.output_dir, tags={"entry": "mtbench.train",
                                                                 "input": str(Path(args.input).resolve())},
                               progress=not args.no_progress)
        resume = [sys.executable, "-m", "mtbench.train", *(argv if argv is not None else sys.argv[1:])]
        resume = [a for i, a in enumerate(resume) if a != "--restart" and (i == 0 or resume[i - 1] != "--restart")]
        if not args.run_dir:
            resume += ["-o", str(run_dir)]
        exit_if_stopped(summary, shlex.join([*resume, "--restart", str(Path(run_dir).resolve())]))
        print_summary(summary)
        return summary

    return exit_on_user_error(run, prog="mtbench.train")


if __name__ == "__main__":
    main()
