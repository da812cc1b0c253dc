"""``python -m mtbench.train``: kept as an entry point; the command lives in :mod:`mtbench.cli.train`."""

from mtbench.cli.train import main

if __name__ == "__main__":
    main()
