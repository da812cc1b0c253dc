"""``python -m mtbench.freeze SOURCE -o OUT``: freeze a trained model for serving, DeePMD-kit or a new training.

See :mod:`mtbench.export.freeze` for what each form writes.
"""

from __future__ import annotations

import argparse

from mtbench.cli.command import command_parser, run_command

COMMAND = "mtbench.freeze"

EPILOG = """\
examples:
  # every head, one SavedModel each, plus manifest.json (heads, type map, validation metrics)
  python -m mtbench.freeze outputs/runs/2026-11-27/08-17-01 -o frozen/
  # the united model: descriptor + every head in one SavedModel, a serving signature per head
  python -m mtbench.freeze outputs/runs/2026-11-27/08-17-01 --united -o united/
  # one head for DeePMD-kit (dp test, DeepPot/DeepDipole/DeepPolar; then dp convert-backend for LAMMPS)
  python -m mtbench.freeze outputs/runs/2026-11-27/08-17-01 --head water_ener -o water_ener.dp
  dp convert-backend water_ener.dp water_ener.pb
  # one .dp per head
  python -m mtbench.freeze outputs/runs/2026-11-27/08-17-01 --format dp -o frozen_dp/

SOURCE is a run folder (its latest checkpoint), a checkpoint file, a frozen mtbench model or a DeePMD-kit .dp.
In Python, without mtbench: m = tf.saved_model.load("united"); m.signatures["water_ener"](coord=..., box=...,
atype=...) with coord [nf,N,3] float64, box [nf,3,3] float64 (zeros: no periodic boundary), atype [nf,N] int32.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = command_parser(
        COMMAND, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Freeze a trained mtbench model: the united SavedModel (--united), one head (--head, .dp for "
                    "DeePMD-kit from the suffix), or by default one SavedModel (or .dp) per head with a manifest.",
        epilog=EPILOG)
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT",
                   help="run folder, checkpoint file, frozen mtbench model or DeePMD-kit .dp file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output: a .dp file, or a folder (SavedModel, or one file per head)")
    p.add_argument("--head", metavar="TASK", help="freeze only this head (required for .dp with several heads)")
    p.add_argument("--united", action="store_true", help="one SavedModel with the descriptor and every head")
    p.add_argument("--format", choices=["savedmodel", "dp"], default=None,
                   help="file format (default: dp for a .dp output, savedmodel otherwise)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the frozen files to the run's MLflow run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        from mtbench.export.freeze import freeze

        result = freeze(args.source, args.output, head=args.head, united=args.united, fmt=args.format,
                        log_to_mlflow=not args.no_mlflow)
        for path in result.outputs:
            print(f"wrote {path}")
        if result.manifest is not None:
            print(f"wrote {result.manifest}")
        if result.tracking:
            print(result.tracking)
        return 0

    return run_command(COMMAND, run, tensorflow=True)


if __name__ == "__main__":
    raise SystemExit(main())
