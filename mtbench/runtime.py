"""Process set-up shared by every entry point: TensorFlow imported lean and quiet, its threads, mtbench's log lines.

- TensorFlow >= 2.16 prints oneDNN/CUDA notices from C++ at import and at first use, ignoring
  ``TF_CPP_MIN_LOG_LEVEL``: the import runs with file descriptor 2 pointed at /dev/null
  (``MTBENCH_TF_VERBOSE=1`` shows them again).
- ``import tensorflow`` imports Keras 3, which imports scikit-learn, pandas, matplotlib and SciPy when they are
  installed (MLflow installs them): ~160 MB of resident memory and ~1.5 s, for Keras wrappers mtbench never uses.
  Keras guards each of those imports, so they are hidden during that one import; they import normally afterwards.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys

_KERAS_OPTIONAL = ("sklearn", "pandas", "matplotlib", "scipy")


class _HideFromKeras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201
        if name.split(".")[0] in _KERAS_OPTIONAL:
            raise ImportError(f"{name} hidden while TensorFlow imports (mtbench.runtime)")
        return None


def import_tensorflow_quietly(threads: int | None = None, warm_up: bool = True) -> None:
    """Import TensorFlow (stderr silenced) and, if given, set its thread pools before first use.

    ``warm_up=False`` runs no TensorFlow operation (a multi-worker strategy must come before the first one)."""
    if "tensorflow" in sys.modules or os.environ.get("MTBENCH_TF_VERBOSE"):
        if threads:
            _set_threads(threads)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    hide = _HideFromKeras() if not any(m in sys.modules for m in _KERAS_OPTIONAL) else None
    try:
        os.dup2(devnull, 2)
        if hide is not None:
            sys.meta_path.insert(0, hide)
        try:
            import tensorflow as tf
        finally:
            if hide is not None:
                sys.meta_path.remove(hide)

        if threads:
            _set_threads(threads)
        if warm_up:
            tf.constant(0.0) + 0.0  # the second batch of notices comes with the first op
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _set_threads(n: int) -> None:
    """``n`` intra-op threads; inter-op threads from ``MTBENCH_INTER_THREADS`` (default 1)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("MTBENCH_INTER_THREADS", "1")))
    except RuntimeError:  # TensorFlow already ran an op in this process: its pools are fixed
        pass


def configure_runtime(threads: int | None = None, *, warm_up: bool = True) -> None:
    """Import TensorFlow quietly and set its thread pools.

    Intra-op threads: ``threads``, else env ``MTBENCH_THREADS``, else the cores this process may use; inter-op
    threads: env ``MTBENCH_INTER_THREADS``, else 2 (measured on 2 cores: 2 intra + 2 inter trains ~25% faster than
    TensorFlow's defaults or 1 inter-op thread, since small independent ops then run side by side).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = threads or int(os.environ.get("MTBENCH_THREADS", "0") or 0) or cores
    os.environ.setdefault("MTBENCH_INTER_THREADS", str(min(2, n)))
    import_tensorflow_quietly(n, warm_up)


def configure_logging(level: int = logging.INFO) -> None:
    """mtbench messages as ``mtbench: warning: ...`` lines; other libraries stay quiet.

    They do not propagate to the root logger (whose console handler would print them twice under Hydra), so the
    root's log files (Hydra's ``<run dir>/hydra_app.log``) are attached here too: a job's log file holds mtbench's
    warnings as its terminal showed them.
    """
    logger = logging.getLogger("mtbench")
    if not any(getattr(h, "_mtbench", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("mtbench: %(levelname)s: %(message)s"))
        handler._mtbench = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    root_files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for stale in [h for h in logger.handlers if isinstance(h, logging.FileHandler) and h not in root_files]:
        logger.removeHandler(stale)  # the previous job's file, in a multirun that runs jobs in one process
    for file_handler in root_files:
        if file_handler not in logger.handlers:
            logger.addHandler(file_handler)
    logger.setLevel(level)
    logger.propagate = False
    # "Creating initial MLflow database tables..." and the like (mlflow sets its level from this when imported)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def expose_package_to_children() -> None:
    """Let child processes (sweep jobs, launcher workers) import this mtbench even where a folder named ``mtbench``
    shadows it.

    An editable install finds the package through a finder that Python consults only after scanning ``sys.path``;
    a ``mtbench/`` folder without ``__init__.py`` in a job's working directory is found first, as a namespace
    package, and every job then fails with "cannot import name '__version__' from 'mtbench' (unknown location)".
    A regular package on ``sys.path`` always wins over a namespace folder, so the folder above this package goes on
    ``PYTHONPATH`` for children. Installed (non-editable) packages live on ``sys.path`` already: nothing to do.
    """
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    if Path(root).name in ("site-packages", "dist-packages"):
        return
    current = os.environ.get("PYTHONPATH", "")
    if root not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = root + (os.pathsep + current if current else "")
