"""The compiled kernels of this process: loaded once, where they apply, and kept out of saved graphs.

The kernels (``*.cc`` here, built by :mod:`~mtbench.model.kernels.build`) are used on machines without a GPU, and
never in graphs that are saved (:func:`portable_graphs`): a frozen model must load in plain TensorFlow. Where
building failed (said once per process) callers use TensorFlow's own ops; ``MTBENCH_KERNELS=0`` turns the kernels
off. Each op module registers its ops' gradients when it is imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
from collections.abc import Iterator

import tensorflow as tf

from mtbench.model.kernels.build import Built, build_and_load

_log = logging.getLogger(__name__)
_portable: contextvars.ContextVar[bool] = contextvars.ContextVar("mtbench_portable_graphs", default=False)


@contextlib.contextmanager
def portable_graphs() -> Iterator[None]:
    """Graphs traced inside use stock TensorFlow ops only (for SavedModels that load without mtbench)."""
    token = _portable.set(True)
    try:
        yield
    finally:
        _portable.reset(token)


def enabled_by_env() -> bool:
    return os.environ.get("MTBENCH_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def compiled() -> Built:
    """The compiled kernels of this process (built on first call); the fallback is announced here, once."""
    if not enabled_by_env():
        return Built(None, "MTBENCH_KERNELS=0")
    if tf.test.is_built_with_cuda() and tf.config.list_physical_devices("GPU"):  # (no device probe without CUDA)
        return Built(None, "a GPU is visible (the kernel is CPU-only)")
    built = build_and_load()
    if built.module is None:
        _log.warning("fast CPU kernels unavailable (%s); training uses TensorFlow's own kernels, slower",
                     built.reason)
    return built


def applies(*tensors: tf.Tensor, dtypes: tuple[tf.DType, ...] = (tf.float64,)) -> bool:
    """The compiled kernels apply to ``tensors``: their dtype is one of ``dtypes``, no portable graph is being
    traced, and the kernels are built."""
    return (not _portable.get() and all(t.dtype in dtypes for t in tensors)
            and compiled().module is not None)


def module() -> object:
    """The loaded op library (only after :func:`applies` said yes)."""
    return compiled().module
