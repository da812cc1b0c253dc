"""``python -m mtbench.compare``: kept as an entry point; the command lives in :mod:`mtbench.cli.compare`."""

from mtbench.cli.compare import main

if __name__ == "__main__":
    raise SystemExit(main())
