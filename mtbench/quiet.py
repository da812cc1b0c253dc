"""Keep TensorFlow's start-up chatter (absl C++ log lines on stderr) out of the user's terminal.

TensorFlow >= 2.16 prints oneDNN/CUDA notices from C++ at import and at first use, ignoring
``TF_CPP_MIN_LOG_LEVEL``. Entry points import it once here with file descriptor 2 pointed at /dev/null;
``MTBENCH_TF_VERBOSE=1`` shows them again.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly(threads: int | None = None) -> None:
    """Import TensorFlow (stderr silenced) and, if given, set its thread pools before first use."""
    if "tensorflow" in sys.modules or os.environ.get("MTBENCH_TF_VERBOSE"):
        if threads:
            _set_threads(threads)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        if threads:
            _set_threads(threads)
        tf.constant(0.0) + 0.0  # the second batch of notices comes with the first op
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _set_threads(n: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process: its pools are fixed
        pass
