"""``python -m mtbench.tracking.replay RUN_DIR [--tracking-uri URI]``: send a tracking backlog."""

from __future__ import annotations

import argparse
import logging
import sys

from mtbench import api
from mtbench.errors import exit_on_user_error
from mtbench.tracking.store import StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtbench.tracking.replay",
        description="Send the tracking data a run could not send (RUN_DIR/tracking_backlog.jsonl).")
    parser.add_argument("run_dir", help="the run directory holding tracking_backlog.jsonl")
    parser.add_argument("--tracking-uri", default=None,
                        help="store to send to (default: $MLFLOW_TRACKING_URI, else the run's own)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = exit_on_user_error(lambda: api.replay(args.run_dir, args.tracking_uri),
                                     prog="mtbench.tracking.replay")
    except StoreError as exc:
        print(f"mtbench.tracking.replay: error: {exc} (backlog kept; try again later)",
              file=sys.stderr)
        return 1
    for result in results:
        print(result.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
