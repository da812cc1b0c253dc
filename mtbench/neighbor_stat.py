"""``python -m mtbench.neighbor_stat``: kept as an entry point; the command lives in :mod:`mtbench.cli.neighbor_stat`."""

from mtbench.cli.neighbor_stat import main

if __name__ == "__main__":
    main()
