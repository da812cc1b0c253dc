"""``python -m mtbench.test``: test a model's heads on labelled data, like DeePMD-kit's ``dp test``.

    python -m mtbench.test -m outputs/runs/DATE/TIME                   # every head on its validation data
    python -m mtbench.test -m RUN_DIR -s builtin:water_tip4p/val --head water_tip3p -d detail
    python -m mtbench.test -m model.dp -s data/ -d detail              # a DeePMD-kit .dp file, dp test's files
    python -m mtbench.test -m RUN_DIR --cross-head --json out/test.json  # + heads on each other's data

Per head it prints RMSE and MAE of every quantity its labels give (DeePMD's weighting across systems), and writes
the same as JSON (``--json``), ``dp test -d`` detail files (``-d``), parity plots (``--plots``, default: next to the
JSON), a cross-head matrix (``--cross-head``: table, CSV, heatmaps) and logs it all to an MLflow run
(``--mlflow-run``). What it computes and writes is :mod:`mtbench.evaluation.dp_test`; this module parses and
prints.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from mtbench.cli.command import command_parser, run_command
from mtbench.evaluation.dp_test import run_dir_of  # noqa: F401 (re-exported: where the command finds the run)

COMMAND = "mtbench.test"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = command_parser(
        COMMAND,
        description="Test the heads of a trained model on labelled data (DeePMD-kit's `dp test`, per head).",
        epilog="Examples:\n  python -m mtbench.test -m RUN_DIR\n"
               "  python -m mtbench.test -m model.dp -s data/ -n 10 -d detail\n"
               "  python -m mtbench.test -m RUN_DIR --cross-head --json out/test.json --mlflow-run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", required=True,
                   help="run dir, checkpoint, any frozen mtbench model (united or one-head SavedModel, the per-head "
                        "folder with manifest.json, model file) or DeePMD-kit .dp file")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-s", "--system", nargs="+", metavar="SYSTEM",
                     help="data systems, folders holding systems, or builtin:NAME (default: each head's "
                          "validation data from the model's spec)")
    src.add_argument("-f", "--datafile", help="a file listing one system path per line")
    src.add_argument("--train-data", metavar="INPUT", help="test each head on its training data in this input.json")
    src.add_argument("--valid-data", metavar="INPUT",
                     help="test each head on its validation data in this input.json")
    p.add_argument("--head", "--model-branch", dest="head", help="test only this head (default: every head)")
    p.add_argument("-n", "--numb-test", type=int, default=0, help="frames per system (0: all)")
    p.add_argument("-r", "--rand-seed", type=int, default=None, help="seed of --shuffle-test")
    p.add_argument("--shuffle-test", action="store_true", help="shuffle the frames before taking -n of them")
    p.add_argument("-d", "--detail-file", metavar="DETAIL",
                   help="write dp test's detail files DETAIL.e.out, .f.out, ... (DETAIL.<head>.* for several heads)")
    p.add_argument("-a", "--atomic", action="store_true",
                   help="tensor heads: per-atom detail files and metrics; energy heads: atom_ener errors")
    p.add_argument("--json", metavar="OUT", help="write the metrics (and cross-head matrix) as JSON")
    p.add_argument("--plots", metavar="DIR", help="parity plots folder (default: the folder of --json)")
    p.add_argument("--no-plots", action="store_true", help="no parity plots or heatmaps")
    p.add_argument("--cross-head", action="store_true",
                   help="evaluate every head on every task's validation data of its kind (matrix, CSV, heatmap)")
    p.add_argument("--mlflow-run", nargs="?", const="auto", metavar="RUN_ID",
                   help="log metrics, table, JSON and plots to this MLflow run (no id: the run dir's summary.json)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (MLFLOW_TRACKING_URI wins)")
    p.add_argument("--output-dir", default="outputs",
                   help="root of the default MLflow store outputs/mlflow.db (default: ./outputs)")
    p.add_argument("-v", "--verbose", action="store_true", help="also print per-system tables")
    return p.parse_args(argv)


def print_run(done: Any) -> None:
    """The tables, as the report was made, then where it was logged."""
    from mtbench.terminal import console as make_console

    console = make_console()  # pipes and files: never wrapped, wide enough for system paths
    for item in done.renderables:
        console.print(item)
    if done.report.get("mlflow_run"):
        console.print(f"logged to MLflow run {done.report['mlflow_run']}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)

    def go() -> dict[str, Any]:
        from mtbench import api

        done = api.test(args.model, **{k: v for k, v in vars(args).items() if k != "model"})
        print_run(done)
        return done.report

    return run_command(COMMAND, go, tensorflow=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
