"""``python -m mtbench.tracking.replay``: kept as an entry point; the command lives in :mod:`mtbench.cli.replay`."""

from mtbench.cli.replay import main

if __name__ == "__main__":
    raise SystemExit(main())
