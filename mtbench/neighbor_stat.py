"""``python -m mtbench.neighbor_stat``: kept as an entry point; the command lives in :mod:`mtbench.evaluation.neighbor_stat`."""

from mtbench.evaluation.neighbor_stat import main

if __name__ == "__main__":
    main()
