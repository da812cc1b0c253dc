"""Keep TensorFlow's start-up chatter (absl C++ log lines on stderr) out of the user's terminal.

TensorFlow >= 2.16 prints oneDNN/CUDA notices from C++ at import and at first use, ignoring
``TF_CPP_MIN_LOG_LEVEL``. Entry points import it once here with file descriptor 2 pointed at /dev/null;
``MTBENCH_TF_VERBOSE=1`` shows them again.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules or os.environ.get("MTBENCH_TF_VERBOSE"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.constant(0.0) + 0.0  # the second batch of notices comes with the first op
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
