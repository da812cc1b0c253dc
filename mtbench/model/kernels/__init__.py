"""Kernels compiled on the user's machine (``build``), behind drop-in functions that fall back to TensorFlow's."""

from mtbench.model.kernels.library import portable_graphs
from mtbench.model.kernels.matmul import batch_matmul, dense_product, matmul
from mtbench.model.kernels.rows import real_pair_sum
from mtbench.model.kernels.shortcut import add_tiled

__all__ = ["add_tiled", "batch_matmul", "dense_product", "matmul", "portable_graphs", "real_pair_sum"]
