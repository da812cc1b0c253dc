"""``python -m mtbench.train input.json``: train a DeePMD-style input.json directly, like ``dp train``.

Relative data paths resolve against the input file's folder; the run is tracked like a Hydra run.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbench.cli.command import command_parser, run_command

COMMAND = "mtbench.train"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = command_parser(
        COMMAND,
        description="Train a DeePMD-kit v2 style input.json (single- or multi-task) with mtbench's trainer.",
        epilog="Example: python -m mtbench.train examples/ener_dipole/input.json --tracking none")
    p.add_argument("input", help="DeePMD-style input.json (or .yaml)")
    p.add_argument("--restart", metavar="CKPT",
                   help="resume from a checkpoint file, checkpoint folder or run dir: a run dir's own checkpoint "
                        "continues that run (same folder, same MLflow run); 'auto': resume the latest checkpoint "
                        "of --run-dir if it has one, else start fresh (a requeued cluster job)")
    p.add_argument("--init-frz-model", metavar="MODEL",
                   help="start from a frozen mtbench model (any form freeze writes: united/, the per-head "
                        "folder, one head's folder) or a DeePMD-kit .dp model")
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


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)

    def run() -> dict:
        import shlex
        import sys

        from mtbench import api
        from mtbench.errors import MtbenchError
        from mtbench.rundir import new_run_dir

        tracking = {"backend": args.tracking, "experiment": args.experiment, "run_name": args.run_name,
                    "tracking_uri": args.tracking_uri}
        from mtbench.train.resume import continuation_dir, is_auto

        if is_auto(args.restart) and not args.run_dir:
            raise MtbenchError("--restart auto needs --run-dir DIR (the folder a requeued job resumes)")
        cont = continuation_dir(args.restart)
        run_dir = Path(args.run_dir) if args.run_dir else (cont or new_run_dir(args.output_dir))
        result = api.train(args.input, run_dir=run_dir, output_dir=args.output_dir, restart=args.restart,
                           init_frz_model=args.init_frz_model, tracking=tracking, progress=not args.no_progress,
                           tags={"entry": "mtbench.train", "input": str(Path(args.input).resolve())})
        resume = [sys.executable, "-m", COMMAND, *(argv if argv is not None else sys.argv[1:])]
        resume = [a for i, a in enumerate(resume) if a != "--restart" and (i == 0 or resume[i - 1] != "--restart")]
        if not args.run_dir:
            resume += ["-o", str(run_dir.resolve())]
        exit_if_stopped(result.summary, shlex.join([*resume, "--restart", str(run_dir.resolve())]))
        print_summary(result.summary)
        return result.summary

    def run_with_signals() -> dict:
        from mtbench.train.signals import CommandSignals

        with CommandSignals():  # after a stop the process ends with 130/143, a second signal included
            return run()

    return run_command(COMMAND, run_with_signals)


def summary_title(summary: Mapping[str, Any]) -> str:
    """``mtbench: 50 steps in 4.0 s (training 2.1 s = 23.8 steps/s; set-up, validation, checkpoints 1.9 s)``; a
    resumed run says which steps this process trained: ``mtbench: 200 steps in this process (resumed at 400, 600 in
    total) in 8.0 s (...)``.

    The training seconds are the trainer's per-display-block step times (``summary["timing"]``), the measure the
    progress bar's "training steps/s" uses, so the two numbers agree; the rest of the wall time is graph building
    for validation, validation itself and checkpoint writes.
    """
    steps, wall = summary["steps"], float(summary["wall_s"])
    start = int(summary.get("start_step") or 0)
    timing = summary.get("timing") or {}
    ends, per_step = list(timing.get("steps", [])), list(timing.get("step_s", []))
    starts = [int(summary.get("start_step", 0))] + ends[:-1]
    train_s = sum(s * (end - start) for s, start, end in zip(per_step, starts, ends))
    title = f"mtbench: {steps} steps in {wall:.1f} s"
    if start:  # resumed: this process trained steps start..steps
        title = f"mtbench: {steps - start} steps in this process (resumed at {start}, {steps} in total) in {wall:.1f} s"
    trained = ends[-1] - starts[0] if ends else 0
    if train_s <= 0 or trained <= 0:
        return title
    return (f"{title} (training {train_s:.1f} s = {trained / train_s:.1f} steps/s; "
            f"set-up, validation, checkpoints {max(wall - train_s, 0.0):.1f} s)")


def print_summary(summary: Mapping[str, Any]) -> None:
    """Final metrics per task as a table, then where the run lives and how to open it."""
    from rich.table import Table

    from mtbench.terminal import console as make_console

    console = make_console()
    table = Table(title=summary_title(summary))
    table.add_column("task")
    table.add_column("steps trained", justify="right")
    table.add_column("fraction", justify="right")
    table.add_column("final validation", justify="left")
    for task, res in summary.get("final", {}).items():
        val = ", ".join(f"{k}={v:.3g}" for k, v in res.get("val", {}).items() if math.isfinite(v))
        table.add_row(task, str(summary["counts"].get(task, 0)), f"{summary['fractions'].get(task, 0):.2f}",
                      val or "-")
    console.print(table)
    for task, b in summary.get("best", {}).items():
        console.print(f"best {task}: val {b['metric']} = {b['value']:.4g} at step {b['step']} "
                      f"(checkpoints/{b['checkpoint']})")
    console.print(f"run directory: {summary['run_dir']}")
    if summary.get("tracking"):
        console.print(summary["tracking"])


if __name__ == "__main__":
    main()


def exit_if_stopped(summary: Mapping[str, Any], resume_command: str) -> None:
    """After a signal stopped training: one line with the exact command to resume, then exit 143 / 130."""
    if not summary.get("stopped_by"):
        return
    import sys

    print(f"mtbench: stopped by {summary['stopped_by']} at step {summary['steps']} (checkpoint written); "
          f"resume with: {resume_command}", file=sys.stderr, flush=True)
    raise SystemExit(int(summary.get("exit_code") or 143))
