"""``python -m mtbench.freeze``: kept as an entry point; the command lives in :mod:`mtbench.cli.freeze`."""

from mtbench.cli.freeze import main

if __name__ == "__main__":
    raise SystemExit(main())
