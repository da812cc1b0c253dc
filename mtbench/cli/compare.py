"""``python -m mtbench.compare [TARGET | --experiment NAME | --parent RUN_ID] [-o DIR]``: compare
the jobs of a sweep side by side.

TARGET is a sweep directory (``outputs/multirun/<date>/<time>``), a sweep's run id, or an MLflow
experiment name (its latest sweep); how a bare word is understood is
:mod:`mtbench.sweeps.target`'s rule, and ``--experiment`` / ``--parent`` name the form outright.
The report goes to DIR (default ``<sweep dir>/compare/``): ``summary.csv`` (every number),
``summary.md`` (the table a person reads) and PNG plots; when the sweep has a parent run it is
logged there (``compare/``), with the parent's summary tags and metrics.

A sweep directory is read from its files alone (``input.json``, ``lcurve.<task>.out``,
``summary.json``, ``.hydra/``); when the jobs were tracked and the store answers, the curves only
MLflow holds (gradient diagnostics) are added. A run id or experiment is read from MLflow alone.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from mtbench import api
from mtbench.errors import exit_on_user_error
from mtbench.runtime import configure_logging

PROG = "mtbench.compare"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mtbench.compare",
        description="Compare the jobs of a sweep: summary.csv, summary.md and plots.")
    p.add_argument("target", nargs="?", default=None,
                   help="a sweep directory, a sweep's parent MLflow run id, or an MLflow "
                        "experiment name (its latest sweep); a bare word is a folder only if that "
                        "folder looks like a sweep (multirun.yaml or job folders)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--experiment", metavar="NAME", default=None,
                      help="the latest sweep of this MLflow experiment (no folder is looked at)")
    form.add_argument("--parent", metavar="RUN_ID", default=None,
                      help="the sweep of this MLflow run: its parent run id, or any job's run id")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output directory (default: <sweep dir>/compare/)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store for run ids and experiments (default: MLFLOW_TRACKING_URI, "
                        "else sqlite:///<output dir>/mlflow.db)")
    p.add_argument("--output-dir", default=None,
                   help="mtbench output dir holding the default store (default: "
                        "$MTBENCH_OUTPUT_DIR or ./outputs)")
    p.add_argument("--no-log", action="store_true", help="do not log the report to the parent run")
    return p


def _target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, str | None]:
    """``(target, kind)`` from exactly one of TARGET, --experiment, --parent."""
    named = [(v, k) for v, k in ((args.experiment, "experiment"), (args.parent, "run")) if v]
    if args.target is not None and named:
        parser.error(f"give TARGET or --{'parent' if named[0][1] == 'run' else 'experiment'}, "
                     "not both")
    if args.target is None and not named:
        parser.error("a sweep is needed: TARGET (a sweep directory), --parent RUN_ID or "
                     "--experiment NAME")
    return (args.target, None) if args.target is not None else named[0]


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit status (2: a user error, printed as one line)."""
    configure_logging()
    logging.getLogger("mtbench.compare").setLevel(logging.INFO)
    parser = build_parser()
    args = parser.parse_args(argv)
    target, kind = _target(parser, args)
    output_dir = args.output_dir or os.environ.get("MTBENCH_OUTPUT_DIR") or "outputs"

    def run() -> int:
        done = api.compare(target, kind=kind, out=args.out, tracking_uri=args.tracking_uri,
                           output_dir=output_dir, log=not args.no_log)
        print(done.markdown().split("\n\n", 2)[-1].rstrip())
        print(f"\nwrote {len(done.files)} files to {Path(done.out).resolve()}:")
        for f in done.files:
            print(f"  {f.name}")
        if done.logged:
            print(f"logged to parent run {done.sweep.parent_run_id} (artifacts: compare/)")
        return 0

    try:
        return exit_on_user_error(run, prog=PROG)
    except SystemExit as exc:  # main() returns its status, as it always did (tests, notebooks)
        return int(exc.code) if isinstance(exc.code, int) else 1


if __name__ == "__main__":
    raise SystemExit(main())
