"""``python -m mtbench.test``: kept as an entry point; the command lives in :mod:`mtbench.cli.test`."""

import os

from mtbench.cli.test import main

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
