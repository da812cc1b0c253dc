"""The descriptor interface: neighbour environments in, per-atom features (and rotation matrices) out.

A descriptor declares the neighbour lists it needs (:class:`NeighborSpec`); the data layer precomputes them per
frame; the model turns them into pair vectors; the descriptor maps those to per-atom features. Weights and
statistics are stored in DeePMD-kit's serialized layout (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import tensorflow as tf

from mtbench.data.neighbor import NeighborSpec
from mtbench.model.env_mat import Neighbors
from mtbench.model.registry import ClassRegistry
from mtbench.spec import registry as reg

__all__ = ["NeighborSpec", "Descriptor", "DescriptorOutput"]


class DescriptorOutput(NamedTuple):
    descriptor: tf.Tensor  # [nf, nloc, dim_out], float64
    rot_mat: tf.Tensor | None  # [nf, nloc, dim_emb, 3], float64 (None if the descriptor has none)


_CLASSES: ClassRegistry[type[Descriptor]] = ClassRegistry("descriptor", reg.DESCRIPTORS)
DESCRIPTORS: dict[str, type[Descriptor]] = _CLASSES.classes
"""Canonical descriptor type (a key of :data:`mtbench.spec.registry.DESCRIPTORS`) -> its class."""


register_descriptor = _CLASSES.register  # class decorator: @register_descriptor("<canonical type>")
descriptor_class = _CLASSES.lookup  # the class of a descriptor type or alias


class Descriptor(tf.Module):
    """Base class; subclasses implement ``build`` (from spec), ``from_dict``/``to_dict`` and ``__call__``."""

    type_name: ClassVar[str] = ""
    ntypes: int
    rcut: float
    type_map: list[str] | None

    # --- interface ----------------------------------------------------------------------------------------
    def neighbor_specs(self) -> list[NeighborSpec]:
        raise NotImplementedError

    def __call__(self, neighbors: dict[NeighborSpec, Neighbors], atype: tf.Tensor) -> DescriptorOutput:
        raise NotImplementedError

    @property
    def dim_out(self) -> int:
        raise NotImplementedError

    @property
    def dim_emb(self) -> int:
        """Width of the rotation matrix rows (DeePMD's ``embedding_width``; the last embedding width)."""
        raise NotImplementedError

    @property
    def has_rot_mat(self) -> bool:
        return True

    @property
    def mixed_types(self) -> bool:
        return False

    @classmethod
    def build(cls, config: dict[str, Any], type_map: Sequence[str], rng: np.random.Generator) -> "Descriptor":
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Descriptor":
        raise NotImplementedError

    # --- statistics ---------------------------------------------------------------------------------------
    def compute_input_stats(self, samples: Sequence[tuple[dict[NeighborSpec, Neighbors], tf.Tensor]]) -> None:
        """Set ``davg``/``dstd`` from data: ``samples`` holds (neighbours per spec, centre types) per stat batch."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The descriptor's spec section (DeePMD input keys), used to autocomplete and check specs."""
        data = self.to_dict()
        return {k: v for k, v in data.items() if not k.startswith("@") and k not in ("embeddings", "env_mat")}


def build_descriptor(config: dict[str, Any], type_map: Sequence[str], rng: np.random.Generator) -> Descriptor:
    return descriptor_class(config["type"]).build(config, type_map, rng)


def descriptor_from_dict(data: dict[str, Any]) -> Descriptor:
    return descriptor_class(data["type"]).from_dict(data)


def pair_exclude_table(ntypes: int, exclude_types: Sequence[Sequence[int]]) -> np.ndarray:
    """[ntypes+1, ntypes+1] 0/1 table: 0 for an excluded (centre, neighbour) type pair; padding type ntypes kept."""
    table = np.ones((ntypes + 1, ntypes + 1), dtype=np.int32)
    for a, b in exclude_types:
        table[a, b] = table[b, a] = 0
    return table


def gather_pair_mask(table: np.ndarray, atype: tf.Tensor, nei_type: tf.Tensor) -> tf.Tensor:
    """Per slot: 1 if the (centre, neighbour) pair is kept, else 0 (int32, [nf, nloc, nnei])."""
    n = table.shape[0]
    flat = tf.constant(table.reshape(-1))
    return tf.gather(flat, atype[:, :, None] * n + nei_type)


def partition_by_type(x: tf.Tensor, atype_flat: tf.Tensor, ntypes: int) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """Split rows of ``x`` by centre type; returns (parts, row indices) for :func:`tf.dynamic_stitch`."""
    rows = tf.range(tf.shape(atype_flat)[0])
    return tf.dynamic_partition(x, atype_flat, ntypes), tf.dynamic_partition(rows, atype_flat, ntypes)
